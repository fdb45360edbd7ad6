"""Every way a search ends lands a leaderboard holding each trial that reported an epoch,
exactly once: its trial count, its time budget, a trial that raises, a trial that diverges,
and a dataset that is (or becomes) unreadable. Interrupts and `search resume`:
test_search_resume.py."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from zsl_search.data import read_mat, synthesize, write_mat
from zsl_search.leaderboard import read_rows
from zsl_search.search import parse_spec, run_search

from _searches import SMALL, optuna_states, reports


# ---------------------------------------------------------------- trials that raise or diverge


@pytest.fixture(scope="module")
def faulty_search(ray_local, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """One search whose trials, by their sampled knobs, finish, raise in epoch 2 or diverge in epoch 2."""
    storage = tmp_path_factory.mktemp("faults")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZSL_SEARCH_PLUGINS", "_fragile_variant")
        spec = parse_spec({
            "name": "faults", "dataset": {"path": "demo"}, "variants": ["fragile"],
            "space": {"fragile": {"fail_at_epoch": {"choices": [0, 2]}, "nan_at_epoch": {"choices": [0, 2]}}},
            # Seed 11 draws, after the warm-start default: NaN in epoch 2, raise in epoch 2, fine.
            "budget": {"trials": 4, "max_epochs": 3}, "scheduler": "fifo",
            "sampler": {"name": "random", "seed": 11}, "max_concurrent": 1, "storage": str(storage),
        })
        result = run_search(spec, progress=False)
    return result, storage


def _kind(row: dict) -> str:
    params = json.loads(row["config_json"])
    if params["fail_at_epoch"]:
        return "raises"
    return "diverges" if params["nan_at_epoch"] else "fine"


def test_a_raising_trial_is_retried_from_its_checkpoint_then_recorded_as_error(faulty_search) -> None:
    result, storage = faulty_search
    assert result.ending == "finished" and result.notes == []
    rows = read_rows(str(storage), "faults")
    assert len(rows) == 4 and len({r["trial_id"] for r in rows}) == 4  # the search went on past the error
    raised = [r for r in rows if _kind(r) == "raises"]
    assert raised, "the seeded sampler no longer draws a raising trial; pick another sampler seed"
    seen = reports(storage / "faults")
    for row in raised:
        assert row["status"] == "ERROR" and row["error"] == "RuntimeError: injected failure in epoch 2"
        assert row["restarts"] == 1 and row["epochs"] == 1 and row["H"] is not None
        # Retried from the epoch-1 checkpoint: epoch 1 was reported once, not once per attempt.
        assert seen[row["trial_id"]] == [1]
        error_txt = next((storage / "faults").glob(f"{row['trial_id']}-*/error.txt")).read_text()
        assert "Failure # 2" in error_txt and "injected failure" in error_txt  # the traceback went here
    assert all(r["rank"] > max(o["rank"] for o in rows if o["status"] != "ERROR") for r in raised)


def test_a_diverged_trial_ends_as_diverged_not_as_a_zero_complete(faulty_search) -> None:
    result, storage = faulty_search
    rows = read_rows(str(storage), "faults")
    diverged = [r for r in rows if _kind(r) == "diverges"]
    fine = [r for r in rows if _kind(r) == "fine"]
    assert diverged and fine, "the seeded sampler no longer draws every kind of trial; pick another seed"
    for row in diverged:
        assert row["status"] == "DIVERGED" and row["epochs"] == 2 and row["error"] is None
    assert all(r["status"] == "COMPLETE" and r["epochs"] == 3 for r in fine)
    # Optuna is told the same story: errors FAIL, the diverged trial was cut short (PRUNED).
    states = sorted(optuna_states(storage, "faults"))
    expected = sorted({"ERROR": "FAIL", "DIVERGED": "PRUNED", "COMPLETE": "COMPLETE"}[r["status"]] for r in rows)
    assert states == expected


def test_trials_that_failed_before_their_first_epoch_stay_failed_on_resume(ray_local, fragile, tmp_path: Path,
                                                                            capsys) -> None:
    # A restored run must not count an earlier run's failed trials as cut short by the time budget.
    from zsl_search.search import resume_search

    spec = parse_spec({
        "name": "early", "dataset": {"path": "demo"}, "variants": [fragile], "space": {fragile: {"fail_at_epoch": 1}},
        "budget": {"trials": 2, "max_epochs": 2, "time_budget_s": 600}, "scheduler": "fifo", "max_concurrent": 1,
        "storage": str(tmp_path),
    })
    first = run_search(spec, progress=False)
    again = resume_search("early", storage=str(tmp_path), progress=False)  # nothing to resume: no Ray needed
    for result in (first, again):
        assert result.ending == "finished" and result.rows == [] and result.failed == 2 and result.trials == 2
        assert result.notes[0].startswith("2 trials failed before their first epoch")
    assert len(first.notes) == 1 and again.notes[1].startswith("nothing to resume: every trial of its budget (2)")
    assert first.ran and not again.ran
    from zsl_search.cli import main

    capsys.readouterr()
    assert main(["search", "resume", "early", "--storage", str(tmp_path)]) == 1  # every trial failed, then and now
    assert capsys.readouterr().out.splitlines() == [  # nothing ran, so no "ran its whole budget" or time
        f"search early: 0 trials, ranked by validation H; leaderboard in {tmp_path}/early/",
        "2 trials failed before their first epoch (tracebacks in each trial's error.txt)",
        "nothing to resume: every trial of its budget (2) had ended; the leaderboard is as it was"]


def test_a_search_whose_every_trial_failed_exits_1_and_one_with_a_good_trial_exits_0(
        faulty_search, ray_local, fragile, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from zsl_search.cli._search import print_best

    mixed, _ = faulty_search
    assert mixed.failed >= 1 and print_best(mixed, top=5) == 0  # errors, but good rows too
    capsys.readouterr()
    # Every trial raises in epoch 2, after reporting epoch 1: ERROR rows only, each with an H.
    spec = parse_spec({
        "name": "broken", "dataset": {"path": "demo"}, "variants": [fragile], "space": {fragile: {"fail_at_epoch": 2}},
        "budget": {"trials": 2, "max_epochs": 3}, "scheduler": "fifo", "max_concurrent": 2, "storage": str(tmp_path),
    })
    result = run_search(spec, progress=False)
    assert [r["status"] for r in result.rows] == ["ERROR", "ERROR"] and result.failed == 2
    assert print_best(result, top=5) == 1
    out, err = capsys.readouterr()
    assert "2 trials" in out and "\nrank " in out  # the leaderboard is still printed
    assert print_best(result, top=0) == 1
    out = capsys.readouterr().out
    assert "(2 trials started)" in out and "\nrank " not in out  # --top 0: only how it ended
    assert err == (f"zsl-search: every trial of search broken failed (2 of them); the tracebacks are in each "
                   f"trial's error.txt under {tmp_path}/broken/\n")


# ---------------------------------------------------------------- the time budget


def test_a_time_budget_keeps_every_trial_that_reported_and_counts_the_rest(ray_local, fragile, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # Two trials at once: the reference default reports every fraction of a second, the other
    # stalls far past the budget. Tune's budget clock runs on a test clock that jumps past the
    # budget once the first trial has reported twice (and both have started), so the outcome does
    # not depend on how fast this machine is: when the budget ends, one trial has reported and
    # one has not.
    class Clock:
        offset = 0.0

        def time(self) -> float:
            return time.time() + self.offset

    clock = Clock()
    monkeypatch.setattr("ray.tune.stopper.timeout.time", clock)
    experiment = tmp_path / "budget"

    def run_out_the_clock() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            started = list(experiment.glob("*-fragile"))
            if len(started) >= 2 and any(len(e) >= 2 for e in reports(experiment).values()):
                break
            time.sleep(0.05)
        clock.offset = 10 * 3600.0

    spec = parse_spec({
        "name": "budget", "dataset": {"path": "demo"}, "variants": [fragile],
        "space": {fragile: {"stall_s": {"choices": [0.0, 900.0]}}},
        "budget": {"trials": 3, "max_epochs": 10_000, "time_budget_s": 3600}, "scheduler": "fifo",
        "sampler": {"name": "random", "seed": 0}, "max_concurrent": 2, "storage": str(tmp_path),
    })
    threading.Thread(target=run_out_the_clock, daemon=True).start()
    result = run_search(spec, progress=False)
    assert result.ending == "time_budget"
    rows = read_rows(str(tmp_path), "budget")
    reported = {tid for tid, epochs in reports(experiment).items() if epochs}
    assert {r["trial_id"] for r in rows} == reported and len(rows) == len(reported)  # each once, no made-up rows
    assert rows and all(r["status"] == "STOPPED" and r["variant"] == fragile for r in rows)
    silent = result.trials - len(reported)
    assert silent == 1 and json.loads(rows[0]["config_json"])["stall_s"] == 0.0  # the stalled one never reported
    assert result.notes == ["1 trial stopped by the time budget before its first epoch"]
    # No Optuna trial is left RUNNING: the stopped one is PRUNED, the silent one FAIL.
    states = optuna_states(tmp_path, "budget")
    assert sorted(states) == ["FAIL", "PRUNED"]


# ---------------------------------------------------------------- broken datasets


def _broken(tmp: Path, kind: str) -> Path:
    """A copy of the demo dataset with one kind of damage."""
    root = synthesize(tmp / "SET", preset="demo", seed=0)
    res, att = read_mat(root / "res101.mat"), read_mat(root / "att_splits.mat")
    features = np.array(res["features"], dtype=np.float32)

    def rewrite(res_changes: dict | None = None, att_changes: dict | None = None) -> None:
        if res_changes is not None:
            write_mat(root / "res101.mat", {"features": features, "labels": res["labels"], **res_changes})
        if att_changes is not None:
            keep = {k: v for k, v in att.items() if k != "allclasses_names"}
            write_mat(root / "att_splits.mat", {k: v for k, v in {**keep, **att_changes}.items() if v is not None})

    n = features.shape[1]
    if kind == "truncated":
        data = (root / "res101.mat").read_bytes()
        (root / "res101.mat").write_bytes(data[: len(data) // 3])
    elif kind == "not-a-mat-file":
        (root / "res101.mat").write_text("features,labels\n1,2\n")
    elif kind == "missing-features":
        write_mat(root / "res101.mat", {"labels": res["labels"]})
    elif kind == "missing-trainval-loc":
        rewrite(att_changes={"trainval_loc": None})
    elif kind == "nan-features":
        features[3, 7] = np.nan
        rewrite(res_changes={})
    elif kind == "label-out-of-range":
        labels = np.array(res["labels"], dtype=np.float64)
        labels[0] = 999
        rewrite(res_changes={"labels": labels})
    elif kind == "location-out-of-range":
        loc = np.array(att["test_unseen_loc"], dtype=np.float64)
        loc[0] = n + 5
        rewrite(att_changes={"test_unseen_loc": loc})
    elif kind == "overlapping-splits":
        loc = np.array(att["test_unseen_loc"], dtype=np.float64)
        loc[0] = att["trainval_loc"].ravel()[0]
        rewrite(att_changes={"test_unseen_loc": loc})
    elif kind == "empty-split":
        rewrite(att_changes={"test_seen_loc": np.zeros((0, 1))})
    elif kind == "zero-based-locations":
        rewrite(att_changes={k: np.asarray(att[k], dtype=np.float64) - 1 for k in
                             ("trainval_loc", "test_seen_loc", "test_unseen_loc", "train_loc", "val_loc")})
    elif kind == "missing-att-splits":
        (root / "att_splits.mat").unlink()
    return root


BROKEN = {
    "truncated": "res101.mat: not a readable MAT-file",
    "not-a-mat-file": "res101.mat: not a readable MAT-file",
    "missing-features": "res101.mat: key 'features' missing",
    "missing-trainval-loc": "att_splits.mat: key 'trainval_loc' missing",
    "nan-features": "res101.mat: key 'features' has NaN/inf values",
    "label-out-of-range": "res101.mat: key 'labels' has values in",
    "location-out-of-range": "att_splits.mat: key 'test_unseen_loc' has indices in",
    "overlapping-splits": "att_splits.mat: keys 'trainval_loc' and 'test_unseen_loc' share",
    "empty-split": "att_splits.mat: key 'test_seen_loc' is empty",
    "zero-based-locations": "indices must be 1-based",
    "missing-att-splits": "att_splits.mat: file not found",
}


@pytest.mark.parametrize("kind", BROKEN)
def test_search_run_refuses_a_broken_dataset_before_ray_starts(kind: str, tmp_path: Path, capsys,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    from zsl_search.cli import main

    root = _broken(tmp_path, kind)
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump({
        "name": "broken", "dataset": {"path": str(root)}, "variants": ["fclswgan"],
        "budget": {"trials": 30, "max_epochs": 3}, "storage": str(tmp_path / "results"),
    }))

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray was started for a broken dataset")

    monkeypatch.setattr(ray, "init", no_ray)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    assert main(["search", "run", str(spec_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("zsl-search: error: ") and BROKEN[kind] in err[0], err
    assert not (tmp_path / "results").exists()  # no search directory claimed


def test_the_cli_refuses_a_broken_dataset_in_one_line(tmp_path: Path) -> None:
    root = _broken(tmp_path, "nan-features")
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump({
        "name": "broken", "dataset": {"path": str(root)}, "variants": ["fclswgan"],
        "budget": {"trials": 30, "max_epochs": 3}, "storage": str(tmp_path / "results"),
    }))
    r = subprocess.run([sys.executable, "-m", "zsl_search.cli", "search", "run", str(spec_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        f"zsl-search: error: {root / 'res101.mat'}: key 'features' has NaN/inf values (first in image 8); "
        "fix or regenerate the file"]
    assert not (tmp_path / "results").exists()


def test_a_dataset_that_breaks_after_the_check_ends_the_search_at_once(ray_local, tmp_path: Path, capfd,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The files changed between the pre-flight check and the feature store (or a node cannot
    read them): the first trial to hit it ends the whole search with that one line."""
    import zsl_search.store

    from zsl_search.cli import main

    root = _broken(tmp_path, "nan-features")
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump({
        "name": "late", "dataset": {"path": str(root)}, "variants": ["fclswgan"], "space": {"all": SMALL},
        "budget": {"trials": 30, "max_epochs": 3}, "scheduler": "fifo", "storage": str(tmp_path / "results"),
    }))
    monkeypatch.setattr(zsl_search.store, "check_source", lambda source, cache_dir, folds=1: {"name": "DEMO", "defaults": "DEMO"})  # "passed" earlier
    assert main(["search", "run", str(spec_path)]) == 2
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert f"zsl-search: error: {root / 'res101.mat'}: key 'features' has NaN/inf values" in err.splitlines()[-1]
    states = optuna_states(tmp_path / "results", "late")
    assert len(states) <= 4 and "RUNNING" not in states  # stopped at once, not after failing 30 trials


def test_tunes_upload_errors_are_one_warning_line_each_and_its_own_staging_race_none(capsys) -> None:
    import logging

    from zsl_search.search._run import _quiet_tune_logs

    logger, seen = logging.getLogger("ray.tune.execution.experiment_state"), []
    handler = logging.Handler()
    handler.emit = seen.append
    logger.addHandler(handler)

    def upload_failed(error: Exception) -> None:
        logger.error("Saving experiment state to storage at '/r/x' failed with exception: ",
                     exc_info=(type(error), error, None))

    race = FileNotFoundError("Failed to open local file '/tmp/ray/s/driver_artifacts/.88e2-tmp-searcher-state-x.pkl'")
    try:
        with _quiet_tune_logs():
            upload_failed(race)
            for _ in range(3):  # an outage: Tune fails at every save
                upload_failed(OSError("When testing for existence of bucket 'b': AWS Error NETWORK_CONNECTION\nmore"))
            logging.getLogger("ray.train._internal.storage").error(
                "Caught exception when creating directory at (fs, b/runs/x):", exc_info=(OSError, OSError("down"), None))
            syncer = logging.getLogger("ray.train._internal.syncer")
            for _ in range(2):  # its background upload, traceback inside the message
                syncer.warning("Last sync command failed with the following error:\nTraceback (most recent call "
                               "last):\n  File \"x.py\", line 1, in f\nOSError: AWS Error NETWORK_CONNECTION\n")
            syncer.error("The latest sync operation failed with the following error: OSError('x')\nRetrying 1 more")
            logger.error("something else")
        upload_failed(race)  # the filter is scoped to a search
    finally:
        logger.removeHandler(handler)
    assert [r.getMessage() for r in seen] == ["something else", "Saving experiment state to storage at '/r/x' failed with exception: "]
    assert capsys.readouterr().err.splitlines() == [
        "warning: Tune could not save the search's state to its storage (OSError: When testing for existence of "
        "bucket 'b': AWS Error NETWORK_CONNECTION); it tries again at its next save (said once)",
        "warning: Tune could not create the search's folder in its storage (OSError: down); it tries again at its "
        "next save (said once)",
        "warning: Tune could not upload the search's folder to its storage (OSError: AWS Error NETWORK_CONNECTION); "
        "it tries again at its next save (said once)"]
