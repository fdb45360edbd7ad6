"""``python -m bench``: run every benchmark and print its report."""

from __future__ import annotations

from . import feature_store, quickstart

if __name__ == "__main__":
    codes = [feature_store.main([]), quickstart.main([])]
    raise SystemExit(max(codes))
