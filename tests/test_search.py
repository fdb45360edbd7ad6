"""Searches end to end on real Ray: leaderboard, honest Optuna bookkeeping, finalize, and the
guarantee that a validation search never reads test samples (how searches end:
test_search_endings.py; interrupts and resume: test_search_resume.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from zsl_search.data import load_xlsa, read_mat, synthesize, write_mat
from zsl_search.errors import SpecError
from zsl_search.leaderboard import read_rows
from zsl_search.search import parse_spec, run_search


def tiny(storage: Path, **over) -> dict:
    spec = {
        "name": "tiny",
        "dataset": {"path": "demo"},
        "variants": ["fclswgan", "cosgan"],
        "space": {"all": {"hidden": 128, "syn_num": 40, "cls_epochs": 8, "cls_pretrain_epochs": 3}},
        "budget": {"trials": 8, "max_epochs": 3, "grace_epochs": 1},
        "max_concurrent": 1,
        "storage": str(storage),
    }
    spec.update(over)
    return spec


def test_search_writes_every_trial_once_and_tells_optuna_the_truth(ray_local, tmp_path: Path) -> None:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    result = run_search(parse_spec(tiny(tmp_path)), progress=False)
    rows = read_rows(str(tmp_path), "tiny")
    assert len(rows) == 8 and len({r["trial_id"] for r in rows}) == 8
    assert [r["rank"] for r in rows] == list(range(1, 9)) and result.rows == rows
    assert {r["variant"] for r in rows} == {"fclswgan", "cosgan"}  # both variants tried (warm start)
    assert {r["evaluator"] for r in rows} == {"reference+lazy_zsl"}  # the search default
    assert all(r["status"] in ("COMPLETE", "EARLY_STOPPED") for r in rows)
    assert rows[0]["H"] >= rows[-1]["H"] and rows[0]["H"] > 0
    # Every row says how long its trial took to reach its first generator step; with one worker
    # process reused (max_concurrent 1) and the node's shared classifier, later trials start faster
    # than the first, which imported everything and trained the classifier.
    startup = [r["startup_s"] for r in sorted(rows, key=lambda r: r["completed_order"])]
    assert all(s is not None and s >= 0 for s in startup)
    assert min(startup[1:]) < startup[0]

    study = optuna.load_study(study_name="tiny",
                              storage=JournalStorage(JournalFileBackend(str(tmp_path / "tiny" / "optuna.journal"))))
    states = [t.state.name for t in study.trials]
    assert len(states) == 8
    early = sum(r["status"] == "EARLY_STOPPED" for r in rows)
    assert early >= 1  # ASHA did stop trials (sequential trials with a seeded sampler: deterministic)
    # ASHA-stopped trials are PRUNED for the sampler, never COMPLETE with an early value.
    assert states.count("PRUNED") == early and states.count("COMPLETE") == 8 - early
    complete_h = sorted(r["H"] for r in rows if r["status"] == "COMPLETE")
    assert sorted(t.value for t in study.trials if t.state.name == "COMPLETE") == pytest.approx(complete_h)
    # TensorBoard events per trial, and the spec saved beside the results for `resume`.
    assert list((tmp_path / "tiny").glob("*/events.out.tfevents.*"))
    assert yaml.safe_load((tmp_path / "tiny" / "spec.yaml").read_text())["name"] == "tiny"


def test_lazy_zsl_scores_exactly_the_epochs_that_become_best_and_reports_the_same(demo_split,
                                                                                   tmp_path: Path) -> None:
    """runtime.lazy_zsl: a trial trains the ZSL classifier only at epochs that beat its best H so
    far, the only epochs whose ZSL and retrieval the leaderboard reports; what a trial reports
    for its best epoch is what the full protocol gives."""
    import math

    from zsl_search.models import get_variant
    from zsl_search.search._trainable import evaluator_name, extras_above, trial_metrics
    from zsl_search.train import Trainer

    lazy_spec, full_spec = (parse_spec(tiny(tmp_path, runtime={"lazy_zsl": on})) for on in (True, False))
    assert extras_above(full_spec, []) is None
    assert extras_above(parse_spec(tiny(tmp_path, folds=2)), []) is None  # a fold mean: every epoch
    # ... and each leaderboard row names the evaluator that scored it.
    assert evaluator_name(lazy_spec) == "reference+lazy_zsl" and evaluator_name(full_spec) == "reference"
    assert evaluator_name(parse_spec(tiny(tmp_path, folds=2))) == "reference"
    params = get_variant("cgan").make_params({"hidden": 128, "syn_num": 60, "cls_epochs": 8, "epochs": 8},
                                             dataset="demo")
    histories = {}
    for name, spec in (("lazy", lazy_spec), ("full", full_spec)):
        trainer = Trainer(demo_split, variant="cgan", params=params, seed=2)
        for _ in range(params.epochs):
            trainer.fit_epoch(extras_above=extras_above(spec, trainer.history))
        histories[name] = trainer.history
    lazy, full = histories["lazy"], histories["full"]
    h = [r["H"] for r in full]
    assert [r["H"] for r in lazy] == h
    became_best = [r["H"] > max(h[:i], default=-1.0) for i, r in enumerate(full)]
    assert [not math.isnan(r["zsl_acc"]) for r in lazy] == became_best
    assert 1 < sum(became_best) < len(h)  # the test would prove nothing if every epoch (or one) were best
    for row_lazy, row_full, best in zip(lazy, full, became_best):
        if best:
            assert row_lazy == row_full
    metrics = {name: trial_metrics([hist], schedule_steps=1) for name, hist in histories.items()}
    assert {k: v for k, v in metrics["lazy"].items() if k.startswith("best_")} == \
        {k: v for k, v in metrics["full"].items() if k.startswith("best_")}
    # The latest epoch's ZSL curve point is left out where it was not computed (never NaN).
    assert ("last_zsl_acc" in metrics["lazy"]) == became_best[-1] and "last_zsl_acc" in metrics["full"]


def test_a_pack_search_gives_every_member_its_own_optuna_trial_row_and_stop(ray_local, tmp_path: Path) -> None:
    """pack: 3 trains fclswgan trials three at a time as one fused model (cosgan cannot fuse: packs
    of one). Optuna and the leaderboard still see one trial per member, with its own values."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from zsl_search.train import PER_MEMBER

    spec = tiny(tmp_path, name="packed", pack=3, budget={"trials": 7, "max_epochs": 3, "grace_epochs": 1},
                space={"all": {"hidden": 32, "syn_num": 30, "cls_epochs": 3, "cls_pretrain_epochs": 2}})
    run_search(parse_spec(spec), progress=False)
    rows = read_rows(str(tmp_path), "packed")
    assert len(rows) == 7 and len({r["trial_id"] for r in rows}) == 7
    for r in rows:
        r["params"] = json.loads(r["config_json"])
    packs: dict[str, list[dict]] = {}
    for r in rows:
        if r["variant"] == "fclswgan":
            packs.setdefault(r["trial_id"].rsplit("-", 1)[0], []).append(r)
        else:
            assert "-" not in r["trial_id"]  # a cosgan trial is a plain one
    assert packs and max(len(members) for members in packs.values()) == 3
    for members in packs.values():
        shared = [{k: v for k, v in m["params"].items() if k not in PER_MEMBER} for m in members]
        assert all(s == shared[0] for s in shared)  # one network shape and schedule per pack
        if len(members) > 1:
            assert len({m["params"]["lr_g"] for m in members}) == len(members)  # members are sampled apart
        # At the rung after epoch 1 only the best third (reduction_factor 3) of a pack's members trains on.
        assert sum(m["epochs"] > 1 for m in members) <= -(-len(members) // 3)
    assert {r["status"] for r in rows} <= {"COMPLETE", "EARLY_STOPPED"}

    study = optuna.load_study(study_name="packed",
                              storage=JournalStorage(JournalFileBackend(str(tmp_path / "packed" / "optuna.journal"))))
    assert len(study.trials) == 7 and all(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials)
    # Each member's Optuna trial holds that member's own curve: its last report is its row's best H.
    by_params = {json.dumps(r["params"]["lr_g"]): r for r in rows}
    for t in study.trials:
        row = by_params[json.dumps(t.params[f"{t.params['variant']}/lr_g"])]
        assert t.intermediate_values[row["epochs"]] == pytest.approx(row["H"])
        assert t.state.name == ("COMPLETE" if row["status"] == "COMPLETE" else "PRUNED")


def test_a_validation_search_never_reads_test_samples(ray_local, tmp_path: Path) -> None:
    """Replacing every test_seen/test_unseen feature leaves a validation search bit-identical."""
    clean = synthesize(tmp_path / "a" / "SET", preset="demo", seed=5)
    poisoned = tmp_path / "b" / "SET"
    poisoned.mkdir(parents=True)
    (poisoned / "att_splits.mat").write_bytes((clean / "att_splits.mat").read_bytes())
    ds = load_xlsa(clean)
    res = read_mat(clean / "res101.mat")
    features = np.array(res["features"], dtype=np.float32)  # (D, N)
    test_rows = np.concatenate([ds.locs["test_seen"], ds.locs["test_unseen"]])
    features[:, test_rows] = np.random.default_rng(0).random((features.shape[0], test_rows.size), dtype=np.float32)
    write_mat(poisoned / "res101.mat", {"features": features, "labels": res["labels"]})

    boards = []
    for root, name in ((clean, "clean"), (poisoned, "poisoned")):
        spec = tiny(tmp_path / "results", name=name, dataset={"path": str(root)}, scheduler="fifo",
                    sampler={"name": "random", "seed": 3}, budget={"trials": 2, "max_epochs": 4},
                    space={"all": {"hidden": 256, "syn_num": 100, "lr_g": 2.5e-4, "lr_d": 1e-3}})
        run_search(parse_spec(spec), progress=False)
        rows = sorted(read_rows(str(tmp_path / "results"), name), key=lambda r: r["config_json"])
        boards.append([(r["variant"], r["config_json"], r["H"], r["U"], r["S"], r["zsl_acc"]) for r in rows])
    assert boards[0] == boards[1]
    assert any(h > 0 for _, _, h, *_ in boards[0])  # the trials did learn something


def test_finalize_repeats_the_validated_procedure_on_test(ray_local, tmp_path: Path, capfd) -> None:
    """The finalized run is what was validated: same hyperparameters, the generator steps to the
    best validation epoch on the validated schedule, the validated classifier epoch count, its
    last epoch reported. Nothing is chosen on test."""
    import math

    from zsl_search import settings
    from zsl_search.models import get_variant
    from zsl_search.search import finalize
    from zsl_search.store import DataSource, load_split
    from zsl_search.train import train

    spec = tiny(tmp_path, name="fin", scheduler="fifo", variants=["cosgan"], budget={"trials": 2, "max_epochs": 3},
                space={"all": {"hidden": 256, "syn_num": 100, "lr_g": 2.5e-4, "lr_d": 1e-3, "cls_epochs": 8}})
    run_search(parse_spec(spec), progress=False)
    capfd.readouterr()
    rows = finalize(str(tmp_path), "fin", top_k=1, seeds=2)
    best, other = rows
    assert best["test_seeds"] == [0, 1] and 0 < best["test_H_mean"] <= 1 and best["test_H_std"] >= 0
    assert other["test_H_mean"] is None  # only the finalists touch the test split
    assert [r["trial_id"] for r in read_rows(str(tmp_path), "fin")] == [best["trial_id"], other["trial_id"]]
    progress = [line for line in capfd.readouterr().err.splitlines() if line.startswith("finalize fin:")]
    assert len(progress) == 2 and "2/2 retrains done" in progress[-1] and "ETA" in progress[0]

    # What was validated, recorded on the leaderboard ...
    val = load_split(DataSource(path="demo"), cache_dir=settings.cache_dir())
    steps_per_epoch = math.ceil(val.train_x.shape[0] / 64)
    assert best["best_step"] == best["best_epoch"] * steps_per_epoch and best["schedule_steps"] == 3 * steps_per_epoch
    assert 1 <= best["cls_epochs"] <= 8  # the classifier (batch = syn_num) at its best validation epoch:
    assert best["cls_steps"] == best["cls_epochs"] * math.ceil((val.train_x.shape[0] + val.n_unseen * 100) / 100)
    # ... is what finalize trained on test: the same generator and classifier steps, not epochs.
    assert best["test_steps"] == best["best_step"] and best["test_cls_steps"] == best["cls_steps"]
    test = load_split(DataSource(path="demo", protocol="test"), cache_dir=settings.cache_dir())
    params = get_variant("cosgan").make_params({**json.loads(best["config_json"]), "epochs": 3}, dataset="DEMO")
    direct = [train(test, variant="cosgan", params=params, seed=s, steps=best["best_step"],
                    schedule_steps=best["schedule_steps"], cls_epochs=best["cls_epochs"], cls_steps=best["cls_steps"],
                    select_epoch=False).metrics
              for s in (0, 1)]
    assert best["test_H_mean"] == pytest.approx(sum(m["H"] for m in direct) / 2, abs=1e-6)
    assert best["test_U_mean"] == pytest.approx(sum(m["U"] for m in direct) / 2, abs=1e-6)

    # Again, wider and with one seed: it says both that fewer trials qualify and what it replaces.
    capfd.readouterr()
    again = finalize(str(tmp_path), "fin", top_k=5, seeds=1)
    err = capfd.readouterr().err
    assert "warning: --top-k 5: search 'fin' has 2 trial(s) that ended" in err
    assert "replacing the test results finalize wrote before for 1 of these trials (seeds 0-1 there, 0 now)" in err
    assert [r["test_seeds"] for r in again] == [[0], [0]]


def test_a_search_that_selects_on_test_is_marked_and_never_finalized(ray_local, tmp_path: Path, capsys) -> None:
    from zsl_search.cli._search import print_best
    from zsl_search.errors import ConfigError
    from zsl_search.search import finalize

    spec = tiny(tmp_path, name="peek", protocol="test", select_on_test=True, scheduler="fifo", variants=["cgan"],
                budget={"trials": 1, "max_epochs": 1})
    result = run_search(parse_spec(spec), progress=False)
    rows = read_rows(str(tmp_path), "peek")
    assert rows and all(r["selected_on_test"] is True and r["protocol"] == "test" for r in rows)
    capsys.readouterr()
    assert print_best(result, top=3) == 0
    out = capsys.readouterr().out
    assert "ranked by TEST H (select_on_test)" in out and "validation" not in out.splitlines()[0]
    with pytest.raises(ConfigError, match="selected its hyperparameters on the test split"):
        finalize(str(tmp_path), "peek")
    assert read_rows(str(tmp_path), "peek")[0]["test_H_mean"] is None


def test_run_refuses_a_missing_dataset_and_an_existing_search(tmp_path: Path) -> None:
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(tiny(tmp_path / "res", dataset={"path": str(tmp_path / "nope")})))
    r = subprocess.run([sys.executable, "-m", "zsl_search.cli", "search", "run", str(spec_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "nope: not a directory" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "res").exists()  # nothing started, nothing written

    (tmp_path / "res" / "tiny").mkdir(parents=True)
    (tmp_path / "res" / "tiny" / "spec.yaml").write_text("name: tiny\n")
    spec_path.write_text(yaml.safe_dump(tiny(tmp_path / "res")))
    r = subprocess.run([sys.executable, "-m", "zsl_search.cli", "search", "run", str(spec_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "search 'tiny' already exists" in r.stderr and "search resume tiny" in r.stderr
    assert (tmp_path / "res" / "tiny" / "spec.yaml").read_text() == "name: tiny\n"  # untouched


def test_run_refuses_what_it_cannot_run_before_claiming_the_name(tmp_path: Path) -> None:
    # A Ray address nobody listens at, a negative --top: one line each, at once, and the name
    # stays free (a claimed name could only be resumed with the same spec).
    from _ports import free_ports

    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(tiny(tmp_path / "res")))
    (port,) = free_ports(1)
    for flags, line in ((["--address", f"127.0.0.1:{port}"],
                         f"zsl-search: error: cannot reach a Ray cluster at 127.0.0.1:{port} (Connection refused); "
                         "check --address or RAY_ADDRESS, or start one with `ray start --head`"),
                        (["--address", "not a host"], "zsl-search: error: cannot join a Ray cluster at not a host "
                         "(Invalid address format: not a host); check --address or RAY_ADDRESS (and RAY_AUTH_MODE / "
                         "the cluster's auth token), or start one with `ray start --head`"),
                        (["--top", "-1"], "zsl-search: error: --top -1: must be >= 0 (the number of best trials to print)")):
        r = subprocess.run([sys.executable, "-m", "zsl_search.cli", "search", "run", str(spec_path), *flags],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and r.stderr.strip().splitlines()[-1] == line, r.stderr
        assert "Traceback" not in r.stderr and not (tmp_path / "res").exists()
    # A taken name is refused before Ray starts (no Ray log lines, no waiting for it).
    (tmp_path / "res" / "tiny").mkdir(parents=True)
    (tmp_path / "res" / "tiny" / "spec.yaml").write_text("name: tiny\n")
    r = subprocess.run([sys.executable, "-m", "zsl_search.cli", "search", "run", str(spec_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "search 'tiny' already exists" in r.stderr
    assert "Ray" not in r.stderr and len(r.stderr.strip().splitlines()) == 1  # the error alone


def test_run_refuses_resources_no_node_has_before_claiming_the_name(ray_local, tmp_path: Path, capsys) -> None:
    from zsl_search.errors import ConfigError
    from zsl_search.search._run import check_resources

    spec = parse_spec(tiny(tmp_path / "res", resources={"cpu": 64, "gpu": 0}))
    with pytest.raises(ConfigError, match=r"a trial needs cpu=64, gpu=0 on one node, more than this machine has "
                                          r"\(at most cpu=2, gpu=0\); lower resources in the spec"):
        run_search(spec, progress=False)  # it would wait for a 64-CPU node forever
    assert not (tmp_path / "res").exists()
    check_resources(spec, cluster=True)  # a cluster's autoscaler may add one: a warning, and on
    assert "trials wait until such a node joins" in capsys.readouterr().err
    check_resources(parse_spec(tiny(tmp_path / "res")), cluster=False)  # 1 CPU fits


def test_resume_refuses_a_search_saved_with_another_storage_before_starting_anything(tmp_path: Path) -> None:
    from zsl_search.errors import ConfigError
    from zsl_search.search import resume_search

    moved = tmp_path / "moved"
    (moved / "tiny").mkdir(parents=True)
    (moved / "tiny" / "spec.yaml").write_text(yaml.safe_dump(tiny(tmp_path / "res")))  # where it ran
    with pytest.raises(ConfigError, match=f"was started with storage {tmp_path / 'res'}; resume it from there"):
        resume_search("tiny", storage=str(moved))
    assert not (tmp_path / "res").exists() and sorted(p.name for p in (moved / "tiny").iterdir()) == ["spec.yaml"]
    (moved / "tiny" / "spec.yaml").write_text("name: [")
    with pytest.raises(SpecError, match="spec.yaml: cannot read YAML"):
        resume_search("tiny", storage=str(moved))
    from zsl_search.leaderboard import LeaderboardWriter, SearchNotFound

    LeaderboardWriter(str(moved), "other").write([])  # indexed: a search the message can name
    with pytest.raises(SearchNotFound, match=r"no search 'tiy' under .*moved \(tiy/spec.yaml not found\); "
                                             r"searches there: other"):
        resume_search("tiy", storage=str(moved))
    for bad in ("Bad/..", "../moved/tiny", "", "x y"):  # no search can be called that: the rule, not a storage key
        with pytest.raises(SearchNotFound, match=rf"^{re.escape(repr(bad))} is not a search name \(1-63 lowercase "
                                                 r"letters, digits and '-', .*\); searches there: other$"):
            resume_search(bad, storage=str(moved))


def test_the_driver_has_the_store_train_the_first_trials_frozen_classifier_before_they_start(
        ray_local, _hermetic_cache: Path, tmp_path: Path) -> None:
    """`_prewarm_store` starts the node's store and queues the frozen classifier for every
    ``cls_pretrain_epochs`` the spec decides (fixed here), not for one a trial samples, and none
    when trials train their own (``runtime.shared_classifier: false``)."""
    from zsl_search.search._run import _classifier_lengths, _prewarm_store
    from zsl_search.store import DataSource, get_store, release_stores

    spec = parse_spec(tiny(tmp_path, name="prewarm"))
    assert _classifier_lengths(spec, "DEMO") == [3]
    source = DataSource.from_spec(spec)
    _prewarm_store(source, spec, _hermetic_cache, defaults="DEMO")
    store = get_store(source, search="prewarm", cache_dir=_hermetic_cache)
    assert ray_local.get(store.stats.remote())["classifiers"] == 1  # an actor runs its calls in order
    release_stores("prewarm")
    sampled = tiny(tmp_path, name="prewarm")
    sampled["space"]["all"]["cls_pretrain_epochs"] = {"low": 2, "high": 5}
    assert _classifier_lengths(parse_spec(sampled), "DEMO") == []
    assert _classifier_lengths(parse_spec(tiny(tmp_path, runtime={"shared_classifier": False})), "DEMO") == []


def test_a_fold_search_scores_each_trial_by_its_mean_over_class_folds(ray_local, tmp_path: Path) -> None:
    """folds: 2 trains one GAN per validation class fold; the row's H is their mean at the best epoch."""
    from zsl_search import settings
    from zsl_search.models import get_variant
    from zsl_search.store import DataSource, load_split
    from zsl_search.train import train

    spec = tiny(tmp_path, name="folds", folds=2, scheduler="fifo", variants=["cgan"],
                budget={"trials": 1, "max_epochs": 2}, space={"all": {"hidden": 64, "syn_num": 40, "cls_epochs": 4,
                                                                      "cls_pretrain_epochs": 2}})
    run_search(parse_spec(spec), progress=False)
    (row,) = read_rows(str(tmp_path), "folds")
    params = get_variant("cgan").make_params({**json.loads(row["config_json"]), "epochs": 2}, dataset="DEMO")
    curves = [[h["H"] for h in train(load_split(DataSource(path="demo", fold=k), cache_dir=settings.cache_dir()),
                                     variant="cgan", params=params, seed=0).history] for k in (0, 1)]
    assert curves[0] != curves[1]  # two different sets of validation classes
    mean = [(a + b) / 2 for a, b in zip(*curves, strict=True)]
    assert row["H"] == pytest.approx(max(mean), abs=1e-9) and row["best_epoch"] == mean.index(max(mean)) + 1


def test_a_resumed_trial_reporting_an_epoch_again_keeps_the_first_value_without_a_warning(tmp_path: Path) -> None:
    # A trial restored from a checkpoint older than its last report retrains (and reports) those
    # epochs again: Optuna keeps the first value of each step, and the searcher says nothing.
    import warnings

    from zsl_search.search._optuna import make_searcher

    spec = parse_spec({"name": "rep", "dataset": {"path": "demo"}, "variants": ["cgan"], "storage": str(tmp_path),
                       "budget": {"trials": 2, "max_epochs": 3}, "space": {"cgan": {"lr_g": {"low": 1e-4, "high": 1e-3}}}})
    searcher = make_searcher(spec, journal=tmp_path / "optuna.journal", study_name="rep", dataset="DEMO")
    searcher.set_search_properties("best_H", "max", {})
    assert searcher.suggest("t1")["variant"] == "cgan"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        for step, value in ((1, 0.2), (2, 0.3), (2, 0.9)):
            searcher.on_trial_result("t1", {"best_H": value, "training_iteration": step})
    trial = searcher._ot_study.trials[0]
    assert trial.intermediate_values == {1: 0.2, 2: 0.3}


def test_a_slow_draw_of_the_sampler_brings_no_tune_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tune times the define-by-run space, Optuna's sampling inside it, and warns past 1 s (TPE
    # over many trials on a busy machine) that computation belongs in the trainable.
    import time
    import warnings

    from zsl_search.search import _optuna

    draw, slowed = _optuna._suggest, []

    def slow(*args):
        if not slowed:  # the first parameter's draw only: past 1 s in all
            time.sleep(1.1)
            slowed.append(args[1])
        return draw(*args)

    monkeypatch.setattr(_optuna, "_suggest", slow)
    spec = parse_spec({"name": "slow", "dataset": {"path": "demo"}, "variants": ["cgan"], "storage": str(tmp_path),
                       "warm_start": False, "budget": {"trials": 2, "max_epochs": 3},
                       "space": {"cgan": {"lr_g": {"low": 1e-4, "high": 1e-3}}}})
    searcher = _optuna.make_searcher(spec, journal=tmp_path / "optuna.journal", study_name="slow", dataset="DEMO")
    searcher.set_search_properties("best_H", "max", {})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        config = searcher.suggest("t1")
    assert slowed and 1e-4 <= config["cgan"]["lr_g"] <= 1e-3


def test_a_trial_the_journal_holds_as_finished_is_not_reported_again(tmp_path: Path) -> None:
    # Tune's saved state older than the journal (an S3 outage, then `leaderboard sync`): a
    # restored search runs a trial again that the study already ended. Its end stays as told.
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from zsl_search.search._optuna import make_searcher

    spec = parse_spec({"name": "fin", "dataset": {"path": "demo"}, "variants": ["cgan"], "storage": str(tmp_path),
                       "budget": {"trials": 2, "max_epochs": 3}, "space": {"cgan": {"lr_g": {"low": 1e-4, "high": 1e-3}}}})
    journal = tmp_path / "optuna.journal"
    searcher = make_searcher(spec, journal=journal, study_name="fin", dataset="DEMO")
    searcher.set_search_properties("best_H", "max", {})
    searcher.suggest("t1")
    searcher.on_trial_result("t1", {"best_H": 0.2, "training_iteration": 1})
    # The earlier driver (another journal writer) ended the trial after this searcher was saved.
    other = optuna.load_study(study_name="fin", storage=JournalStorage(JournalFileBackend(str(journal))))
    other.tell(other.trials[0].number, 0.5)
    for step in (2, 3):
        searcher.on_trial_result("t1", {"best_H": 0.7, "training_iteration": step, "epoch": step})
    searcher.on_trial_complete("t1", {"best_H": 0.7, "training_iteration": 3, "epoch": 3})
    (trial,) = optuna.load_study(study_name="fin", storage=JournalStorage(JournalFileBackend(str(journal)))).trials
    assert trial.state == optuna.trial.TrialState.COMPLETE and trial.value == 0.5
    assert trial.intermediate_values == {1: 0.2}
