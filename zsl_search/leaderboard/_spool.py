"""The local spool: the full row set of a search whose last leaderboard upload failed.

Layout: ``settings.spool_dir()/<sha256(storage uri)[:16]>/<search>/rows.json``, holding the
storage URI, the search and its rows; replaced atomically (temp file + rename).
One process per search writes its spool; different searches never share a file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .. import settings
from .._files import atomic_write
from ..errors import LeaderboardError
from ._schema import normalize_row, record_to_json

__all__ = ["spool_path", "save", "load", "clear", "pending"]

_ROWS = "rows.json"


def spool_path(storage_uri: str, search: str) -> Path:
    """The spool directory of ``search`` under the canonical ``storage_uri``."""
    digest = hashlib.sha256(storage_uri.encode()).hexdigest()[:16]
    return settings.spool_dir() / digest / search


def save(storage_uri: str, search: str, records: Iterable[Mapping[str, Any]]) -> Path:
    """Replace the spool of ``search`` with ``records``; return its directory.

    Raises:
        LeaderboardError: the spool directory cannot be written (the rows are then at risk,
            so this is never swallowed).
    """
    where = spool_path(storage_uri, search)
    payload = {"storage_uri": storage_uri, "search": search, "rows": [record_to_json(r) for r in records]}
    text = json.dumps(payload)
    try:
        where.mkdir(parents=True, exist_ok=True)
        atomic_write(where / _ROWS, lambda p: p.write_text(text, encoding="utf-8"), fsync=True)
    except OSError as e:
        raise LeaderboardError(
            f"search {search!r}: cannot spool rows to {where} ({e.strerror}); free space or set "
            "ZSL_SEARCH_CACHE to a writable directory"
        ) from e
    return where


def _read(path: Path) -> dict[str, Any]:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        rows = [normalize_row(r, search=payload["search"]) for r in payload["rows"]]
        return {"storage_uri": str(payload["storage_uri"]), "search": str(payload["search"]), "rows": rows}
    except (OSError, ValueError, KeyError, TypeError, LeaderboardError) as e:
        raise LeaderboardError(
            f"{path}: unreadable leaderboard spool ({type(e).__name__}: {e}); inspect it, then move it "
            "away to continue (its rows are not on the storage yet)"
        ) from e


def load(storage_uri: str, search: str) -> list[dict[str, Any]] | None:
    """The spooled records of ``search``, or None when nothing is pending.

    Raises:
        LeaderboardError: the spool file exists but is unreadable.
    """
    path = spool_path(storage_uri, search) / _ROWS
    return _read(path)["rows"] if path.is_file() else None


def clear(storage_uri: str, search: str) -> None:
    """Forget the spool of ``search`` after a successful upload."""
    where = spool_path(storage_uri, search)
    (where / _ROWS).unlink(missing_ok=True)
    try:
        where.rmdir()
        where.parent.rmdir()
    except OSError:
        pass  # not empty: other searches of the same storage are still pending


def pending(storage_uri: str | None = None) -> list[tuple[str, str]]:
    """``(storage_uri, search)`` of every pending spool, or only those of ``storage_uri``."""
    root = settings.spool_dir()
    if storage_uri is not None:
        dirs = [spool_path(storage_uri, "x").parent]
    else:
        dirs = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    found = []
    for d in dirs:
        for rows in sorted(d.glob(f"*/{_ROWS}")):
            payload = _read(rows)
            found.append((payload["storage_uri"], payload["search"]))
    return found
