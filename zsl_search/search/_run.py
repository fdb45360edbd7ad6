"""Run or resume a search: Ray Tune + Optuna over the spec's variants, ASHA over epochs.

However a run ends (its trial count, its time budget, Ctrl-C or SIGTERM, trials that raise or
diverge, a dataset that turns unreadable) it leaves the leaderboard with every trial that
reported an epoch, exactly once, and says how it ended (`SearchResult.ending`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import yaml

from ..errors import ConfigError, DataError, SearchExists, SearchNotFound, SpecError, StorageError, warn
from .._names import SPEC_FILE, check_search_name, searches_there
from .._ray import init_ray as _init_ray, log_filters, signals_deferred
from ._journal import check_journal, journal_path, settle_journal, upload_journal
from ._running import check_not_running, clear_running, mark_running
from ._spec import SearchSpec, parse_spec
from ._tune_state import keep_tune_state, repair_tune_state

__all__ = ["run_search", "resume_search", "SearchResult", "ENDINGS"]

Ending = Literal["finished", "time_budget", "interrupted"]
ENDINGS: tuple[str, ...] = ("finished", "time_budget", "interrupted")


@dataclass
class SearchResult:
    """Per-trial rows, best first (ranked by validation best_H), how the run ended and where
    everything lives.

    ``ending`` is ``finished`` (every trial of the budget ran), ``time_budget`` (the budget's
    ``time_budget_s`` ended it) or ``interrupted`` (Ctrl-C / SIGTERM: continue it with
    `resume_search`). ``notes`` are the summary lines for trials that have no row (they never
    reported an epoch); ``trials`` counts every trial Tune started or queued (a pack's members each);
    ``failed`` those that failed for good (an ``ERROR`` row, or an error before their first epoch).
    ``ran`` is False when `resume_search` found nothing to run: every trial of the budget had
    ended (the rows are the leaderboard as it was).
    """

    name: str
    storage: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    feature_stores: list[str] = field(default_factory=list)  # the feature-store actors that served it, one per node
    ending: Ending = "finished"
    notes: list[str] = field(default_factory=list)
    trials: int = 0
    ran: bool = True
    failed: int = 0


def _quiet_tune() -> None:
    # Checkpointing every epoch is intended (Tune warns about it); our progress lines replace
    # Tune's tables; trial tracebacks belong in each trial's error.txt, not on the terminal.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "0")
    # Errors of futures Tune dropped when it stopped a trial (the trial's own error is kept).
    os.environ.setdefault("RAY_IGNORE_UNHANDLED_ERRORS", "1")


class _DropTuneNoise(logging.Filter):
    """Tune's end-of-run log lines that our own summary replaces."""

    _NOISE = ("Trials did not complete", "Wrote the latest version of all result files",
              "Experiment has been interrupted",  # it suggests Tuner.restore; we print `search resume`
              "Failed to fetch metrics for",  # trials stopped before their first report: no result file
              "Restoring the run from the latest experiment state",  # what `search resume` asked for
              "Reached timeout of")  # the summary says the time budget ended the search
    _STOPPING = "Stop signal received"  # Ctrl-C / SIGTERM: said in our words, which name SIGTERM too

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if message.startswith(self._STOPPING):
            print("zsl-search: stopping: the trials stop and the search's state is saved (a second Ctrl-C or "
                  "SIGTERM stops at once; the state saved before stands)", file=sys.stderr, flush=True)
            return False
        return not message.startswith(self._NOISE)


class _TuneUploadErrors(logging.Filter):
    """Tune's ERRORs, each with a traceback, when it cannot upload the search's state: as one
    warning line, once per search and kind (an outage would repeat them at every save).

    One is not an error at all: a forced save writes the searcher's state to a temporary file
    and renames it while the previous upload of that directory may still be listing it; the
    upload then misses the temporary file. Tune launches the next upload, of the complete new
    state, right after, so nothing is lost, and that one is dropped without a word."""

    _KINDS = {"Saving experiment state to storage": "save the search's state to its storage",
              "Caught exception when creating directory": "create the search's folder in its storage",
              # Its background uploads of the experiment folder, with the traceback in the message.
              "Last sync command failed": "upload the search's folder to its storage",
              "The latest sync operation failed": "upload the search's folder to its storage"}

    def __init__(self) -> None:
        super().__init__()
        self._said: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        kind = next((k for k in self._KINDS if message.startswith(k)), None)
        if kind is None:
            return True
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, FileNotFoundError) and "-tmp-" in str(error):
            return False
        what = self._KINDS[kind]
        if what not in self._said:
            self._said.add(what)
            if error is not None:
                cause = f" ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
            else:  # the traceback is in the message: its last line names the error
                lines = [line for line in message.splitlines()[1:] if line.strip()]
                cause = f" ({lines[-1].strip()})" if lines else ""
            warn(f"Tune could not {what}{cause}; it tries again at its next save (said once)")
        return False


@contextlib.contextmanager
def _quiet_tune_logs() -> Iterator[None]:
    with log_filters([("ray.tune.tune", _DropTuneNoise()),
                      ("ray.tune.analysis.experiment_analysis", _DropTuneNoise()),
                      ("ray.tune.execution.tune_controller", _DropTuneNoise()),
                      ("ray", _DropTuneNoise()),  # the time budget's stopper logs as "ray"
                      ("ray.tune.execution.experiment_state", _TuneUploadErrors()),
                      ("ray.train._internal.storage", _TuneUploadErrors()),
                      ("ray.train._internal.syncer", _TuneUploadErrors())]):
        yield


class _Location(NamedTuple):
    """Where Tune keeps a search's experiment."""

    storage_path: str  # Tune's ``storage_path``: a local directory, or bucket/prefix inside ``fs``
    fs: Any  # the pyarrow filesystem of remote results; None for a local directory
    uri: str  # the experiment as the user names it (a local path or s3://bucket/prefix/name)
    tune_path: str  # the experiment as Tune names it: the local path, or inside ``fs``


def _experiment_location(storage: str, name: str) -> _Location:
    from ..storage import open_storage

    results = open_storage(storage)
    if results.local_path is not None:  # Tune writes a local directory itself
        return _Location(str(results.local_path), None, results.join(name), results.join(name))
    fs, path = results.pyarrow_filesystem()
    # With a pyarrow filesystem Tune wants the path inside it (bucket/prefix/name), not the s3:// URI.
    return _Location(path, fs, results.join(name), f"{path.rstrip('/')}/{name}")


def run_search(spec: SearchSpec, *, address: str | None = None, resume: bool = False,
               progress: bool = True) -> SearchResult:
    """Run ``spec`` (or resume it with ``resume=True``) and return its ranked trials. Change the
    storage, name or trial budget first with `SearchSpec.override`.

    The dataset is loaded and checked before Ray starts, exactly as ``zsl-search data info``
    does. A SIGINT (Ctrl-C) or SIGTERM ends the run gracefully: the trials stop, their state is
    saved, the leaderboard is written and ``ending`` is ``interrupted``.

    Raises:
        DataError: the dataset is unusable (before anything starts), or became unreadable on a
            node during the search (the search stops at once; rows so far are kept).
        SearchExists: a new search's name is taken in its storage.
        StorageError: the storage is unusable.
    """
    from .. import settings
    from ..models import defaults_line
    from ..store import DataSource, check_source

    start = time.perf_counter()
    cache_dir = settings.cache_dir()
    _quiet_tune()
    source = DataSource.from_spec(spec)
    info = check_source(source, cache_dir=cache_dir, folds=spec.folds)  # a broken dataset fails here: no Ray
    # Ray before the name is claimed: a cluster that cannot be reached, or that no trial fits,
    # must not leave behind a search that only `resume` (with the same spec) could continue.
    if not resume:
        _check_name_free(spec)  # at once, not after Ray's start-up
    else:
        check_not_running(spec.storage, spec.name, then="resume it once it has ended, if it stopped early (two "
                                                        "drivers of one search would overwrite each other's state)")
        where = _experiment_location(spec.storage, spec.name)
        saved = _saved_trials(where.tune_path, where.fs)
        check_journal(journal_path(spec.storage, spec.name, cache_dir), trials=len(saved))  # each asked Optuna
        if (done := _nothing_to_resume(spec, saved, start)) is not None:
            return done
    _init_ray(address)
    check_resources(spec, cluster=bool(address or settings.ray_address()))
    if progress:  # once every refusal is behind: a refused search prints its one error line alone
        print(f"{spec.name}: {info['name']} ({spec.protocol} protocol), "
              f"{defaults_line(info['defaults'], list(spec.variants))}", file=sys.stderr, flush=True)
    if not resume:
        _claim_name(spec)
    journal = journal_path(spec.storage, spec.name, cache_dir, new=not resume)
    mark_running(spec.storage, spec.name)
    try:
        ledger, feature_stores = _fit(spec, source, journal, address=address, resume=resume, cache_dir=cache_dir,
                                      info=info, progress=progress)
        return _reconcile(spec, ledger, journal, cache_dir=cache_dir, feature_stores=feature_stores,
                          seconds=time.perf_counter() - start)
    finally:
        clear_running(spec.storage, spec.name)


def check_resources(spec: SearchSpec, *, cluster: bool) -> None:
    """A trial (or a finalize retrain) runs on one node with ``spec.resources``; where no node
    has them it would wait forever. On this machine that is an error; a cluster's autoscaler
    may still add such a node."""
    import ray

    need = {"CPU": spec.resources.cpu, "GPU": spec.resources.gpu}
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive", True)]
    if any(all(have.get(k, 0.0) >= v for k, v in need.items() if v > 0) for have in nodes):
        return
    largest = ", ".join(f"{k.lower()}={max((have.get(k, 0.0) for have in nodes), default=0.0):g}" for k in need)
    where = "any node of the cluster" if cluster else "this machine"
    line = (f"resources: a trial needs cpu={spec.resources.cpu:g}, gpu={spec.resources.gpu:g} on one node, more "
            f"than {where} has (at most {largest})")
    if not cluster:
        raise ConfigError(f"{line}; lower resources in the spec")
    warn(f"{line}; trials wait until such a node joins (an autoscaler's), or stop the search with Ctrl-C")


def _ledger(spec: SearchSpec, *, dataset: str, resume: bool, progress: bool) -> Any:
    """The driver's `TrialLedger`; on resume it knows the rows the earlier runs wrote."""
    from ..leaderboard import LeaderboardWriter
    from ._callbacks import TrialLedger, stderr_echo

    before = _existing_rows(spec) if resume else []
    writer = LeaderboardWriter(spec.storage, spec.name, dataset=dataset, protocol=spec.protocol)
    return TrialLedger(spec=spec, dataset=dataset, writer=writer,
                       existing={r["trial_id"]: r["status"] for r in before},
                       start_order=max((r["completed_order"] or 0 for r in before), default=0),
                       echo=stderr_echo if progress else None)


def _fit(spec: SearchSpec, source: Any, journal: Path, *, address: str | None, resume: bool, cache_dir: Path,
         info: dict[str, Any], progress: bool) -> tuple[Any, list[str]]:
    """Start (or join) Ray and run the Tune experiment until it ends, however it ends; returns
    the driver's `TrialLedger` and the feature-store actors that served the search."""
    from ..store import release_stores

    def ledger_() -> Any:
        return _ledger(spec, dataset=info["name"], resume=resume, progress=progress)

    where = _experiment_location(spec.storage, spec.name)
    experiment = where.uri
    defaults = info["defaults"]
    ledger, feature_stores = None, []
    try:
        with _graceful_signals(), _quiet_tune_logs():  # after Ray's own signal handlers, on top of them
            try:
                # The store before the ledger: its process starts and loads the dataset while
                # this one imports Tune (the ledger's first import of it), not after.
                _prewarm_store(source, spec, cache_dir, defaults=defaults)
                with signals_deferred(signal.SIGINT, signal.SIGTERM):  # its first import of Tune: never cut short
                    ledger = ledger_()
                tuner = _tuner(spec, source, where, journal, ledger=ledger, resume=resume,
                               cache_dir=cache_dir, defaults=defaults)
                tuner.fit()
            finally:
                feature_stores = release_stores(spec.name)
                if where.fs is None:
                    keep_tune_state(experiment)  # this session's last state, where it is complete
    except KeyboardInterrupt:  # a second Ctrl-C stops Tune at once (its last saved state stands), or
        ledger = ledger or ledger_()  # one before Tune started: `search resume` starts the search then
        ledger.interrupted = True
    except OSError as e:
        # Tune re-reads the experiment from storage at the very end; if the storage went away
        # mid-search the trials still ran and their rows are with the leaderboard writer.
        if ledger is None or not ledger.ended:
            raise StorageError(f"{experiment}: results storage unreachable ({e})") from None
        warn(f"{spec.storage} became unreachable during the search ({str(e).splitlines()[0]})")
    return ledger, feature_stores


def _reconcile(spec: SearchSpec, ledger: Any, journal: Path, *, cache_dir: Path, feature_stores: list[str],
               seconds: float) -> SearchResult:
    """After Tune returns: settle every trial's row and Optuna state, write the leaderboard and
    say how the run ended."""
    ending = _ending(ledger, spec)
    notes = ledger.close(reason="data_error" if ledger.fatal else ending)
    if ending != "interrupted":
        settle_journal(journal, spec.name)
    if not ledger.writer.write([]):
        warn(f"{spec.storage} is unreachable; the leaderboard is kept locally until "
             f"`zsl-search leaderboard sync {spec.storage}`")
    upload_journal(spec.storage, spec.name, cache_dir)
    if ledger.fatal:
        raise DataError(ledger.fatal)
    rows = ledger.writer.rows()
    return SearchResult(name=spec.name, storage=spec.storage, rows=rows, seconds=seconds,
                        feature_stores=feature_stores, ending=ending, notes=notes, trials=_started(ledger),
                        failed=len(ledger.failed_early) + sum(r["status"] == "ERROR" for r in rows))


def _prewarm_store(source: Any, spec: SearchSpec, cache_dir: Path, *, defaults: str) -> None:
    """Start this node's feature store now, so it loads the dataset, then trains the frozen
    classifiers the first trials will ask for, while the first trial workers start up instead
    of after them. Only where trials can run: a head that offers no CPUs to trials
    (cluster/cluster.yaml) gets no store."""
    import ray

    from ..store import get_store

    node_id = ray.get_runtime_context().get_node_id()
    node = next((n for n in ray.nodes() if n["NodeID"] == node_id), {})
    if node.get("Resources", {}).get("CPU", 0) >= spec.resources.cpu:
        store = get_store(source, search=spec.name, cache_dir=cache_dir)
        for epochs in _classifier_lengths(spec, defaults):
            # Queued behind the store's load; a trial's own request then finds it trained. The
            # ref is dropped: a store that failed to load says so to the trials (`fetch_split`).
            store.frozen_classifier.remote(spec.seed, epochs)


def _classifier_lengths(spec: SearchSpec, defaults: str) -> list[int]:
    """The ``cls_pretrain_epochs`` of the node-shared frozen classifiers this search's trials
    will use, where the spec decides them (fixed or the variant's default; not where sampled)."""
    from ._trainable import trial_params

    if not spec.runtime.shared_classifier:
        return []
    lengths = set()
    for variant in spec.variants:
        space = spec.variant_space(variant)
        params = trial_params(spec, {"variant": variant}, dataset=defaults)
        uses = "cls_weight" in space.searched or params.cls_weight > 0
        if uses and "cls_pretrain_epochs" not in space.searched:
            lengths.add(params.cls_pretrain_epochs)
    return sorted(lengths)


def _tuner(spec: SearchSpec, source: Any, where: _Location, journal: Path, *,
           ledger: Any, resume: bool, cache_dir: Path, defaults: str) -> Any:
    """The Tune run of a search: restored from ``where`` when resuming (and Tune saved a run
    state there), else new; either way reporting to this driver's ``ledger``."""
    from ray import tune
    from ray.tune.logger import TBXLoggerCallback

    from .. import settings
    from ._callbacks import FatalErrorStopper, RunningMarker, StaleCheckpointRepair, TuneStateCopies

    trainable = tune.with_resources(
        tune.with_parameters(_trial_entrypoint(spec), spec=spec, source=source,
                             search=spec.name, cache_dir=str(cache_dir), plugins=tuple(settings.plugin_modules())),
        {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu},
    )
    callbacks = [TBXLoggerCallback(), ledger, RunningMarker(spec.storage, spec.name)]
    stop = FatalErrorStopper(ledger)
    experiment, tune_path, fs = where.uri, where.tune_path, where.fs
    local = fs is None  # Tune's state files on a local disk, where a killed driver can cut them short
    if local:
        callbacks.append(TuneStateCopies(experiment))
    restore = resume and tune.Tuner.can_restore(tune_path, storage_filesystem=fs)
    if restore:
        for line in repair_tune_state(experiment) if local else []:
            warn(line)
        restore = bool(_run_states(tune_path, fs))
        if not restore:
            _start_over(spec, journal)
    if restore:
        tuner = _restored_tuner(tune_path, trainable, fs, callbacks=[StaleCheckpointRepair(), *callbacks], stop=stop,
                                shown=experiment)
    else:  # a new search, or one interrupted before Tune saved its first state
        tuner = _new_tuner(spec, trainable, where.storage_path, fs, journal, dataset=defaults, callbacks=callbacks,
                           stop=stop)
    if local:
        keep_tune_state(experiment)  # the state this session starts from (a new Tuner's tuner.pkl is written once)
    return tuner


def _run_states(tune_path: str, fs: Any) -> list[str]:
    """Tune's saved run states (``experiment_state-*.json``) there, oldest first (their names
    carry the session's start time). Without one ``Tuner.restore`` starts the experiment over
    with its restored searcher, which has already handed out its first trials, and runs a
    fraction of the budget."""
    import pyarrow.fs

    fs = fs or pyarrow.fs.LocalFileSystem()
    files = fs.get_file_info(pyarrow.fs.FileSelector(tune_path, allow_not_found=True))
    return sorted(f.path for f in files
                  if f.base_name.startswith("experiment_state-") and f.base_name.endswith(".json"))


def _saved_trials(tune_path: str, fs: Any) -> dict[str, str]:
    """Each trial's id and status in the newest readable run state (none without one)."""
    import pyarrow.fs

    fs = fs or pyarrow.fs.LocalFileSystem()
    try:
        states = _run_states(tune_path, fs)
    except OSError as e:
        raise StorageError(f"{tune_path}: cannot list the search's Tune state ({str(e).splitlines()[0]})") from None
    for path in reversed(states):
        try:
            with fs.open_input_stream(path) as f:
                trials = [json.loads(trial) for trial, _ in json.loads(f.read())["trial_data"]]
            return {t.get("trial_id", f"#{i}"): t.get("status", "") for i, t in enumerate(trials)}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # cut short by a killed driver: `repair_tune_state` deals with it
    return {}


def _nothing_to_resume(spec: SearchSpec, saved: dict[str, str], start: float) -> SearchResult | None:
    """The search as it stands when its saved state shows every trial of its budget ended, so
    that resuming it starts no Ray (a pack's members are not counted there: it is resumed), or
    when the leaderboard holds a final row for every trial of the budget although Tune's saved
    state is older (an S3 outage kept Tune from uploading it; `leaderboard sync` uploaded the rows)."""
    from ._callbacks import FINAL_STATUSES

    if spec.pack > 1:
        return None
    ended = len(saved) >= spec.budget.trials and all(s in ("TERMINATED", "ERROR") for s in saved.values())
    rows = _existing_rows(spec)
    if not ended and sum(r["status"] in FINAL_STATUSES for r in rows) < spec.budget.trials:
        return None
    unreported = {status: sum(s == status and tid not in {r["trial_id"] for r in rows} for tid, s in saved.items())
                  for status in ("ERROR", "TERMINATED")}
    notes = [f"{n} trial{'s' if n != 1 else ''} {what} before {'their' if n != 1 else 'its'} first epoch{tail}"
             for n, what, tail in ((unreported["ERROR"], "failed", " (tracebacks in each trial's error.txt)"),
                                   (unreported["TERMINATED"], "ended", "")) if n]
    return SearchResult(name=spec.name, storage=spec.storage, rows=rows, seconds=time.perf_counter() - start,
                        ending="finished", trials=max(len(saved), len(rows)),
                        failed=unreported["ERROR"] + sum(r["status"] == "ERROR" for r in rows), ran=False,
                        notes=[*notes, f"nothing to resume: every trial of its budget ({spec.budget.trials}) had "
                                       "ended; the leaderboard is as it was"])


def _start_over(spec: SearchSpec, journal: Path) -> None:
    """A driver killed in its first seconds, before Tune saved any state: Tune saves one at its
    first step, so no trial of that run had ended. Where the leaderboard agrees, the search
    starts over as if new; otherwise its Optuna trials still marked running are settled, so
    the sampler does not wait on them."""
    if _existing_rows(spec):
        settle_journal(journal, spec.name)
        return
    journal.unlink(missing_ok=True)
    warn(f"search {spec.name!r} was stopped before Tune saved its first state; it starts over")


def _trial_entrypoint(spec: SearchSpec) -> Any:
    if spec.pack > 1:
        from ._pack import run_pack

        return run_pack
    from ._trainable import run_trial

    return run_trial


def _new_tuner(spec: SearchSpec, trainable: Any, storage_path: str, fs: Any, journal: Path, *, dataset: str,
               callbacks: list[Any], stop: Any) -> Any:
    from ray import tune

    from ._factories import make_scheduler
    from ._optuna import METRIC, _quiet_study_creation, make_searcher

    with _quiet_study_creation():
        if spec.pack > 1:
            from ._pack import PackSearch

            searcher = PackSearch(spec, journal=journal, study_name=spec.name, dataset=dataset)
        else:
            searcher = make_searcher(spec, journal=journal, study_name=spec.name, dataset=dataset)
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            metric=METRIC, mode="max", search_alg=tune.search.ConcurrencyLimiter(searcher, spec.max_concurrent),
            scheduler=make_scheduler(spec), num_samples=spec.budget.trials, time_budget_s=spec.budget.time_budget_s,
            # Trials reuse their worker process: no new interpreter, no re-import per trial.
            reuse_actors=spec.runtime.reuse_workers, trial_dirname_creator=_trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=spec.name, storage_path=storage_path, storage_filesystem=fs,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1), callbacks=callbacks, stop=stop, verbose=0,
            # One retry from the last checkpoint: survives a lost node or a one-off fault.
            failure_config=tune.FailureConfig(max_failures=1),
        ),
    )


def _restored_tuner(path: str, trainable: Any, fs: Any, *, callbacks: list[Any], stop: Any, shown: str) -> Any:
    """The Tuner restored from the experiment at ``path`` (inside ``fs`` when one is given);
    ``shown`` is its location as the user wrote it, for errors."""
    from ray import tune

    # ERROR trials stay ERROR (they were retried once already); interrupted ones continue.
    try:
        tuner = tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True, resume_errored=False,
                                   storage_filesystem=fs)
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError) as e:
        # A damaged tuner.pkl (or one from another Ray): name it rather than print Ray's traceback.
        raise StorageError(f"{shown}/tuner.pkl: cannot restore the search's Tune state ({type(e).__name__}: "
                           f"{str(e).splitlines()[0] if str(e) else 'unreadable'}); restore the file from a copy, "
                           "or start a new search with --name NEW-NAME (the leaderboard so far stays)") from None
    # Tune.restore brings back the callbacks and stopper pickled when the search started; this
    # driver must read the ledger it runs with. There is no public setter, so swap them in the
    # restored run config (read by `fit`).
    run_config = tuner._local_tuner.get_run_config()
    run_config.callbacks, run_config.stop = callbacks, stop
    return tuner


@contextlib.contextmanager
def _graceful_signals() -> Iterator[None]:
    """While a search runs, SIGTERM (``kill``, ``ray job stop``) ends it the way Ctrl-C does:
    through Tune's SIGINT handler, which stops the trials and saves the state `resume_search`
    continues from. Both handlers are restored afterwards (Tune leaves its own installed)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def forward(signum: int, frame: Any) -> None:
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signal.SIGINT, frame)
        else:
            raise KeyboardInterrupt

    previous_int, previous_term = signal.getsignal(signal.SIGINT), signal.signal(signal.SIGTERM, forward)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)


def _ending(ledger: Any, spec: SearchSpec) -> Ending:
    """How the run ended, from what the ledger saw."""
    if ledger.interrupted:
        return "interrupted"
    cut_short = any(t.trial_id not in ledger.ended and t.trial_id not in ledger.failed_early
                    and not ledger.final_before(t.trial_id) for t in ledger.trials)
    if ledger.fatal is None and (cut_short or (spec.budget.time_budget_s and _started(ledger) < spec.budget.trials)):
        return "time_budget"
    return "finished"


def _started(ledger: Any) -> int:
    """Trials Tune started or queued, each member of a pack counted."""
    from ._callbacks import trial_count

    return sum(trial_count(t.config) for t in ledger.trials)


def _existing_rows(spec: SearchSpec) -> list[dict[str, Any]]:
    from ..leaderboard import SearchNotFound, read_rows

    try:
        return read_rows(spec.storage, spec.name)
    except SearchNotFound:
        return []


def _trial_dirname(trial: Any) -> str:
    return f"{trial.trial_id}-{trial.config.get('variant', 'trial')}"


def resume_search(name: str, *, storage: str, address: str | None = None, progress: bool = True) -> SearchResult:
    """Continue an interrupted search from its Tune checkpoint in ``storage``.

    Raises:
        SearchNotFound: no search ``name`` under ``storage``.
        ConfigError: the search was started with another storage (the folder was moved or
            copied, or a relative storage is resumed from another directory): its Tune state
            and Optuna journal name that place, so resuming here would write there.
    """
    from ..storage import backend_for, same_place

    spec = load_saved_spec(storage, name)
    if not same_place(spec.storage, storage):
        relative = not backend_for(spec.storage).is_absolute(spec.storage)
        raise ConfigError(
            f"search {name!r} under {storage} was started with storage {spec.storage}"
            f"{' (relative to the directory it ran in)' if relative else ''}; resume it from there "
            f"(zsl-search search resume {name} --storage {spec.storage}): a moved or copied results folder "
            "cannot be resumed, since its Tune state and Optuna journal name the old place (its leaderboard "
            "reads anywhere)")
    return run_search(spec, address=address, resume=True, progress=progress)


def load_saved_spec(storage: str, name: str) -> SearchSpec:
    from ..storage import StorageNotFound, open_existing

    results = open_existing(storage)
    check_search_name(storage, name)
    try:
        data = yaml.safe_load(results.read_bytes(f"{name}/{SPEC_FILE}"))
    except StorageNotFound:
        raise SearchNotFound(f"no search {name!r} under {storage} ({name}/{SPEC_FILE} not found); "
                             f"{searches_there(storage)}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise SpecError([f"cannot read YAML: {str(e).splitlines()[0]}"], f"{storage}/{name}/{SPEC_FILE}") from None
    return parse_spec(data, source=f"{storage}/{name}/{SPEC_FILE}")


def _check_name_free(spec: SearchSpec) -> None:
    """Refuse to run over an existing search: its leaderboard, checkpoints and Optuna study
    would be mixed with the new one's. Creates nothing (a missing results directory is free)."""
    from ..storage import StorageNotFound, open_existing

    try:
        results = open_existing(spec.storage)
    except StorageNotFound:
        return
    if results.exists(f"{spec.name}/{SPEC_FILE}"):
        raise SearchExists(
            f"search {spec.name!r} already exists under {spec.storage}; continue it with `zsl-search search resume "
            f"{spec.name} --storage {spec.storage}` or start a new one with --name NEW-NAME"
        )


def _claim_name(spec: SearchSpec) -> None:
    """Save the spec beside the results (``resume`` reads it); checked free once more, as another
    driver may have claimed the name while this one started Ray."""
    from ..storage import open_storage

    _check_name_free(spec)
    open_storage(spec.storage).write_bytes(f"{spec.name}/{SPEC_FILE}", yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False).encode())
