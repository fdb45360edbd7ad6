"""What the search driver knows about its trials, and how each one ended (needs Ray).

`TrialLedger` is a Tune callback that follows every trial: its last report, how it ended, and
the leaderboard row that ending produces. Tune reports completions and errors through
callbacks, but a trial that the time budget, an interrupt or a fatal data error stopped gets
no callback at all: `TrialLedger.close` settles those once `Tuner.fit` has returned, so every
way a search ends leaves a leaderboard with each trial that reported an epoch, exactly once.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ray.tune import Callback, Stopper

from ..errors import DataError, warn
from ._running import REFRESH_S, mark_running
from ._trainable import evaluator_name
from ._tune_state import keep_tune_state

__all__ = ["TrialLedger", "FatalErrorStopper", "StaleCheckpointRepair", "TuneStateCopies", "trial_row",
           "trial_count", "FINAL_STATUSES"]

# Statuses after which a trial never runs again (INTERRUPTED trials continue on resume).
FINAL_STATUSES = frozenset({"COMPLETE", "EARLY_STOPPED", "STOPPED", "DIVERGED", "ERROR"})


def trial_row(*, trial_id: str, config: dict[str, Any], result: dict[str, Any], status: str, spec: Any,
              dataset: str, error: str | None = None, restarts: int = 0,
              started_at: float | None = None) -> dict[str, Any]:
    """One leaderboard row from a trial's config and its last report. H/U/S are those of the
    trial's best epoch so far, which is chosen on the protocol's own (validation) split.
    ``started_at`` (when Tune started the trial, wall clock) gives ``startup_s``: the time until
    its first generator step."""
    first_step = result.get("first_step_at")
    variant = config["variant"]
    fixed = spec.variant_space(variant).fixed
    return {
        "trial_id": trial_id, "search": spec.name, "dataset": dataset, "protocol": spec.protocol,
        "variant": variant, "status": status, "error": error, "restarts": restarts,
        "epochs": int(result["epoch"]), "best_epoch": int(result.get("best_epoch", 0)),
        "best_step": int(result.get("best_step", 0)), "schedule_steps": result.get("schedule_steps"),
        "cls_epochs": int(result.get("best_cls_epochs", 0)), "cls_steps": int(result.get("best_cls_steps", 0)),
        "selected_on_test": spec.protocol == "test", "evaluator": evaluator_name(spec),
        "H": float(result.get("best_H", 0.0)), "U": float(result.get("best_U", 0.0)),
        "S": float(result.get("best_S", 0.0)), "zsl_acc": float(result.get("best_zsl_acc", 0.0)),
        "retrieval_map": float(result.get("best_retrieval_map", 0.0)),
        "seconds": float(result.get("time_total_s", 0.0)), "seed": spec.seed, "node_id": result.get("node_id"),
        "startup_s": None if started_at is None or first_step is None else max(0.0, first_step - started_at),
        "params": {**fixed, **config.get(variant, {})}, "created_at": datetime.now(timezone.utc),
    }


def _reported(result: dict[str, Any] | None) -> bool:
    return bool(result) and int(result.get("epoch", 0)) >= 1


def error_line(exc: BaseException) -> str:
    """``Type: first line of the message``: what a leaderboard cell or a terminal line holds."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _trial_exception(trial: Any) -> BaseException | None:
    """The exception a trial last failed with, unwrapped from Ray's task error (Tune pickles it
    beside the trial; the traceback stays in the trial's error.txt)."""
    from ray import cloudpickle

    path = getattr(trial, "pickled_error_file", None)
    if not path or not Path(path).is_file():
        return None
    try:
        exc = cloudpickle.loads(Path(path).read_bytes())
    except Exception:  # noqa: BLE001 - an unpicklable error still has its error.txt
        return None
    cause = getattr(exc, "cause", None)  # RayTaskError wraps what the trainable raised
    return cause if isinstance(cause, BaseException) else exc


class TrialLedger(Callback):
    """Follows every trial of one driver run and writes its leaderboard row when it ends.

    Statuses (see `zsl_search.leaderboard.STATUSES`) are decided here: a completion at
    ``budget.max_epochs`` is COMPLETE, earlier is EARLY_STOPPED (ASHA is the only thing that
    stops a running trial and reports it), a trial whose last report says ``diverged`` is
    DIVERGED, an error after the retry is ERROR. Trials that never reported an epoch get no
    row; `close` counts them in `notes`.

    Args:
        spec: the search spec.
        dataset: the dataset name written into every row.
        writer: the search's `LeaderboardWriter`.
        existing: ``{trial_id: status}`` of rows already on the leaderboard (a resumed search).
        start_order: the last ``completed_order`` already used.
        echo: called with one line per ended trial (progress output), or None.
    """

    def __init__(self, *, spec: Any, dataset: str, writer: Any, existing: dict[str, str] | None = None,
                 start_order: int = 0, echo: Callable[[str], None] | None = None) -> None:
        self.spec, self.dataset, self.writer, self.echo = spec, dataset, writer, echo
        self.existing = dict(existing or {})
        self.order = start_order
        self.ended: dict[str, str] = {}  # trial_id -> status, for trials that ended in this run
        self.failed_early: dict[str, str] = {}  # trial_id -> error line, failed before any epoch
        self.fatal: str | None = None  # a data error that ends the whole search
        self.interrupted = False
        self.trials: list[Any] = []  # Tune's live list of every trial (set by each step)
        self.done = sum(status in FINAL_STATUSES for status in self.existing.values())
        self.started_at: dict[str, float] = {}  # trial_id -> when Tune last started it (wall clock)
        # Trials a resumed run finds finished: a driver killed before their row was written
        # left them without one, and `close` gives them the status they ended with.
        self.finished_before: set[str] = set()
        # Rows go to storage from a background thread: Tune calls these hooks on its driver
        # loop, and a leaderboard write (Parquet, CSV, markdown, index; S3 round trips) there
        # would hold up every other trial's results.
        self._outbox: list[dict[str, Any]] = []
        self._outbox_cv = threading.Condition()
        self._writing = False
        self._write_error: BaseException | None = None
        self._flusher: threading.Thread | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks with the experiment; `run_search` hands a restored run a
        # live ledger of its own, so the writer (a lock), its thread and the trials need not travel.
        return {**self.__dict__, "writer": None, "echo": None, "trials": [], "finished_before": set(), "_outbox": [],
                "_outbox_cv": None,
                "_flusher": None, "_writing": False}

    # -- Tune hooks ------------------------------------------------------------------------------
    def setup(self, **info: Any) -> None:
        # Tune installed its own SIGINT handler (finish the current step, save, return) just
        # before this hook; wrap it so the driver knows the run was interrupted.
        if threading.current_thread() is not threading.main_thread():
            return
        tune_handler = signal.getsignal(signal.SIGINT)

        def on_interrupt(signum: int, frame: Any) -> None:
            self.interrupted = True
            if callable(tune_handler):
                tune_handler(signum, frame)
            else:
                raise KeyboardInterrupt

        signal.signal(signal.SIGINT, on_interrupt)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.started_at[trial.trial_id] = time.time()

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._see(trials)

    def _see(self, trials: list) -> None:
        if not self.trials:  # the first look: which trials a restored run found already finished
            self.finished_before = {t.trial_id for t in trials if t.status == "TERMINATED"}
            for t in trials:  # ... or failed for good before their first epoch (no row to settle)
                if t.status == "ERROR" and not _reported(t.last_result or {}):
                    self.failed_early.setdefault(t.trial_id, "failed in an earlier run of the search")
        self.trials = trials

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        result = trial.last_result or {}
        if not _reported(result):
            return  # counted by close()
        self._end(trial, result, None)

    def final_before(self, trial_id: str) -> bool:
        """Whether an earlier run of this search left ``trial_id`` (every member of a pack) with
        a final row."""
        ids = [self.existing.get(trial_id)] if trial_id in self.existing else [
            status for row_id, status in self.existing.items() if row_id.startswith(f"{trial_id}-")]
        return bool(ids) and all(status in FINAL_STATUSES for status in ids)

    def _completion_status(self, result: dict[str, Any]) -> str:
        if result.get("diverged"):
            return "DIVERGED"
        return "COMPLETE" if int(result["epoch"]) >= self.spec.budget.max_epochs else "EARLY_STOPPED"

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._check_fatal(trial)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        exc = self._check_fatal(trial)
        line = error_line(exc) if exc is not None else "unknown error (see the trial's error.txt)"
        result = trial.last_result or {}
        if _reported(result):
            self._end(trial, result, "ERROR", error=line)
        else:
            self.failed_early[trial.trial_id] = line
            self._say(f"trial {trial.trial_id} failed before its first epoch: {line}")

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._see(trials)  # a restored run with nothing left to run may end before its first step

    # -- bookkeeping -----------------------------------------------------------------------------
    def _check_fatal(self, trial: Any) -> BaseException | None:
        exc = _trial_exception(trial)
        if isinstance(exc, DataError) and self.fatal is None:
            self.fatal = str(exc)  # the dataset is unusable: every other trial would fail the same way
        return exc

    def _row(self, trial_id: str, config: dict[str, Any], result: dict[str, Any], status: str, *,
             error: str | None = None, restarts: int = 0) -> dict[str, Any]:
        self.order += 1
        row = trial_row(trial_id=trial_id, config=config, result=result, status=status, spec=self.spec,
                        dataset=self.dataset, error=error, restarts=restarts, started_at=self.started_at.get(trial_id))
        return {**row, "completed_order": self.order}

    def _end(self, trial: Any, result: dict[str, Any], status: str | None, *, error: str | None = None) -> None:
        """Write the rows of a trial (one per member of a pack) that ended with ``status``
        (None: it completed, and each row's status follows from its epochs)."""
        self.ended[trial.trial_id] = status or "COMPLETE"
        # Every failure but a final one (ERROR) was followed by a restart from the checkpoint.
        restarts = trial.num_failures - (status == "ERROR")
        for row_id, config, unit, own in _units(trial.trial_id, trial.config, result):
            if self.existing.get(row_id) in FINAL_STATUSES and row_id != trial.trial_id:
                continue  # a member that ended before this run was interrupted: its row stands
            ended = own or status or self._completion_status(unit)
            row = self._row(row_id, config, unit, ended, error=error if ended == "ERROR" else None, restarts=restarts)
            self._write_later(row)
            self.done += 1
            extra = f": {error}" if ended == "ERROR" and error else ""
            self._say(f"[{self.done}/{self.spec.budget.trials}] trial {row_id} {row['variant']:9s} "
                      f"{ended.lower():13s} epochs={row['epochs']:<3} best H={row['H']:.4f} "
                      f"(U={row['U']:.4f} S={row['S']:.4f}){extra}")

    def _write_later(self, row: dict[str, Any]) -> None:
        with self._outbox_cv:
            self._outbox.append(row)
            self._outbox_cv.notify()
            if self._flusher is None:
                self._flusher = threading.Thread(target=self._flush_loop, name="leaderboard-writer", daemon=True)
                self._flusher.start()

    def _flush_loop(self) -> None:
        while True:
            with self._outbox_cv:
                self._outbox_cv.wait_for(lambda: bool(self._outbox))
                rows, self._outbox, self._writing = self._outbox, [], True
            try:
                self.writer.write(rows)  # rows that arrived meanwhile go together in the next write
            except BaseException as e:  # noqa: BLE001 - a spool that cannot be written; `flush` raises it
                self._write_error = e
            finally:
                with self._outbox_cv:
                    self._writing = False
                    self._outbox_cv.notify_all()

    def flush(self) -> None:
        """Wait until every row handed to the background writer is written (or spooled).

        Raises:
            LeaderboardError: a row could be neither uploaded nor spooled locally.
        """
        with self._outbox_cv:
            self._outbox_cv.wait_for(lambda: not self._outbox and not self._writing)
        if self._write_error is not None:
            error, self._write_error = self._write_error, None
            raise error

    def _say(self, line: str) -> None:
        if self.echo is not None:
            self.echo(line)

    def close(self, *, reason: str) -> list[str]:
        """Settle every trial that Tune stopped without a callback, once the run is over.

        ``reason`` is how the run ended: ``"finished"``, ``"time_budget"``, ``"interrupted"``
        or ``"data_error"``. Trials that reported an epoch get a row (INTERRUPTED when the run
        was interrupted, else STOPPED) unless they already hold a final one; the others are
        counted. Returns the summary lines to show the user.
        """
        self.flush()
        status = "INTERRUPTED" if reason == "interrupted" else "STOPPED"
        rows, unreported = [], Counter()
        for trial in self.trials:
            tid = trial.trial_id
            if tid in self.ended or tid in self.failed_early or self.final_before(tid):
                continue
            result = trial.last_result or {}
            if _reported(result) and "variant" in (trial.config or {}):
                for row_id, config, unit, own in _units(tid, trial.config, result):
                    if self.existing.get(row_id) in FINAL_STATUSES:
                        continue
                    ended = own or (self._completion_status(unit) if tid in self.finished_before else status)
                    rows.append(self._row(row_id, config, unit, ended, restarts=trial.num_failures))
                self.ended[tid] = status
            elif not any(k == tid or k.startswith(f"{tid}-") for k in self.existing):
                unreported[reason] += trial_count(trial.config)
        if rows:
            self.writer.write(rows)
        notes = []
        what = {"time_budget": "stopped by the time budget", "interrupted": "interrupted",
                "data_error": "stopped by the data error", "finished": "ended"}
        for why, n in unreported.items():
            again = f" ({'they start' if n != 1 else 'it starts'} again on `search resume`)"
            tail = again if why == "interrupted" else ""
            notes.append(f"{n} trial{'s' if n != 1 else ''} {what[why]} before {'their' if n != 1 else 'its'} "
                         f"first epoch{tail}")
        if self.failed_early:
            n = len(self.failed_early)
            first = next(iter(self.failed_early.values()))
            notes.append(f"{n} trial{'s' if n != 1 else ''} failed before {'their' if n != 1 else 'its'} first "
                         f"epoch (first error: {first}; tracebacks in each trial's error.txt)")
        return notes


def trial_count(config: dict[str, Any] | None) -> int:
    """How many trials (leaderboard rows, Optuna trials) one Tune trial is: a pack's members."""
    return len((config or {}).get("members", {})) or 1


def _units(trial_id: str, config: dict[str, Any], result: dict[str, Any]) -> list[tuple[str, dict, dict, str | None]]:
    """(row id, config, result, status it ended with or None) for each leaderboard row of a
    trial: the trial itself, or each member of a pack that reported an epoch."""
    if "members" not in config:
        return [(trial_id, config, result, None)]
    from ._pack import RUNNING, member_id

    variant, members = config["variant"], result.get("members", {})
    shared = {k: result[k] for k in ("time_total_s", "node_id", "first_step_at") if k in result}
    units = []
    for j in range(len(config["members"])):
        member = members.get(str(j))
        if member is None or not _reported(member):
            continue
        own = member["status"] if member.get("status", RUNNING) != RUNNING else None
        units.append((member_id(trial_id, j), {"variant": variant, **config["members"][str(j)]}, {**member, **shared},
                      own))
    return units


class FatalErrorStopper(Stopper):
    """Ends the whole search as soon as the ledger has seen a data error (a dataset a node
    cannot load fails every trial the same way: fail once, not once per trial)."""

    def __init__(self, ledger: TrialLedger) -> None:
        self.ledger = ledger

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.ledger.fatal is not None


class TuneStateCopies(Callback):
    """Keeps the `.tune-state/` copies of a search on a local disk fresh while it runs (after a
    loop step, at most every ``every_s`` seconds), so that a driver killed while Tune rewrote its
    state files leaves a recent copy of its own session's state, not only the session's before
    (`zsl_search.search._tune_state`). A file Tune is writing at that moment does not parse and is
    not copied."""

    def __init__(self, experiment: str, every_s: float = 10.0) -> None:
        self.experiment, self.every_s = experiment, every_s
        self._last = time.monotonic()

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            keep_tune_state(self.experiment)


class RunningMarker(Callback):
    """Refreshes the search's ``_running/<search>.json`` (`zsl_search.search._running`) after a loop step,
    at most every ``REFRESH_S`` seconds, so that `finalize` and `search resume` see a live driver."""

    def __init__(self, storage: str, search: str) -> None:
        self.storage, self.search = storage, search
        self._last = time.monotonic()

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        now = time.monotonic()
        if now - self._last >= REFRESH_S:
            self._last = now
            mark_running(self.storage, self.search)


class StaleCheckpointRepair(Callback):
    """Before a restored run starts its trials, points each one whose saved checkpoint is gone
    at the checkpoint that replaced it.

    Tune keeps one checkpoint per trial: registering epoch k+1's deletes epoch k's at once, and
    the experiment state that names the new one reaches storage a moment later. A driver killed
    in that moment (SIGKILL, a lost head node) leaves a state naming a deleted checkpoint, and
    its trial fails on resume instead of continuing. The newer checkpoint is there, complete (a
    worker persists it before reporting), so it is moved to the name the state expects: the
    trial goes on from the epoch after it, and Tune's own bookkeeping stays as saved."""

    def __init__(self) -> None:
        self._checked = False

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if self._checked:  # only a restored state can name a checkpoint this driver did not see
            return
        self._checked = True
        for trial in trials:
            checkpoint = trial.checkpoint
            if checkpoint is not None and trial.status not in ("TERMINATED", "ERROR"):
                newer = _repair_checkpoint(checkpoint.filesystem, checkpoint.path)
                if newer:
                    warn(f"trial {trial.trial_id}: its saved state named {Path(checkpoint.path).name}, which the "
                         f"driver had already replaced by {newer} when it was killed; continuing from {newer}")


def _checkpoint_index(name: str) -> int | None:
    prefix, _, digits = name.rpartition("_")
    return int(digits) if prefix == "checkpoint" and digits.isdigit() else None


def _repair_checkpoint(fs: Any, path: str) -> str | None:
    """Move the checkpoint that replaced a missing ``path`` (``checkpoint_<n>``: the first later
    one beside it) to ``path`` and return its name; None when ``path`` exists or nothing later does.

    Only the first later one is known complete: Tune deleted ``path`` when it registered that one,
    which a worker reports only once it is persisted. Any after it were never registered (one may
    be half written by a killed worker), and a later save would land in their directories, so they go."""
    import pyarrow.fs as pafs

    if fs.get_file_info(path).type != pafs.FileType.NotFound:
        return None
    parent, name = path.rstrip("/").rsplit("/", 1)
    wanted = _checkpoint_index(name)
    if wanted is None:
        return None
    later = sorted((index, info.path) for info in fs.get_file_info(pafs.FileSelector(parent))
                   if info.type == pafs.FileType.Directory
                   and (index := _checkpoint_index(info.base_name)) is not None and index > wanted)
    if not later:
        return None  # lost for good: Tune reports the trial's error as it would have
    source = later[0][1]
    try:
        fs.move(source, path)
    except (OSError, NotImplementedError):  # object stores cannot rename a directory
        pafs.copy_files(source, path, source_filesystem=fs, destination_filesystem=fs)
        fs.delete_dir(source)
    for _, unregistered in later[1:]:
        fs.delete_dir(unregistered)
    return Path(source).name


def stderr_echo(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
