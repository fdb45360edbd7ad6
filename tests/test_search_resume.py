"""SIGINT/SIGTERM to a search (to its driver or its whole process group), a driver killed
outright, Tune state files cut short, damaged journals: then `search resume` ends every trial
exactly once, each continuing from its checkpoint."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from zsl_search.leaderboard import read_rows
from zsl_search.search import parse_spec, run_search

from _searches import SMALL, optuna_states, reports, sigterm_once


def _driver(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "zsl_search.cli", "search", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _interrupt_once_reported(driver: subprocess.Popen, experiment: Path, send) -> tuple[str, str]:
    """Signal ``driver`` once its trials have reported two more epochs than before it started."""
    before = sum(len(e) for e in reports(experiment).values())
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and driver.poll() is None:
        if sum(len(e) for e in reports(experiment).values()) >= before + 2:
            break
        time.sleep(0.1)
    if driver.poll() is not None:
        out, err = driver.communicate()
        raise AssertionError(f"the driver ended (exit {driver.returncode}) before it could be signalled:\n{err[-3000:]}")
    send(driver)
    return driver.communicate(timeout=240)


def _saved_checkpoints(experiment: Path) -> dict[str, str]:
    """``{trial_id: checkpoint name}`` of the trials whose newest saved Tune state names a checkpoint."""
    import ray.cloudpickle

    state = json.loads(sorted(experiment.glob("experiment_state-*.json"))[-1].read_text())
    named = {}
    for trial, meta in state["trial_data"]:
        manager = ray.cloudpickle.loads(bytes.fromhex(json.loads(meta)["checkpoint_manager"]["value"]))
        result = manager.latest_checkpoint_result
        if result is not None and result.checkpoint is not None:
            named[json.loads(trial)["trial_id"]] = Path(result.checkpoint.path).name
    assert named, "no trial's saved state names a checkpoint; signal the driver later"
    return named


@pytest.mark.slow  # two drivers of its own, each starting Ray: 60-100 s on 2 cores (`make test-slow`)
def test_sigterm_to_the_group_then_a_killed_driver_then_resume_account_for_every_trial_once(ray_local, tmp_path: Path,
                                                                                            capfd) -> None:
    storage = tmp_path / "results"
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump({
        "name": "intr", "dataset": {"path": "demo"}, "variants": ["fclswgan"], "space": {"all": SMALL},
        "budget": {"trials": 3, "max_epochs": 8}, "scheduler": "fifo", "max_concurrent": 2, "storage": str(storage),
    }))
    resume_cmd = f"zsl-search search resume intr --storage {storage}"
    # `timeout`, a batch scheduler, `kill -- -PGID`: SIGTERM to the whole process group of a
    # driver that does not lead it (here its parent does, as `timeout` would). Ray's processes
    # keep running under the driver while it stops the trials and saves the state.
    parent = "import signal, subprocess, sys; signal.signal(signal.SIGTERM, lambda *a: None); " \
             "sys.exit(subprocess.call(sys.argv[1:]))"
    driver = subprocess.Popen([sys.executable, "-c", parent, sys.executable, "-m", "zsl_search.cli", "search", "run",
                               str(spec_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)
    out, err = _interrupt_once_reported(driver, storage / "intr", lambda p: os.killpg(p.pid, signal.SIGTERM))
    assert driver.returncode == 130 and "GCS" not in err, err[-3000:]
    assert not (storage / "_running" / "intr.json").exists()  # the driver ended as it should, marker and all
    first = read_rows(str(storage), "intr")
    reported = {tid for tid, epochs in reports(storage / "intr").items() if epochs}
    assert {r["trial_id"] for r in first} == reported and len(first) == len(reported), out + err[-2000:]
    assert all(r["status"] == "INTERRUPTED" for r in first)
    assert "the search was interrupted" in out and resume_cmd in err and "Traceback" not in err
    # Ray's own start-up lines (it started; token auth is on, its default) say nothing to act on.
    assert "Started a local Ray instance" not in err and "Token authentication is enabled" not in err
    # Interrupted trials continue from their checkpoints: so far every epoch once, in order.
    assert all(epochs == list(range(1, len(epochs) + 1)) for epochs in reports(storage / "intr").values())

    # A driver killed just after Tune replaced a trial's checkpoint by the next epoch's, before
    # the state naming the new one reached storage: the saved state names a deleted checkpoint.
    # Made here, not left to the luck of timing (SIGKILL below lands in that moment at times):
    # one trial keeps only the checkpoint its saved state names, one index on. (Not read from its
    # result log: a signal can land after Tune logged a result and before it registered that
    # result's checkpoint, and the state then names none for that trial.)
    tid, last = next(iter(_saved_checkpoints(storage / "intr").items()))
    trial_dir = next((storage / "intr").glob(f"{tid}-*"))
    for path in trial_dir.glob("checkpoint_*"):
        if path.name != last:
            shutil.rmtree(path)  # older ones, and any a worker wrote but never got to report
    index = int(last.rsplit("_", 1)[1])
    (trial_dir / last).rename(trial_dir / f"checkpoint_{index + 1:06d}")

    # A driver killed outright (SIGKILL to it and its Ray) saves nothing on the way out.
    driver = _driver("resume", "intr", "--storage", str(storage))
    _, err = _interrupt_once_reported(driver, storage / "intr", lambda p: os.killpg(p.pid, signal.SIGKILL))
    assert f"continuing from checkpoint_{index + 1:06d}" in err, err[-3000:]
    # Killed while its sync wrote Tune's state files over the ones in storage, in place (the
    # SIGKILL lands there at times; made certain here): they are left empty, tuner.pkl and the
    # killed session's own state, if it saved one, which no driver had copied yet, among them.
    copied = {p.name for p in (storage / "intr" / ".tune-state").iterdir()}
    states = {p.name for p in (storage / "intr").glob("experiment_state-*.json")}
    assert "tuner.pkl" in copied and states & copied, (copied, states)  # the first run's, at least
    for path in (storage / "intr").iterdir():
        if path.suffix in (".json", ".pkl"):
            path.write_bytes(b"")

    from zsl_search.cli import main

    capfd.readouterr()
    code = main(["search", "resume", "intr", "--storage", str(storage)])  # in this process: one Ray start less
    out, err = capfd.readouterr()
    assert code == 0, err[-3000:]
    assert "Restoring the run from the latest experiment state" not in err  # Tune's INFO line, said by us
    assert "tuner.pkl was cut short by a killed driver; put back" in err, err[-3000:]
    for name in states - copied:
        assert f"{name} was cut short by a killed driver and has no copy; moved aside" in err, err[-3000:]
    assert "the search ran its whole budget" in out
    rows = read_rows(str(storage), "intr")
    assert len(rows) == 3 and len({r["trial_id"] for r in rows}) == 3  # every trial exactly once
    assert {r["trial_id"] for r in first} <= {r["trial_id"] for r in rows}
    ends = {r["trial_id"]: (r["status"], r["epochs"], r["error"]) for r in rows}
    assert all(r["status"] == "COMPLETE" and r["epochs"] == 8 for r in rows), ends
    # The finishing run went on from each trial's checkpoint and trained every remaining epoch
    # once, in order, to the last. (Earlier epochs are not checked line by line: Tune's result
    # log is buffered, so the killed driver may have lost its last lines, never the training.)
    for path in (storage / "intr").glob("*/result.json"):
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        restart = max(i for i, line in enumerate(lines) if line["iterations_since_restore"] == 1)
        tail = [line["epoch"] for line in lines[restart:]]
        assert tail == list(range(tail[0], 9)), (path.parent.name, [line["epoch"] for line in lines])


def _checkpoints(fs, root: str) -> dict[str, int]:
    import pyarrow.fs as pafs

    found = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    return {info.path[len(root) + 1:]: info.size for info in found if info.type == pafs.FileType.File}


def test_tune_state_cut_short_is_put_back_from_its_copy_and_never_copied_over_a_good_one(tmp_path: Path) -> None:
    from zsl_search.search._tune_state import TUNE_STATE_COPIES, keep_tune_state, repair_tune_state

    exp = tmp_path / "search"
    exp.mkdir()
    good = {"tuner.pkl": pickle.dumps({"trainable": "run_trial", "space": list(range(100))}),
            "experiment_state-1.json": json.dumps({"runner_data": {"n": 1}}).encode(),
            "searcher-state-1.pkl": pickle.dumps(["optuna"] * 50),
            "search_gen_state-1.json": pickle.dumps({"counter": 3})}  # a pickle, whatever its name says
    for name, data in good.items():
        (exp / name).write_bytes(data)
    (exp / "leaderboard.csv").write_text("not Tune's\n")
    keep_tune_state(exp)
    assert sorted(p.name for p in (exp / TUNE_STATE_COPIES).iterdir()) == sorted(good)

    # A killed driver's sync: two files cut short, and a newer session's state that no copy has.
    (exp / "tuner.pkl").write_bytes(good["tuner.pkl"][:40])
    (exp / "experiment_state-1.json").write_bytes(b"")
    (exp / "experiment_state-2.json").write_bytes(b'{"runner_data": {"n"')
    keep_tune_state(exp)  # an incomplete file never replaces its copy, nor gets one
    assert not (exp / TUNE_STATE_COPIES / "experiment_state-2.json").exists()
    assert (exp / TUNE_STATE_COPIES / "tuner.pkl").read_bytes() == good["tuner.pkl"]

    done = repair_tune_state(exp)
    assert len(done) == 3, done
    assert {name: (exp / name).read_bytes() for name in good} == good
    assert not (exp / "experiment_state-2.json").exists()
    assert (exp / "experiment_state-2.json.damaged").read_bytes() == b'{"runner_data": {"n"'
    assert (exp / "leaderboard.csv").read_text() == "not Tune's\n"
    assert repair_tune_state(exp) == []  # nothing left to repair

    # tuner.pkl without a copy (a search from before copies were kept) stays for the restore to name.
    shutil.rmtree(exp / TUNE_STATE_COPIES)
    (exp / "tuner.pkl").write_bytes(b"")
    assert repair_tune_state(exp) == [] and (exp / "tuner.pkl").exists()


def test_a_running_search_refreshes_its_tune_state_copies_at_most_every_period(tmp_path: Path) -> None:
    from zsl_search.search._callbacks import TuneStateCopies
    from zsl_search.search._tune_state import TUNE_STATE_COPIES

    (tmp_path / "experiment_state-1.json").write_text('{"n": 1}')
    copies = TuneStateCopies(str(tmp_path), every_s=3600.0)
    copies.on_step_end(iteration=1, trials=[])
    assert not (tmp_path / TUNE_STATE_COPIES).exists()  # the period has not passed
    copies.every_s = 0.0
    copies.on_step_end(iteration=2, trials=[])
    assert (tmp_path / TUNE_STATE_COPIES / "experiment_state-1.json").read_text() == '{"n": 1}'
    (tmp_path / "experiment_state-1.json").write_text('{"n": 2')  # mid-write: not copied over
    copies.on_step_end(iteration=3, trials=[])
    assert (tmp_path / TUNE_STATE_COPIES / "experiment_state-1.json").read_text() == '{"n": 1}'


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_checkpoint_named_by_a_stale_state_is_found_under_its_newer_name(where: str, request, tmp_path: Path) -> None:
    import pyarrow.fs as pafs

    from zsl_search.search._callbacks import _repair_checkpoint
    from zsl_search.storage import pyarrow_filesystem

    if where == "s3":
        server = request.getfixturevalue("s3_server")
        fs, root = pyarrow_filesystem(f"s3://{server.make_bucket('zsl-search-repair')}/trial")
    else:
        fs, root = pafs.LocalFileSystem(), str(tmp_path / "trial")
    for name, data in {"checkpoint_000002/trainer-0.pt": b"old", "checkpoint_000004/trainer-0.pt": b"epoch 5",
                       "checkpoint_000004/extra/x.bin": b"xy", "checkpoint_000006/trainer-0.pt": b"half",
                       "result.json": b"{}"}.items():
        fs.create_dir(f"{root}/{name}".rsplit("/", 1)[0])
        with fs.open_output_stream(f"{root}/{name}") as f:
            f.write(data)
    before = _checkpoints(fs, root)

    assert _repair_checkpoint(fs, f"{root}/checkpoint_000002") is None  # there: nothing moves
    assert _repair_checkpoint(fs, f"{root}/checkpoint_000007") is None  # nothing newer: nothing to find
    assert _repair_checkpoint(fs, f"{root}/not_a_checkpoint_x") is None
    assert _checkpoints(fs, root) == before

    # The first later one replaced it; any after that were never registered (maybe half written).
    assert _repair_checkpoint(fs, f"{root}/checkpoint_000003") == "checkpoint_000004"
    assert _checkpoints(fs, root) == {"checkpoint_000002/trainer-0.pt": 3, "checkpoint_000003/trainer-0.pt": 7,
                                      "checkpoint_000003/extra/x.bin": 2, "result.json": 2}
    with fs.open_input_stream(f"{root}/checkpoint_000003/trainer-0.pt") as f:
        assert f.read() == b"epoch 5"


def _epochs_reported(experiment: Path) -> int:
    return sum(len(e) for e in reports(experiment).values())


def test_an_interrupted_pack_resumes_and_keeps_each_members_row_once(ray_local, tmp_path: Path, capfd) -> None:
    """pack: 3, stopped after the rung at epoch 2 (where two of the three members stop), then
    resume: the pack continues from its checkpoint and every member ends once, in its own way."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from zsl_search.search import resume_search

    storage = tmp_path / "results"
    spec = parse_spec({
        "name": "packed", "dataset": {"path": "demo"}, "variants": ["fclswgan"], "space": {"all": SMALL},
        # 14 epochs after the rung: time for the signal to land before the last member finishes
        "budget": {"trials": 3, "max_epochs": 16, "grace_epochs": 2}, "pack": 3, "max_concurrent": 1,
        "storage": str(storage),
    })
    with sigterm_once(lambda: _epochs_reported(storage / "packed") >= 2):
        interrupted = run_search(spec, progress=False)
    assert interrupted.ending == "interrupted"
    first = {r["trial_id"]: r["status"] for r in read_rows(str(storage), "packed")}
    assert sorted(first.values()) == ["EARLY_STOPPED", "EARLY_STOPPED", "INTERRUPTED"], first

    capfd.readouterr()
    finished = resume_search("packed", storage=str(storage), progress=True)
    err = capfd.readouterr().err
    assert finished.ending == "finished", err[-3000:]
    assert "[3/3]" in err and "[4/3]" not in err  # the members that had ended are not counted again
    rows = read_rows(str(storage), "packed")
    assert {r["trial_id"] for r in rows} == set(first) and len(rows) == 3
    assert sorted((r["status"], r["epochs"]) for r in rows) == [("COMPLETE", 16), ("EARLY_STOPPED", 2),
                                                                ("EARLY_STOPPED", 2)]
    (epochs,) = reports(storage / "packed").values()  # one Tune trial: the pack, every epoch once
    assert sorted(set(epochs)) == list(range(1, 17))
    study = optuna.load_study(study_name="packed", storage=JournalStorage(
        JournalFileBackend(str(storage / "packed" / "optuna.journal"))))
    assert sorted(t.state.name for t in study.trials) == ["COMPLETE", "PRUNED", "PRUNED"]
    complete = next(r for r in rows if r["status"] == "COMPLETE")
    assert [t.value for t in study.trials if t.state.name == "COMPLETE"] == [pytest.approx(complete["H"])]


def test_sigterm_to_the_driver_ends_the_search_like_ctrl_c(ray_local, tmp_path: Path) -> None:
    """SIGTERM (``kill PID``, ``ray job stop``) to a driver running a search in this very process."""
    spec = parse_spec({
        "name": "term", "dataset": {"path": "demo"}, "variants": ["fclswgan"], "space": {"all": SMALL},
        "budget": {"trials": 2, "max_epochs": 10_000}, "scheduler": "fifo", "max_concurrent": 2,
        "storage": str(tmp_path),
    })
    # Whatever handled SIGTERM before the search handles it again afterwards (checked inside).
    with sigterm_once(lambda: _epochs_reported(tmp_path / "term") >= 2):
        result = run_search(spec, progress=False)
    assert result.ending == "interrupted"
    rows = read_rows(str(tmp_path), "term")
    reported = {tid for tid, epochs in reports(tmp_path / "term").items() if epochs}
    assert {r["trial_id"] for r in rows} == reported and rows
    assert all(r["status"] == "INTERRUPTED" for r in rows)
    assert "RUNNING" in optuna_states(tmp_path, "term")  # left for `search resume` to continue


def test_a_search_interrupted_before_any_report_prints_only_its_own_lines(ray_local, fragile, tmp_path: Path,
                                                                          capfd) -> None:
    # Trials stalled before their first epoch when the signal lands: they have no result file
    # yet, which Tune would report as "Failed to fetch metrics" with a FileNotFoundError per trial.
    from zsl_search.cli import main

    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump({
        "name": "early-int", "dataset": {"path": "demo"}, "variants": [fragile], "space": {fragile: {"stall_s": 6.0}},
        "budget": {"trials": 2, "max_epochs": 2}, "scheduler": "fifo", "max_concurrent": 2,
        "storage": str(tmp_path / "results"),
    }))
    with sigterm_once(lambda: len(list((tmp_path / "results" / "early-int").glob("*-fragile"))) == 2):
        code = main(["search", "run", str(spec_path)])
    err = capfd.readouterr().err
    assert code == 130 and not reports(tmp_path / "results" / "early-int"), err[-3000:]
    assert "Failed to fetch metrics" not in err and "FileNotFoundError" not in err, err[-3000:]
    assert "zsl-search: interrupted; continue with: zsl-search search resume early-int" in err
    # Tune's "Stop signal received ... Press CTRL+C ... to skip", in our words.
    assert "Stop signal received" not in err and "zsl-search: stopping: the trials stop" in err, err[-3000:]


def test_ctrl_c_while_ray_stops_after_the_search_exits_130_without_a_traceback(tmp_path: Path) -> None:
    # Ray stops in a second or two after the leaderboard is out; a Ctrl-C then used to land in
    # Ray's own exit hook: a KeyboardInterrupt traceback and exit status 0.
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump({
        "name": "stopping", "dataset": {"path": "demo"}, "variants": ["cgan"], "sampler": "random",
        "budget": {"trials": 1, "max_epochs": 1}, "storage": str(tmp_path / "results"),
    }))
    driver = subprocess.Popen([sys.executable, "-m", "zsl_search.cli", "search", "run", str(spec_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    out, deadline = b"", time.monotonic() + 240
    while b" COMPLETE " not in out and time.monotonic() < deadline:  # the leaderboard's row: main is returning
        chunk = os.read(driver.stdout.fileno(), 65536)
        if not chunk:
            break
        out += chunk
    assert b" COMPLETE " in out, driver.communicate()[1][-3000:]
    os.killpg(driver.pid, signal.SIGINT)
    _, err = driver.communicate(timeout=240)
    assert driver.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "Exception ignored" not in err, err[-3000:]
    assert "zsl-search: interrupted" in err
    assert read_rows(str(tmp_path / "results"), "stopping")[0]["status"] == "COMPLETE"  # the finished search stands


def test_a_signal_during_ray_start_or_an_import_is_delivered_right_after_it() -> None:
    from zsl_search._ray import signals_deferred

    reached = []
    before, term = signal.getsignal(signal.SIGINT), signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        with pytest.raises(KeyboardInterrupt):
            with signals_deferred(signal.SIGINT, signal.SIGTERM):
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while Ray starts
                time.sleep(0.2)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as ray.init sets its own
                reached.append("the held work finished")
            reached.append("never: the interrupt comes first")
        assert reached == ["the held work finished"] and signal.getsignal(signal.SIGINT) is before
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN  # the handler from before is back
        with signals_deferred(signal.SIGINT):  # nothing caught: nothing delivered
            pass
        reached.clear()
        with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C means it: at once
            with signals_deferred(signal.SIGINT):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.2)
                reached.append("after the first")
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.2)
                reached.append("never")
        assert reached == ["after the first"] and signal.getsignal(signal.SIGINT) is before
    finally:
        signal.signal(signal.SIGTERM, term)


def _journal(path: Path, trials: int) -> bytes:
    """A real Optuna journal of ``trials`` finished trials."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study = optuna.create_study(study_name="j", storage=JournalStorage(JournalFileBackend(str(path))),
                                load_if_exists=True)
    for i in range(trials):
        study.tell(study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}), float(i))
    return path.read_bytes()


def test_a_journal_cut_mid_line_loses_only_that_line_and_stays_appendable(tmp_path: Path, capsys) -> None:
    from zsl_search.search._journal import check_journal

    path = tmp_path / "optuna.journal"
    whole = _journal(path, 2)
    path.write_bytes(whole + whole.splitlines(keepends=True)[-1][:15])  # a killed driver's last append
    check_journal(path, trials=2)
    assert path.read_bytes() == whole
    assert "dropped its cut last line (15 bytes" in capsys.readouterr().err
    _journal(path, 1)  # Optuna appends to it again, and reads it back: 3 trials, none glued
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(study_name="j", storage=JournalStorage(JournalFileBackend(str(path))))
    assert [t.value for t in study.trials] == [0.0, 1.0, 0.0]
    capsys.readouterr()
    check_journal(path, trials=3)  # an intact journal is left as it is
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("damage", ["a bad line", "cut short", "missing"])
def test_a_journal_that_lost_its_history_is_refused_in_one_line(damage: str, tmp_path: Path) -> None:
    from zsl_search.errors import StorageError
    from zsl_search.search._journal import check_journal

    path = tmp_path / "optuna.journal"
    lines = _journal(path, 3).splitlines(keepends=True)
    if damage == "a bad line":
        path.write_bytes(b"".join(lines[:2] + [b'{"op_code": 4, "stu\n'] + lines[2:]))
        expected = "line 3 is not an Optuna journal entry"
    elif damage == "cut short":
        path.write_bytes(b"".join(line for line in lines if b'"op_code":4' not in line or line == lines[1]))
        expected = "1 trial(s) in the journal, but Tune's saved state holds 3"
    else:
        path.unlink()
        expected = "missing"
    before = path.read_bytes() if path.exists() else None
    with pytest.raises(StorageError, match="cannot be resumed") as caught:
        check_journal(path, trials=3)
    assert expected in str(caught.value) and "\n" not in str(caught.value) and str(path) in str(caught.value)
    assert (path.read_bytes() if path.exists() else None) == before  # refused: nothing rewritten


def test_resume_refuses_a_damaged_journal_before_ray_starts(tmp_path: Path) -> None:
    storage = tmp_path / "results"
    spec = {"name": "dmg", "dataset": {"path": "demo"}, "variants": ["cgan"], "budget": {"trials": 4, "max_epochs": 1},
            "storage": str(storage)}
    (storage / "dmg").mkdir(parents=True)
    (storage / "dmg" / "spec.yaml").write_text(yaml.safe_dump(spec))
    (storage / "dmg" / "experiment_state-2026-01-01_00-00-00.json").write_text(
        json.dumps({"trial_data": [["{}", "{}"]] * 4, "runner_data": {}, "stats": {}}))
    _journal(storage / "dmg" / "optuna.journal", 2)
    proc = subprocess.run([sys.executable, "-m", "zsl_search.cli", "search", "resume", "dmg", "--storage",
                           str(storage)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "2 trial(s) in the journal, but Tune's saved state holds 4" in proc.stderr
    assert "Ray" not in proc.stderr  # refused before Ray started (its start-up prints a line)


def test_a_search_killed_before_tune_saved_any_state_resumes_its_whole_budget(ray_local, tmp_path: Path,
                                                                              capfd) -> None:
    # What a SIGKILL in a driver's first seconds leaves: the spec, the Tuner's tuner.pkl and the
    # journal of its first asks, but no run state and no row. Made here from a finished search.
    from zsl_search.search import resume_search

    spec = parse_spec({
        "name": "early-kill", "dataset": {"path": "demo"}, "variants": ["cgan", "cosgan"], "space": {"all": SMALL},
        "budget": {"trials": 3, "max_epochs": 1}, "scheduler": "fifo", "max_concurrent": 1, "storage": str(tmp_path),
    })
    first = run_search(spec, progress=False)
    experiment = tmp_path / "early-kill"
    for path in experiment.iterdir():
        if path.name.startswith(("experiment_state-", "search_gen_state-", "searcher-state-", "leaderboard.")):
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path)
    assert {p.name for p in experiment.iterdir() if not p.name.startswith(".")} == {"spec.yaml", "tuner.pkl",
                                                                                    "optuna.journal"}
    capfd.readouterr()
    again = resume_search("early-kill", storage=str(tmp_path), progress=False)
    assert "'early-kill' was stopped before Tune saved its first state; it starts over" in capfd.readouterr().err
    assert again.ending == "finished" and again.trials == 3 and len(again.rows) == 3
    # Started over on a fresh journal: the same trials as the first run, and a study of 3.
    assert sorted(r["config_json"] for r in again.rows) == sorted(r["config_json"] for r in first.rows)
    assert len(optuna_states(tmp_path, "early-kill")) == 3


def test_a_leaderboard_that_ended_every_trial_needs_no_resume_though_tunes_state_is_older(tmp_path: Path) -> None:
    # An S3 outage kept Tune from uploading its last states while the driver went on to the end;
    # `leaderboard sync` uploaded the rows. Tune's saved state still shows trials running.
    from zsl_search.leaderboard import LeaderboardWriter
    from zsl_search.search._run import _nothing_to_resume

    spec = parse_spec({"name": "stale", "dataset": {"path": "demo"}, "variants": ["cgan"], "storage": str(tmp_path),
                       "budget": {"trials": 3, "max_epochs": 2}})
    saved = {"a": "TERMINATED", "b": "RUNNING"}  # as Tune saved it before the outage
    row = {"search": "stale", "dataset": "DEMO", "protocol": "validation", "variant": "cgan", "epochs": 2,
           "best_epoch": 2, "H": 0.5, "U": 0.4, "S": 0.6, "zsl_acc": 0.5, "seconds": 1.0, "seed": 0, "params": {}}
    writer = LeaderboardWriter(str(tmp_path), "stale")
    writer.write([{**row, "trial_id": "a", "status": "COMPLETE", "completed_order": 1},
                  {**row, "trial_id": "b", "status": "INTERRUPTED", "completed_order": 2}])
    assert _nothing_to_resume(spec, saved, 0.0) is None  # b was cut short, c never ran
    writer.write([{**row, "trial_id": "b", "status": "EARLY_STOPPED", "completed_order": 3},
                  {**row, "trial_id": "c", "status": "ERROR", "H": None, "U": None, "S": None, "completed_order": 4}])
    done = _nothing_to_resume(spec, saved, 0.0)
    assert done is not None and not done.ran and done.ending == "finished"
    assert sorted(r["trial_id"] for r in done.rows) == ["a", "b", "c"] and done.trials == 3 and done.failed == 1
    assert done.notes == ["nothing to resume: every trial of its budget (3) had ended; the leaderboard is as it was"]
