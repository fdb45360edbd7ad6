"""Run or resume a search: Ray Tune + Optuna over the spec's variants, ASHA over epochs."""

from __future__ import annotations

import hashlib
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import StorageError, ZslSearchError
from ._spec import SearchSpec, parse_spec

__all__ = ["run_search", "resume_search", "SearchResult"]

SPEC_FILE = "spec.yaml"
JOURNAL_FILE = "optuna.journal"


@dataclass
class SearchResult:
    """Per-trial rows, best first (ranked by validation best_H), and where everything lives."""

    name: str
    storage: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    stores: list[str] = field(default_factory=list)  # feature-store actors that served it, one per node


def _init_ray(address: str | None) -> None:
    import ray

    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, namespace=None, log_to_driver=False)
    else:
        ray.init(include_dashboard=False, log_to_driver=False)


def _experiment_location(storage: str, name: str) -> tuple[str, Any, str]:
    """(storage_path, pyarrow filesystem or None, full experiment URI) for Tune."""
    if storage.startswith("s3://"):
        from ..storage import pyarrow_filesystem

        fs, path = pyarrow_filesystem(storage)
        return path, fs, f"{storage.rstrip('/')}/{name}"
    root = Path(storage).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    return str(root), None, str(root / name)


def _journal_path(storage: str, name: str, cache_dir: Path) -> Path:
    """Optuna's journal needs a local file with locking: inside a local storage directory, or in
    the cache when results live on S3 (uploaded beside the leaderboard at the end, and fetched
    from there when a search is resumed on another machine)."""
    if not storage.startswith("s3://"):
        return Path(storage).expanduser().resolve() / name / JOURNAL_FILE
    from ..storage import StorageNotFound, open_storage

    path = cache_dir / "journals" / hashlib.sha1(storage.encode()).hexdigest()[:16] / name / JOURNAL_FILE
    if not path.exists():
        try:
            data = open_storage(storage).read_bytes(f"{name}/{JOURNAL_FILE}")
        except StorageNotFound:
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return path


def run_search(
    spec: SearchSpec, *, storage: str | None = None, name: str | None = None, max_trials: int | None = None,
    address: str | None = None, resume: bool = False, progress: bool = True,
) -> SearchResult:
    """Run ``spec`` (or resume it with ``resume=True``) and return its ranked trials.

    Raises:
        ZslSearchError: the storage is unusable or (on resume) holds no such search.
    """
    from ray import tune
    from ray.tune.logger import TBXLoggerCallback
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from .. import settings
    from ..store import DataSource, check_source, release_stores
    from ._callbacks import LeaderboardCallback, ProgressCallback
    from ._optuna import METRIC, make_searcher
    from ._trainable import run_trial

    start = time.perf_counter()
    updates: dict[str, Any] = {}
    if storage:
        updates["storage"] = storage
    if name:
        updates["name"] = name
    if max_trials is not None:
        updates["budget"] = {**spec.budget.model_dump(), "trials": max_trials}
    if updates:
        spec = parse_spec({**spec.model_dump(), **updates})
    cache_dir = settings.cache_dir()
    # Checkpointing every epoch is intended; Tune's warning about frequent snapshots is noise here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # our progress lines replace Tune's tables
    source = DataSource(path=spec.dataset.path, semantics=spec.dataset.semantics, protocol=spec.protocol,
                        preprocess=spec.dataset.preprocess, seed=spec.seed)
    check_source(source)
    storage_path, fs, experiment = _experiment_location(spec.storage, spec.name)
    if not resume:
        _claim_name(spec)
    _init_ray(address)
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, spec_data=spec.model_dump(mode="json"), source=source, search=spec.name,
                             cache_dir=str(cache_dir)),
        {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu},
    )
    reporter = ProgressCallback(total=spec.budget.trials, enabled=progress)
    done_before = _existing_rows(spec) if resume else []
    board = LeaderboardCallback(spec=spec, dataset=source.dataset_name(),
                                start_order=max((r["completed_order"] or 0 for r in done_before), default=0))
    try:
        if resume:
            tuner = tune.Tuner.restore(experiment, trainable=trainable, resume_unfinished=True, resume_errored=True,
                                       storage_filesystem=fs)
        else:
            scheduler = (
                ASHAScheduler(time_attr="epoch", max_t=spec.budget.max_epochs, grace_period=spec.budget.grace_epochs,
                              reduction_factor=3)
                if spec.scheduler == "asha" else FIFOScheduler()
            )
            searcher = make_searcher(spec, journal=_journal_path(spec.storage, spec.name, cache_dir),
                                     study_name=spec.name, dataset=source.dataset_name())
            tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(
                    metric=METRIC, mode="max", search_alg=tune.search.ConcurrencyLimiter(searcher, spec.max_concurrent),
                    scheduler=scheduler, num_samples=spec.budget.trials, time_budget_s=spec.budget.time_budget_s,
                    reuse_actors=False, trial_dirname_creator=_trial_dirname,
                ),
                run_config=tune.RunConfig(
                    name=spec.name, storage_path=storage_path, storage_filesystem=fs,
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                    callbacks=[TBXLoggerCallback(), board, reporter], verbose=0,
                    failure_config=tune.FailureConfig(max_failures=1),
                ),
            )
        try:
            grid = tuner.fit()
        except OSError as e:
            # Tune re-reads the experiment from storage at the very end; if the storage went
            # away mid-search the trials still ran and their rows are with the leaderboard writer.
            if not board.written:
                raise StorageError(f"{experiment}: results storage unreachable ({e})") from None
            print(f"warning: {spec.storage} became unreachable during the search ({str(e).splitlines()[0]})",
                  file=sys.stderr)
            grid = []
    finally:
        stores = release_stores(spec.name)
    # Every trial Tune knows must be on the leaderboard exactly once, including trials that
    # finished in an earlier (interrupted) driver; the writer merges rows by trial id. If the
    # storage is down the rows stay spooled locally (`zsl-search leaderboard sync` uploads them).
    known = {r["trial_id"] for r in done_before} | board.written
    missing = [
        board.next_row(trial_id=r.metrics["trial_id"], config=r.config or {}, result=r.metrics, error=r.error is not None)
        for r in grid if (r.metrics or {}).get("trial_id") and r.metrics["trial_id"] not in known
    ]
    if not board.writer.write(missing):
        print(f"warning: {spec.storage} is unreachable; the leaderboard is kept locally until "
              f"`zsl-search leaderboard sync {spec.storage}`", file=sys.stderr)
    _upload_journal(spec, cache_dir)
    return SearchResult(name=spec.name, storage=spec.storage, rows=board.writer.rows(),
                        seconds=time.perf_counter() - start, stores=stores)


def _upload_journal(spec: SearchSpec, cache_dir: Path) -> None:
    """Copy the Optuna journal beside the leaderboard when results live on S3 (best effort)."""
    if not spec.storage.startswith("s3://"):
        return
    from ..storage import open_storage

    journal = _journal_path(spec.storage, spec.name, cache_dir)
    try:
        open_storage(spec.storage).write_bytes(f"{spec.name}/{JOURNAL_FILE}", journal.read_bytes())
    except (OSError, StorageError) as e:
        print(f"warning: Optuna journal not uploaded ({e}); it stays at {journal}", file=sys.stderr)


def _existing_rows(spec: SearchSpec) -> list[dict[str, Any]]:
    from ..leaderboard import SearchNotFound, read_rows

    try:
        return read_rows(spec.storage, spec.name)
    except SearchNotFound:
        return []


def _trial_dirname(trial: Any) -> str:
    return f"{trial.trial_id}-{trial.config.get('variant', 'trial')}"


def resume_search(name: str, *, storage: str, address: str | None = None, progress: bool = True) -> SearchResult:
    """Continue an interrupted search from its Tune checkpoint in ``storage``."""
    spec = load_saved_spec(storage, name)
    return run_search(spec, address=address, resume=True, progress=progress)


def load_saved_spec(storage: str, name: str) -> SearchSpec:
    from ..storage import StorageNotFound, open_storage

    try:
        data = yaml.safe_load(open_storage(storage).read_bytes(f"{name}/{SPEC_FILE}"))
    except StorageNotFound:
        raise ZslSearchError(f"no search {name!r} under {storage}: {name}/{SPEC_FILE} not found; check --storage and the name") from None
    return parse_spec(data, source=f"{storage}/{name}/{SPEC_FILE}")


def _claim_name(spec: SearchSpec) -> None:
    """Save the spec beside the results (``resume`` reads it), refusing to run over an existing
    search: its leaderboard, checkpoints and Optuna study would be mixed with the new one's."""
    from ..storage import open_storage

    store = open_storage(spec.storage)
    if store.exists(f"{spec.name}/{SPEC_FILE}"):
        raise ZslSearchError(
            f"search {spec.name!r} already exists under {spec.storage}; continue it with `zsl-search search resume "
            f"{spec.name} --storage {spec.storage}` or start a new one with --name NEW-NAME"
        )
    store.write_bytes(f"{spec.name}/{SPEC_FILE}", yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False).encode())
