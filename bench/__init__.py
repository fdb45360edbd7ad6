"""Benchmarks: each reports a ratio against a baseline measured in the same run."""

from __future__ import annotations

import atexit
import shutil
import tempfile


def scratch_dir(prefix: str) -> str:
    """A temporary results directory that goes when the benchmark's process exits: a search's
    checkpoints and logs are hundreds of MB, which /tmp should not keep run after run."""
    path = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path
