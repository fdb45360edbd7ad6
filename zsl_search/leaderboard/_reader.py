"""Reading leaderboards and the per-search index back from a storage root."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..errors import LeaderboardError, SearchNotFound, StorageError, StorageNotFound, warn
from ..storage import Storage, open_existing
from ._keys import INDEX_PREFIX, check_search, leaderboard_key
from ._schema import table_to_rows

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["read_leaderboard", "read_rows", "list_searches", "load_table", "search_names"]


# What every leaderboard ever written holds; a table without them was not written here.
_CORE_COLUMNS = ("trial_id", "variant", "status", "H")


def search_names(results: Storage) -> list[str]:
    """Names of the searches indexed under ``results`` (sorted)."""
    return sorted(k[len(INDEX_PREFIX):-len(".json")] for k in results.list(INDEX_PREFIX) if k.endswith(".json"))


def _not_found(results: Storage, search: str) -> SearchNotFound:
    try:
        names = search_names(results)
        there = f"searches there: {', '.join(names)}" if names else "no searches there yet; check the storage URI"
    except StorageError:
        names, there = [], "the index could not be listed either; check the storage URI"
    if search in names:  # indexed, but its table is gone
        return SearchNotFound(f"{results.join(leaderboard_key(search, 'parquet'))}: missing, though search {search!r} "
                              "is indexed there; restore it (from the .csv beside it, if any) or rerun the search")
    return SearchNotFound(f"no search {search!r} under {results.uri}; {there}")


def load_table(results: Storage, search: str) -> pa.Table | None:
    """The leaderboard table of ``search`` in ``results``, or None if it has none yet.

    Raises:
        StorageError: the storage cannot be read.
        LeaderboardError: the stored Parquet file is unreadable.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    key = leaderboard_key(check_search(search), "parquet")
    try:
        data = results.read_bytes(key)
    except StorageNotFound:
        return None
    try:
        # One thread, no pre-buffering: a leaderboard is small, and Arrow's thread pools can
        # abort a short-lived CLI process at exit ("terminate called without an active exception",
        # apache/arrow#34314).
        table = pq.read_table(pa.BufferReader(data), use_threads=False, pre_buffer=False)
    except (pa.ArrowException, OSError) as e:
        raise LeaderboardError(
            f"{results.join(key)}: not a readable Parquet leaderboard ({type(e).__name__}); delete it and "
            "rewrite the search's results, or restore it from the .csv beside it"
        ) from e
    missing = [c for c in _CORE_COLUMNS if c not in table.column_names]
    if missing:
        raise LeaderboardError(f"{results.join(key)}: not a zsl-search leaderboard (no {', '.join(missing)} column); "
                               "restore it from the .csv beside it, or rerun the search")
    return table


def read_leaderboard(storage_uri: str, search: str) -> pa.Table:
    """The leaderboard of ``search`` under ``storage_uri`` as a pyarrow Table, in rank order.

    Example:
        >>> table = read_leaderboard("s3://bucket/results", "cub-fclswgan")
        >>> table.column("H")[0].as_py()

    Raises:
        SearchNotFound: no leaderboard for ``search`` there (the message lists those that exist).
        StorageError: the storage cannot be read.
        LeaderboardError: the search name is invalid or the stored file is unreadable.
    """
    results = open_existing(storage_uri)
    table = load_table(results, search)
    if table is None:
        raise _not_found(results, search)
    return table


def read_rows(storage_uri: str, search: str) -> list[dict[str, Any]]:
    """The leaderboard of ``search`` as a list of dicts (column -> value), best first.

    Raises:
        Same as `read_leaderboard`.
    """
    return table_to_rows(read_leaderboard(storage_uri, search))


def list_searches(storage_uri: str) -> list[dict[str, Any]]:
    """The index entries of every search under ``storage_uri``, sorted by name.

    Each entry: ``name``, ``dataset``, ``protocol``, ``n_trials``, ``best_H``, ``best_variant``
    and ``updated_at`` (ISO 8601, UTC). Empty when nothing was written there yet.

    A corrupt index entry is left out with a warning naming it: one damaged file must not hide
    every other search.

    Raises:
        StorageError: the storage cannot be read.
    """
    results = open_existing(storage_uri)
    entries = []
    for name in search_names(results):
        key = f"{INDEX_PREFIX}{name}.json"
        try:
            entry = json.loads(results.read_bytes(key))
            _check_entry(entry, name)
        except StorageNotFound:
            continue  # deleted between list and read
        except ValueError as e:
            warn(f"{results.join(key)}: corrupt index entry ({e}), left out of the list; delete it, the next write "
                 f"of search {name!r} recreates it")
            continue
        entries.append(entry)
    return entries


# The index entry's fields (as `_writer._upload` writes them): the JSON types each may hold.
_STR_OR_NULL = ((str, type(None)), "a string or null")
_ENTRY_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "dataset": _STR_OR_NULL, "protocol": _STR_OR_NULL, "best_variant": _STR_OR_NULL, "updated_at": _STR_OR_NULL,
    "n_trials": ((int,), "an integer"), "best_H": ((int, float, type(None)), "a number or null"),
}


def _check_entry(entry: Any, name: str) -> None:
    """Raise ValueError (reported like a JSON syntax error) unless ``entry`` is an index entry of
    search ``name``: valid JSON of another shape would break every reader of the listing."""
    if not isinstance(entry, dict):
        raise ValueError(f"expected a JSON object, got {json.dumps(entry)[:40]}")
    if entry.get("name") != name:
        raise ValueError(f"its 'name' is {entry.get('name')!r}, not {name!r}")
    for field, (types, what) in _ENTRY_TYPES.items():
        value = entry.get(field)
        if field in entry and (isinstance(value, bool) or not isinstance(value, types)):
            raise ValueError(f"field {field!r} is {value!r}, not {what}")
