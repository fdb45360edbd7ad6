"""Finalize a search: repeat its best trials' validated procedure on the TEST protocol, several
seeds each, and write test U/S/H (mean and std) into the leaderboard. The only place a search
ever touches the test split.

What is repeated is exactly what the search chose on validation, nothing more:

* the hyperparameters (the trial's config, its variant's defaults for the same dataset);
* the GAN's training length, in generator steps (``best_step``: where the trial's validation H
  peaked) on the same schedule (``schedule_steps``: learning-rate decay and instance noise
  follow the validated run's whole length, which the retrain stops part-way through). Steps,
  not epochs, because an epoch under ``test`` (all of trainval) is longer than under
  ``validation`` (the training classes minus the held-out share); a GAN's progress is set by
  its optimiser steps, and equal steps also mean equal samples seen;
* the final GZSL classifier's training validated at that point, also in steps (``cls_steps``:
  its Adam steps up to its best validation epoch; an epoch over test's larger training set has
  more of them, and a softmax drifts towards the seen classes as it trains): its last step is
  reported, nothing is picked on test. The ZSL classifier (zsl_acc) runs ``cls_epochs`` epochs.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from typing import Any

__all__ = ["finalize", "FINALIZABLE"]

# A trial's validated point is sound when it ended by its budget, ASHA or the search's time
# budget; DIVERGED, ERROR and INTERRUPTED trials are not finalists.
FINALIZABLE = ("COMPLETE", "EARLY_STOPPED", "STOPPED")


def _final_run(*, source: Any, search: str, cache_dir: str, variant: str, params: dict[str, Any], seed: int,
               device: str, threads: int, steps: int, schedule_steps: int, cls_epochs: int | None,
               cls_steps: int | None) -> dict[str, float]:
    """One retraining (a Ray task): the test-protocol split from the node's feature store."""
    import torch

    from .._memory import reuse_freed_memory
    from ..models import get_variant
    from ..store import fetch_split, get_store
    from ..train import train

    torch.set_num_threads(threads)
    reuse_freed_memory()
    split = fetch_split(get_store(source, search=search, cache_dir=cache_dir), device=device)
    p = get_variant(variant).make_params(params, dataset=split.defaults_name)
    result = train(split, variant=variant, params=p, seed=seed, device=device, eval_every=sys.maxsize,
                   select_epoch=False, steps=steps, schedule_steps=schedule_steps, cls_epochs=cls_epochs,
                   cls_steps=cls_steps)
    return {**result.metrics, "steps": result.steps}


def finalist_rows(rows: list[dict[str, Any]], top_k: int) -> list[dict[str, Any]]:
    """The rows finalize retrains: the ``top_k`` best (``rows`` in rank order) of the trials that
    ended one of `FINALIZABLE` (a trial cut short, INTERRUPTED, may rank above them)."""
    return [r for r in rows if r["status"] in FINALIZABLE][:top_k]


def _finalists(rows: list[dict[str, Any]], *, spec: Any, search: str, top_k: int) -> list[dict[str, Any]]:
    from ..errors import ConfigError

    if spec.select_on_test or any(r.get("selected_on_test") for r in rows):
        raise ConfigError(f"search {search!r} selected its hyperparameters on the test split (select_on_test); "
                          "finalize reports only validation-selected searches: run it with protocol: validation")
    chosen = finalist_rows(rows, top_k)
    if not chosen:
        raise ConfigError(f"search {search!r} has no trial that ended {', '.join(FINALIZABLE)}; nothing to finalize")
    stale = [r["trial_id"] for r in chosen if any(r.get(k) is None for k in ("best_step", "schedule_steps", "cls_steps"))]
    if stale:
        raise ConfigError(f"search {search!r}: trial {stale[0]} does not record its validated training length "
                          "(best_step); it was run by an older zsl-search: run the search again")
    return chosen


def _config(row: dict[str, Any], *, storage: str, search: str) -> dict[str, Any]:
    """A finalist's hyperparameters from its ``config_json``, or `LeaderboardError` naming it."""
    from ..leaderboard import LeaderboardError

    try:
        config = json.loads(row.get("config_json") or "")
    except ValueError:
        config = None
    if not isinstance(config, dict):
        raise LeaderboardError(f"{storage}/{search}/leaderboard.parquet: trial {row['trial_id']} has no readable "
                               "config_json (the file was edited?); restore it, or finalize other trials with --top-k")
    return config


def finalize(storage: str, search: str, *, top_k: int = 3, seeds: int = 3, address: str | None = None,
             progress: bool = True) -> list[dict[str, Any]]:
    """Retrain the ``top_k`` best trials of ``search`` with ``seeds`` seeds under protocol
    ``test`` (through Ray) and store test U/S/H mean and std, and the generator and classifier
    steps used, in its leaderboard. With ``progress`` each finished retrain prints
    one line (done/total, ETA) on stderr. Returns the updated leaderboard rows.

    Raises:
        ConfigError: top_k or seeds < 1; the search selected on test; no finalizable trial.
        SearchNotFound: no such search under ``storage``.
        DataError: the search's dataset is missing or unusable (checked before Ray starts), or
            became unreadable during a retrain.
    """
    import ray

    from .. import settings
    from .._seed import MAX_SEED
    from ..errors import ConfigError, StorageError, warn
    from ..leaderboard import pending_searches, read_rows, update_test_columns
    from ..store import DataSource, check_source, release_stores
    from .._ray import init_ray
    from ._run import check_resources, load_saved_spec
    from ._running import check_not_running

    if top_k < 1 or seeds < 1:
        raise ConfigError("--top-k and --seeds must be >= 1")
    spec = load_saved_spec(storage, search)
    if spec.seed + seeds - 1 > MAX_SEED:
        raise ConfigError(f"--seeds {seeds}: the seeds {spec.seed}.. would pass {MAX_SEED}, the largest seed; use fewer")
    check_not_running(storage, search, then="finalize it once it has ended, or the search's next leaderboard "
                                            "write drops the test results")
    if any(name == search for _, name in pending_searches(storage)):
        # Finalists come from the stored rows; spooled ones (a storage outage) may outrank them.
        raise ConfigError(f"search {search!r} has leaderboard rows kept locally that {storage} lacks (it was "
                          f"unreachable); run `zsl-search leaderboard sync {storage}` first")
    rows = _finalists(read_rows(storage, search), spec=spec, search=search, top_k=top_k)
    if progress and len(rows) < top_k:
        warn(f"--top-k {top_k}: search {search!r} has {len(rows)} trial(s) that ended "
             f"{', '.join(FINALIZABLE)}; finalizing those")
    before = [r["test_seeds"] for r in rows if r.get("test_seeds")]
    if progress and before:  # the leaderboard keeps one test result per trial: the newest
        warn(f"replacing the test results finalize wrote before for {len(before)} of these trials "
             f"(seeds {_seed_range(before[0])} there, {_seed_range([spec.seed + i for i in range(seeds)])} now)")
    configs = {r["trial_id"]: _config(r, storage=storage, search=search) for r in rows}  # before Ray
    source = DataSource.from_spec(spec, protocol="test")
    # The dataset may have moved or broken since the search: say so in one line, as `search
    # resume` does, before any Ray task would fail with a traceback of its own.
    check_source(source, cache_dir=settings.cache_dir())
    init_ray(address)
    check_resources(spec, cluster=bool(address or settings.ray_address()))  # a search run on GPUs, finalized here
    store_search = f"{search}-finalize"
    threads = max(1, int(spec.resources.cpu))
    task = ray.remote(_final_run).options(num_cpus=spec.resources.cpu, num_gpus=spec.resources.gpu)
    device = "cuda" if spec.resources.gpu > 0 else spec.device
    pending: dict[Any, tuple[str, int]] = {}
    for row in rows:
        params = {**configs[row["trial_id"]], "epochs": spec.budget.max_epochs}
        for i in range(seeds):
            ref = task.remote(source=source, search=store_search, cache_dir=str(settings.cache_dir()),
                              variant=row["variant"], params=params, seed=spec.seed + i, device=device,
                              threads=threads, steps=int(row["best_step"]), schedule_steps=int(row["schedule_steps"]),
                              cls_epochs=int(row["cls_epochs"]) or None, cls_steps=int(row["cls_steps"]) or None)
            pending[ref] = (row["trial_id"], i)
    results: dict[str, dict[int, dict[str, float]]] = {r["trial_id"]: {} for r in rows}
    total, start = len(pending), time.perf_counter()
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            trial, i = pending.pop(done[0])
            results[trial][i] = m = _result(done[0])
            if progress:
                n = total - len(pending)
                eta = (time.perf_counter() - start) / n * (total - n)
                print(f"finalize {search}: {n}/{total} retrains done (trial {trial}, seed {spec.seed + i}: "
                      f"U {m['U']:.3f} S {m['S']:.3f} H {m['H']:.3f}), ETA {_duration(eta)}", file=sys.stderr, flush=True)
    finally:
        release_stores(store_search)
    columns = {}
    for row in rows:
        runs = [results[row["trial_id"]][i] for i in range(seeds)]
        cols: dict[str, Any] = {"test_seeds": [spec.seed + i for i in range(seeds)],
                                "test_steps": int(runs[0]["steps"]), "test_cls_steps": int(runs[0]["cls_steps"])}
        for key in ("U", "S", "H"):
            values = [m[key] for m in runs]
            cols[f"test_{key}_mean"] = statistics.fmean(values)
            cols[f"test_{key}_std"] = statistics.pstdev(values)
        columns[row["trial_id"]] = cols
    if not update_test_columns(storage, search, results=columns):
        raise StorageError(f"{storage}: the test results of search {search!r} could not be written and are kept "
                           f"locally; run `zsl-search leaderboard sync {storage}` once the storage is writable")
    return read_rows(storage, search)


def _seed_range(seeds: list[int]) -> str:
    return f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else str(seeds[0])


def _result(ref: Any) -> dict[str, float]:
    """A retrain's metrics; a problem the user can fix that a task hit (the dataset became
    unreadable on its node) is raised as itself, its one line, not as Ray's task traceback."""
    import ray

    from ..errors import ZslSearchError

    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        if isinstance(e.cause, ZslSearchError):
            raise e.cause from None
        raise


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
