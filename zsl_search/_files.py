"""Writing a file so that a crash or a kill never leaves it half written: the one helper every
module that writes local files uses."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write"]


def atomic_write(path: Path, write: Callable[[Path], object], *, fsync: bool = False) -> None:
    """``write(tmp)`` then rename tmp to ``path``: a crash never leaves a half-written file there.

    The temporary file is a hidden sibling ``.<name>.<random>.tmp`` of its own, so writers of the
    same path in other processes or threads (two trials caching one dataset) never write into
    each other's file: the last rename wins whole. With ``fsync`` the data reaches the disk
    before the rename and the rename reaches it after, so a power cut can leave neither an
    empty ``path`` nor the old one (records that exist nowhere else: the leaderboard spool,
    objects in a local storage)."""
    # A fresh random name rather than mkstemp's file, which would be created 0600: ``write``
    # creates the file itself, with the permissions any other file it writes gets.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        write(tmp)
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
        if fsync:
            _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable; some filesystems (e.g. some network mounts) refuse, harmlessly."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def nearest_existing(path: Path) -> Path:
    """``path`` itself if it exists, else its nearest existing ancestor: where creating ``path``
    starts, so whether that is a directory decides whether it can be created."""
    return next(p for p in (path, *path.parents) if p.exists())
