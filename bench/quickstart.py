"""Acceptance benchmark for the search: does ``experiments/quickstart.yaml`` finish within
5 minutes on this machine, and does its best validation H beat the best single variant
trained at its default configuration with the same epoch budget?

The baseline is measured in the same run: every variant at its reference defaults for the
demo set, ``budget.max_epochs`` epochs, scored exactly as a trial is (best validation H over
epochs). Prints both and their ratio; exits 1 if either target is missed.

With ``--baseline`` it also runs the same spec and seed with the throughput machinery off
(``runtime: {reuse_workers: false, shared_classifier: false}``: a fresh worker process and a
freshly trained frozen classifier per trial; ``pack: 1``) and reports, as same-run ratios,
trials finished per minute and the median time from a trial's start to its first generator
step. ``--pack K`` runs the search (not the baseline) with ``pack: K``.

    python -m bench.quickstart [--spec experiments/quickstart.yaml] [--storage DIR] [--baseline] [--pack K]
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


def _throughput(result, seconds: float) -> tuple[float, float]:
    """(trials finished per minute, median seconds from trial start to first generator step)."""
    import statistics

    startup = [r["startup_s"] for r in result.rows if r.get("startup_s") is not None]
    return len(result.rows) / (seconds / 60), statistics.median(startup) if startup else float("nan")


def _compare(spec, storage: str, result, seconds: float) -> None:
    from zsl_search.search import run_search

    start = time.perf_counter()
    base = run_search(spec.override({"storage": storage, "name": f"{spec.name}-baseline",
                                     "runtime.reuse_workers": False, "runtime.shared_classifier": False,
                                     "pack": 1}),
                      progress=False)
    base_seconds = time.perf_counter() - start
    (rate, startup), (base_rate, base_startup) = _throughput(result, seconds), _throughput(base, base_seconds)
    print(f"throughput: {rate:.1f} trials/min vs baseline {base_rate:.1f} ({rate / base_rate:.2f}x); median time "
          f"to first generator step {startup:.2f} s vs {base_startup:.2f} s ({base_startup / startup:.1f}x shorter)")
    print(f"  baseline: {len(base.rows)} trials in {base_seconds:.0f} s, best validation H {base.rows[0]['H']:.4f}")


def main(argv: list[str] | None = None) -> int:
    from zsl_search.search import load_spec, run_search

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default=str(ROOT / "experiments" / "quickstart.yaml"))
    parser.add_argument("--storage", default=None, help="results directory (default: a temporary one)")
    parser.add_argument("--baseline", action="store_true", help="also run with the throughput machinery off")
    parser.add_argument("--pack", type=int, default=None, help="override the spec's pack (the baseline keeps 1)")
    args = parser.parse_args(argv)
    spec = load_spec(args.spec)
    storage = args.storage or tempfile.mkdtemp(prefix="bench-quickstart-")

    start = time.perf_counter()
    result = run_search(spec.override({"storage": storage, "pack": args.pack}), progress=False)
    search_seconds = time.perf_counter() - start
    if args.baseline:
        _compare(spec, storage, result, search_seconds)
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
