"""``python -m bench``: run every benchmark and print its report."""

from __future__ import annotations

from . import quickstart

if __name__ == "__main__":
    raise SystemExit(quickstart.main())
