"""Writing a search's leaderboard (Parquet, CSV, markdown, index entry), spooling on outages."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..errors import LeaderboardError, StorageError
from ..storage import Storage, open_storage
from . import _spool
from ._format import to_csv, to_markdown
from ._keys import check_search, index_key, leaderboard_key
from ._reader import _not_found, load_table
from ._schema import TEST_COLUMNS, normalize_row, rows_to_table, table_to_rows

__all__ = ["LeaderboardWriter", "SyncResult", "sync_pending", "pending_searches", "update_test_columns"]

log = logging.getLogger(__name__)

Record = dict[str, Any]


def _merge(*sources: Iterable[Mapping[str, Any]]) -> dict[str, Record]:
    """Records by trial_id; a later source wins, except that a null ``test_*`` value never
    erases a finalized one (a late rewrite of a trial must not drop its test results)."""
    merged: dict[str, Record] = {}
    for source in sources:
        for rec in source:
            old = merged.get(rec["trial_id"])
            new = dict(rec)
            if old is not None:
                for col in TEST_COLUMNS:
                    if new.get(col) is None:
                        new[col] = old.get(col)
            merged[rec["trial_id"]] = new
    return merged


def _remote_records(results: Storage, search: str) -> list[Record]:
    table = load_table(results, search)
    return [] if table is None else [normalize_row(r, search=search) for r in table_to_rows(table)]


def _upload(results: Storage, search: str, records: list[Record], *, dataset: str | None = None,
            protocol: str | None = None) -> None:
    """Write the Parquet, CSV and markdown leaderboards, then the index entry (each atomic).

    Parquet goes first: it is the source of truth the others are rendered from."""
    import pyarrow.parquet as pq

    table = rows_to_table(records, search=search)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    rows = table_to_rows(table)
    results.write_bytes(leaderboard_key(search, "parquet"), buf.getvalue())
    results.write_bytes(leaderboard_key(search, "csv"), to_csv(rows, columns=table.column_names).encode())
    results.write_bytes(leaderboard_key(search, "md"), to_markdown(rows).encode())
    best = rows[0] if rows and rows[0]["status"] != "ERROR" else None
    entry = {
        "name": search,
        "dataset": next((r["dataset"] for r in rows if r["dataset"]), dataset),
        "protocol": next((r["protocol"] for r in rows if r["protocol"]), protocol),
        "n_trials": len(rows),
        "best_H": best["H"] if best else None,
        "best_variant": best["variant"] if best else None,
        "updated_at": datetime.now(UTC).isoformat(),
    }
    results.write_bytes(index_key(search), json.dumps(entry, indent=2).encode())


class LeaderboardWriter:
    """Keeps ``<storage>/<search>/leaderboard.{parquet,csv,md}`` and ``<storage>/_index/<search>.json``
    up to date with every row handed to `write`.

    Contract: `write` merges the new rows by ``trial_id`` (newest wins) into everything known
    for the search: rows already on the storage (read once, on the first upload), rows spooled
    by an earlier failed write (by this or any earlier process) and rows of earlier calls. It then
    rewrites all objects, each atomically. If the storage fails (`StorageError`, e.g. S3 down
    after its retries), the full merged row set is spooled locally and `write` returns False; the
    next successful `write` or `sync_pending` uploads it. Nothing handed in is ever dropped.

    One writer per search at a time (a second concurrent writer of the same search would race
    on the same objects); writers of different searches never interfere. Thread-safe.

    Example:
        >>> writer = LeaderboardWriter("s3://bucket/results", "cub-fclswgan")
        >>> writer.write([{"trial_id": "t0", "variant": "fclswgan", "status": "COMPLETE",
        ...                "H": 0.49, "U": 0.43, "S": 0.57, "params": {"lr": 1e-4}}])
        True

    Args:
        storage_uri: ``s3://bucket/prefix`` or a local directory.
        search: the search name (letters, digits, ``.``, ``_``, ``-``).
        dataset, protocol: what the index entry says while no row does (a search none of whose
            trials has reported yet).

    Raises:
        StorageError: the URI is malformed.
        LeaderboardError: the search name is invalid.
    """

    def __init__(self, storage_uri: str, search: str, *, dataset: str | None = None,
                 protocol: str | None = None) -> None:
        self.search = check_search(search)
        self._about = {"dataset": dataset, "protocol": protocol}
        self._results = open_storage(storage_uri)
        self.storage_uri = self._results.uri  # canonical: the spool is keyed by it
        self._known: dict[str, Record] = {}
        self._remote_merged = False
        self._lock = threading.Lock()

    def write(self, rows: Iterable[Mapping[str, Any]]) -> bool:
        """Merge ``rows`` (input rows, see module `zsl_search.leaderboard`) and upload everything.

        Returns:
            True if the storage now holds every known row; False if it failed and the rows
            were spooled locally instead.

        Raises:
            LeaderboardError: a row is invalid (nothing is written), the stored leaderboard or
                the spool is unreadable, or the spool cannot be written.
        """
        new = [normalize_row(r, search=self.search) for r in rows]
        with self._lock:
            spooled = _spool.load(self.storage_uri, self.search) or []
            self._known = _merge(self._known.values(), spooled, new)
            try:
                if not self._remote_merged:
                    remote = _remote_records(self._results, self.search)
                    self._known = _merge(remote, self._known.values())
                    self._remote_merged = True
                _upload(self._results, self.search, list(self._known.values()), **self._about)
            except StorageError as e:
                where = _spool.save(self.storage_uri, self.search, self._known.values())
                log.warning("leaderboard of search %r not uploaded (%s); %d rows spooled in %s, "
                            "run `zsl-search leaderboard sync %s` once the storage is back",
                            self.search, e, len(self._known), where, self.storage_uri)
                return False
            except BaseException:
                _spool.save(self.storage_uri, self.search, self._known.values())
                raise
            _spool.clear(self.storage_uri, self.search)
            return True

    def rows(self) -> list[dict[str, Any]]:
        """Every row this writer knows (uploaded or spooled), as ranked leaderboard rows: what
        the storage holds, or will hold after the next successful write or `sync_pending`."""
        with self._lock:
            return table_to_rows(rows_to_table(list(self._known.values()), search=self.search))


@dataclass(frozen=True)
class SyncResult:
    """Outcome of `sync_pending`: ``(storage_uri, search)`` pairs uploaded and still pending."""

    uploaded: list[tuple[str, str]] = field(default_factory=list)
    still_pending: list[tuple[str, str]] = field(default_factory=list)


def pending_searches(storage_uri: str | None = None) -> list[tuple[str, str]]:
    """``(storage_uri, search)`` of every spooled, not yet uploaded leaderboard (or only those
    of ``storage_uri``).

    Raises:
        LeaderboardError: a spool file is unreadable.
    """
    return _spool.pending(None if storage_uri is None else open_storage(storage_uri).uri)


def sync_pending(storage_uri: str | None = None) -> SyncResult:
    """Upload every spooled leaderboard (of all storages, or only of ``storage_uri``).

    Each is merged with what is on the storage (spooled rows win) and rewritten; a storage
    that still fails keeps its spool and is reported in ``still_pending``, never raised.

    Raises:
        LeaderboardError: a spool file is unreadable.
    """
    result = SyncResult()
    for uri, search in pending_searches(storage_uri):
        ok = LeaderboardWriter(uri, search).write([])
        (result.uploaded if ok else result.still_pending).append((uri, search))
    return result


def update_test_columns(
    storage_uri: str, search: str, *, results: Mapping[str, Mapping[str, Any]]
) -> bool:
    """Add finalize's test-set results to trials of ``search`` and rewrite its leaderboard.

    Args:
        storage_uri: the storage root.
        search: the search name.
        results: ``{trial_id: {"test_U_mean": ..., "test_U_std": ..., "test_S_mean": ...,
            "test_S_std": ..., "test_H_mean": ..., "test_H_std": ..., "test_seeds": [0, 1, 2]}}``;
            any subset of those keys.

    Returns:
        True if uploaded, False if the storage failed and the rows were spooled (see `LeaderboardWriter`).

    Raises:
        SearchNotFound: the search has no leaderboard (stored or spooled).
        LeaderboardError: an unknown trial_id or key, or a non-numeric value.
        StorageError: the current leaderboard cannot be read.
    """
    writer = LeaderboardWriter(storage_uri, search)
    spooled = _spool.load(writer.storage_uri, writer.search) or []
    current = _merge(_remote_records(writer._results, writer.search), spooled)
    if not current:
        raise _not_found(writer._results, writer.search)
    updated = []
    for tid, values in results.items():
        if tid not in current:
            raise LeaderboardError(
                f"search {search!r}: no trial {tid!r} to add test results to; known trials include "
                f"{', '.join(sorted(current)[:5])}"
            )
        bad = sorted(set(values) - set(TEST_COLUMNS))
        if bad:
            raise LeaderboardError(
                f"search {search!r}, trial {tid!r}: unknown test key(s) {', '.join(bad)}; valid: {', '.join(TEST_COLUMNS)}"
            )
        updated.append({**current[tid], **values})
    return writer.write(updated)
