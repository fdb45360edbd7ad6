"""Acceptance benchmark for the search: does ``experiments/quickstart.yaml`` finish within
5 minutes on this machine, and does its best validation H beat the best single variant
trained at its default configuration with the same epoch budget?

The baseline is measured in the same run: every variant at its reference defaults for the
demo set, ``budget.max_epochs`` epochs, scored exactly as a trial is (best validation H over
epochs). Prints both and their ratio; exits 1 if either target is missed.

    python -m bench.quickstart [--spec experiments/quickstart.yaml] [--storage DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def default_baselines(spec) -> dict[str, float]:
    """Best validation H over epochs for every variant of ``spec`` at its defaults."""
    from zsl_search import settings
    from zsl_search.models import get_variant
    from zsl_search.store import DataSource, load_split
    from zsl_search.train import train

    source = DataSource.from_spec(spec)
    split = load_split(source, cache_dir=settings.cache_dir())
    out = {}
    for name in spec.variants:
        params = get_variant(name).make_params({"epochs": spec.budget.max_epochs}, dataset=split.defaults_name)
        result = train(split, variant=name, params=params, seed=spec.seed)
        out[name] = max(row.get("H", 0.0) for row in result.history)
    return out


def main(argv: list[str] | None = None) -> int:
    from zsl_search.search import load_spec, run_search

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default=str(ROOT / "experiments" / "quickstart.yaml"))
    parser.add_argument("--storage", default=None, help="results directory (default: a temporary one)")
    args = parser.parse_args(argv)
    spec = load_spec(args.spec)
    storage = args.storage or tempfile.mkdtemp(prefix="bench-quickstart-")

    start = time.perf_counter()
    result = run_search(spec.override({"storage": storage}), progress=False)
    search_seconds = time.perf_counter() - start
    best = result.rows[0]
    start = time.perf_counter()
    baselines = default_baselines(spec)
    baseline_seconds = time.perf_counter() - start
    best_default = max(baselines.values())

    print(f"quickstart search: {len(result.rows)} trials, {search_seconds:.0f} s (target < 300 s)")
    print(f"  best validation H {best['H']:.4f} ({best['variant']}, trial {best['trial_id']})")
    print(f"defaults, {spec.budget.max_epochs} epochs each ({baseline_seconds:.0f} s): "
          + ", ".join(f"{k} {v:.4f}" for k, v in sorted(baselines.items())))
    print(f"  best default H {best_default:.4f}; search / best default = {best['H'] / max(best_default, 1e-9):.3f}")
    ok = search_seconds < 300 and best["H"] > best_default
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
