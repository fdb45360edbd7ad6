"""Whether a search's driver is running: ``<storage>/_running/<search>.json``, written when the
driver starts, refreshed while it runs and removed when it ends.

A leaderboard has one writer at a time (`zsl_search.leaderboard.LeaderboardWriter`): the
driver rewrites every row it knows at each trial's end, so test columns that `finalize` added
beside it would be gone at the next one. `finalize` therefore refuses a search whose driver is
alive. A killed driver cannot remove its marker; the marker counts as stale once its driver's
process is gone (same machine) or it has not been refreshed for `STALE_S` seconds. (Not in the
search's own folder: Tune manages that one, and on S3 its syncing replaces what it holds.)"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

from ..errors import ConfigError, warn

RUNNING_DIR = "_running"
REFRESH_S = 30.0  # how often a running driver rewrites its marker
STALE_S = 4 * REFRESH_S  # a marker older than this was left by a driver that no longer runs


def mark_running(storage: str, search: str) -> None:
    """Write (or refresh) the marker of this driver (best effort: a storage that fails now
    fails the search's own writes too, which say so)."""
    from ..storage import open_storage

    marker = {"host": socket.gethostname(), "pid": os.getpid(), "updated_at": time.time()}
    try:
        open_storage(storage).write_bytes(_key(search), json.dumps(marker).encode())
    except Exception as e:  # noqa: BLE001 - never end a search for its marker
        warn(f"{_key(search)} not written ({str(e).splitlines()[0] if str(e) else type(e).__name__})")


def clear_running(storage: str, search: str) -> None:
    """Remove the marker (best effort: one left behind goes stale)."""
    from ..storage import open_storage

    try:
        open_storage(storage).delete(_key(search))
    except Exception:  # noqa: BLE001, S110 - a marker left behind goes stale after STALE_S
        pass


def clear_stale(storage: str, search: str) -> bool:
    """Remove a marker whose driver no longer runs (one an outage kept its driver from
    removing); returns whether one was removed."""
    marker = _read(storage, search)
    if marker is None or not _stale(marker):
        return False
    clear_running(storage, search)
    return True


def check_not_running(storage: str, search: str, *, then: str) -> None:
    """Raise `ConfigError` when a live driver runs ``search``; ``then`` says what waits for it
    to end and why, e.g. ``"finalize it once it has ended, or ..."``."""
    marker = _read(storage, search)
    if marker is None or _stale(marker):
        return
    age = max(0.0, time.time() - float(marker["updated_at"]))
    raise ConfigError(
        f"search {search!r} is still running (its driver, pid {marker['pid']} on {marker['host']}, was alive "
        f"{age:.0f} s ago): {then} (a driver that was killed: its {_key(search)} counts as stale "
        f"{STALE_S:.0f} s after it)")


def _key(search: str) -> str:
    return f"{RUNNING_DIR}/{search}.json"


def _read(storage: str, search: str) -> dict[str, Any] | None:
    from ..storage import StorageNotFound, open_storage

    try:
        marker = json.loads(open_storage(storage).read_bytes(_key(search)))
    except StorageNotFound:
        return None
    except ValueError:
        return None  # a torn write of a marker: it says nothing
    ok = isinstance(marker, dict) and isinstance(marker.get("updated_at"), (int, float))
    return marker if ok and isinstance(marker.get("pid"), int) and isinstance(marker.get("host"), str) else None


def _stale(marker: dict[str, Any]) -> bool:
    if time.time() - float(marker["updated_at"]) > STALE_S:
        return True
    if marker["host"] != socket.gethostname():
        return False
    try:
        os.kill(marker["pid"], 0)
    except ProcessLookupError:
        return True  # its driver is gone
    except PermissionError:
        return False  # alive, someone else's
    return False
