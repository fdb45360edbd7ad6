"""Checks on the folders the data commands write into, made before any work starts."""

from __future__ import annotations

from pathlib import Path

from .._files import nearest_existing
from ..errors import DataError


def check_output_dir(out: Path) -> None:
    """Raise `DataError` when ``out`` cannot be a directory: it, or the nearest part of its
    path that exists, is a file (``mkdir`` would fail after the work, with a traceback)."""
    part = nearest_existing(out)
    if part.is_dir():
        return
    where = "exists" if part == out else f"cannot be created: {part} exists"
    raise DataError(f"{out}: {where} and is not a directory; choose another output directory")
