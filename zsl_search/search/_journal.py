"""A search's Optuna journal: where it lives, how it is kept whole, and its copy beside the
leaderboard when results are remote.

Optuna's `JournalStorage` appends one JSON line per operation to a local file it can lock:
inside a local storage directory, or in the cache for remote (S3) results. There the file is
uploaded beside the leaderboard when a run ends and fetched back when the search is resumed on
another machine; `sync_journals` uploads the ones an outage kept here.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from .._files import atomic_write
from ..errors import StorageError, warn

if TYPE_CHECKING:
    from ..storage import Storage

__all__ = ["JOURNAL_FILE", "journal_path", "check_journal", "settle_journal", "upload_journal", "sync_journals"]

JOURNAL_FILE = "optuna.journal"
_CREATE_TRIAL = 4  # optuna.storages.journal's JournalOperation.CREATE_TRIAL


def _cached(results: Storage, cache_dir: Path) -> Path:
    """Where the journals of searches with remote ``results`` are kept here: by the storage's
    canonical URI, however the user spelled it (``s3://b/runs/`` is ``s3://b/runs``)."""
    return cache_dir / "journals" / hashlib.sha1(results.uri.encode()).hexdigest()[:16]


def journal_path(storage: str, name: str, cache_dir: Path, *, new: bool = False) -> Path:
    """The journal of search ``name``: in its folder for local results, else in the cache (a
    resumed search's fetched from the storage when the cache lacks it). ``new``: the search has
    just claimed its name, so a cached journal is an earlier search's of that name, since deleted
    from the storage; it is dropped, or its trials would steer this one's sampler."""
    from ..storage import StorageNotFound, open_storage

    results = open_storage(storage)
    if results.local_path is not None:
        return results.local_path / name / JOURNAL_FILE
    path = _cached(results, cache_dir) / name / JOURNAL_FILE
    if new:
        path.unlink(missing_ok=True)
        return path
    if not path.exists():
        try:
            data = results.read_bytes(f"{name}/{JOURNAL_FILE}")
        except StorageNotFound:
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda p: p.write_bytes(data))  # a killed fetch must not leave a short journal
    return path


def check_journal(path: Path, *, trials: int) -> None:
    """Make the journal of a search being resumed safe to append to, or refuse it in one line.
    ``trials``: how many trials Tune's saved state holds; each asked Optuna for its parameters,
    always before Tune saved it, so the journal created at least that many.

    Optuna skips a last line without its newline (a write a killed process left cut), but
    appends after it, gluing the next entry onto it: the study can then never be read again.
    So that cut line is dropped, which is what every reader already did. Any other damaged
    line, or fewer trials than Tune knows (a journal cut short, lost or replaced), means the
    sampler's history is gone: Tune's searcher would tell Optuna about trials it no longer has.

    Raises:
        StorageError: the journal is missing, damaged, or holds fewer trials than Tune's state.
    """
    def refuse(problem: str) -> StorageError:
        return StorageError(
            f"{path}: {problem}, so the search's sampler history is lost and it cannot be resumed; put the file "
            "back from a copy, or start a new search with --name NEW-NAME (this one's leaderboard stays readable "
            "and can be finalized)")

    data = path.read_bytes() if path.exists() else b""
    whole = data.rfind(b"\n") + 1
    created = 0
    for number, line in enumerate(data[:whole].splitlines(), 1):
        try:
            created += json.loads(line).get("op_code") == _CREATE_TRIAL
        except (ValueError, AttributeError):
            raise refuse(f"line {number} is not an Optuna journal entry (the file was damaged)") from None
    if created < trials:
        raise refuse("missing" if not data else f"{created} trial(s) in the journal, but Tune's saved state holds "
                     f"{trials} (the journal was cut short or replaced)")
    if whole < len(data):
        os.truncate(path, whole)
        warn(f"{path}: dropped its cut last line ({len(data) - whole} bytes, a write its killed driver never "
             "finished; Optuna had skipped it too)")


def settle_journal(path: Path, study_name: str) -> None:
    """Tell Optuna about trials Tune stopped without a word (the time budget, a fatal error):
    PRUNED if they reported an epoch, FAIL if not, so the study holds no phantom RUNNING trial."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState

    if not path.exists():
        return
    study = optuna.load_study(study_name=study_name, storage=JournalStorage(JournalFileBackend(str(path))))
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(trial.number, state=TrialState.PRUNED if trial.intermediate_values else TrialState.FAIL)


def upload_journal(storage: str, name: str, cache_dir: Path) -> None:
    """Copy the journal beside the leaderboard when results are remote (best effort: an outage
    leaves it in the cache for `sync_journals`)."""
    from ..storage import is_remote, open_storage

    if not is_remote(storage):
        return
    path = journal_path(storage, name, cache_dir)
    try:
        open_storage(storage).write_bytes(f"{name}/{JOURNAL_FILE}", path.read_bytes())
    except (OSError, StorageError) as e:
        warn(f"Optuna journal not uploaded ({e}); it stays at {path} until `zsl-search leaderboard sync {storage}`")


def sync_journals(storage: str, cache_dir: Path) -> tuple[list[str], list[str]]:
    """Upload each cached journal of ``storage`` that is ahead of its stored copy; returns the
    searches uploaded and those whose upload failed.

    A journal only grows, so the cached one is uploaded where the stored copy is missing or a
    proper prefix of it; a stored copy that is not (a later run on another machine wrote it) is
    kept, as is any journal of a search no longer in the storage. A running marker left by a
    driver that has ended (the outage kept it from removing it) is removed too."""
    from ..storage import StorageNotFound, is_remote, open_storage
    from .._names import SPEC_FILE
    from ._running import clear_stale

    if not is_remote(storage):
        return [], []
    uploaded, failed = [], []
    results = open_storage(storage)
    for path in sorted(_cached(results, cache_dir).glob(f"*/{JOURNAL_FILE}")):
        name, local = path.parent.name, path.read_bytes()
        key = f"{name}/{JOURNAL_FILE}"
        try:
            if not results.exists(f"{name}/{SPEC_FILE}"):
                continue
            try:
                stored = results.read_bytes(key)
            except StorageNotFound:
                stored = b""
            if len(stored) < len(local) and local.startswith(stored):
                results.write_bytes(key, local)
                uploaded.append(name)
            clear_stale(storage, name)  # the marker the same outage may have left behind
        except (OSError, StorageError):
            failed.append(name)
    return uploaded, failed
