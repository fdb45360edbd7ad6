"""How much memory this process holds privately vs. maps from shared memory (Linux)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["process_memory"]


def process_memory() -> dict[str, int]:
    """Resident bytes of this process: ``RssAnon`` (private heap: what a per-trial copy of the
    features costs) and ``RssShmem`` (shared memory, e.g. Ray's object store) from
    ``/proc/self/status``. Empty on systems without procfs."""
    status = Path("/proc/self/status")
    if not status.exists():
        return {}
    out = {}
    for line in status.read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssShmem"):
            out[key] = int(value.split()[0]) * 1024  # the file reports kB
    return out
