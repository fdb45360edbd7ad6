"""Argument types the subcommands share."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["path_arg", "place_arg"]


def place_arg(value: str) -> str:
    """A path or URI argument, refused when empty: ``Path("")`` is the current directory, so an
    unset shell variable (``--data "$DATA"``) would otherwise read or write wherever the user is."""
    if not value.strip():
        raise argparse.ArgumentTypeError("empty; name a file or directory ('.' for the current one)")
    return value


def path_arg(value: str) -> Path:
    """`place_arg` as a `Path`."""
    return Path(place_arg(value))
