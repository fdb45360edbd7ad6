"""Acceptance benchmark for the search: does ``experiments/quickstart.yaml`` finish within
5 minutes on this machine, and does its best validation H beat the best single variant
trained at its default configuration with the same epoch budget?

The baseline is measured in the same run: every variant at its reference defaults for the
demo set, ``budget.max_epochs`` epochs, scored exactly as a trial is (best validation H over
epochs). Prints both and their ratio; exits 1 if either target is missed.

With ``--baseline`` it also runs the same spec and seed with the throughput machinery off
(every ``runtime`` switch false, `runtime_off`: today a fresh worker process and a freshly
trained frozen classifier per trial, glibc's own reuse of freed memory, the ZSL classifier at
every epoch; ``pack: 1``) and reports, as same-run ratios, trials finished per minute (and
epochs trained per minute: the two arms' paths through TPE and ASHA differ in length) and the
median time from a trial's start to its first generator step; ``--rounds N`` repeats the pair,
in alternating order, and prints the median ratio. Ray is then started, and the dataset
cached, once before both searches, so that neither pays for them (as a search submitted to a
running cluster does not). ``--pack K`` runs the search (not the baseline) with ``pack: K``.

    python -m bench.quickstart [--spec experiments/quickstart.yaml] [--storage DIR] [--baseline [--rounds N]] [--pack K]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import scratch_dir

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


def _throughput(result, seconds: float) -> tuple[float, float, float]:
    """(trials finished per minute, epochs trained per minute, median seconds from trial start
    to first generator step). Epochs per minute is context: with two trials at once the arms'
    finishing orders differ, so TPE and ASHA send them down different paths of unequal length."""
    import statistics

    startup = [r["startup_s"] for r in result.rows if r.get("startup_s") is not None]
    epochs = sum(r["epochs"] for r in result.rows)
    return (len(result.rows) / (seconds / 60), epochs / (seconds / 60),
            statistics.median(startup) if startup else float("nan"))


def runtime_off() -> dict[str, bool]:
    """Spec overrides that turn every `RuntimeSpec` switch off: the same code without its
    throughput machinery, the fair baseline (a switch added later is off here too)."""
    from zsl_search.search import RuntimeSpec

    return {f"runtime.{name}": False for name in RuntimeSpec.model_fields}


def _start_once(spec) -> float:
    """Start local Ray and cache the dataset before either timed search: otherwise the first
    search alone pays for both (the baseline would join the Ray the first one started), as a
    search submitted to a running cluster never does."""
    from zsl_search import settings
    from zsl_search._ray import init_ray
    from zsl_search.store import DataSource, load_split

    start = time.perf_counter()
    init_ray(None)
    load_split(DataSource.from_spec(spec), cache_dir=settings.cache_dir())
    return time.perf_counter() - start


def _timed(spec, overrides: dict) -> tuple[object, float]:
    from zsl_search.search import run_search

    start = time.perf_counter()
    result = run_search(spec.override(overrides), progress=False)
    return result, time.perf_counter() - start


def _compare(spec, storage: str, rounds: int, pack: int | None) -> tuple[object, float]:
    """``rounds`` pairs of (new, baseline) searches, the order alternating so that neither
    always runs first; prints each pair's ratios and their medians. Returns the first new
    search and its seconds."""
    import statistics

    first, ratios, epoch_ratios, startups = None, [], [], []
    for r in range(rounds):
        runs = {}
        for kind in ("new", "baseline") if r % 2 == 0 else ("baseline", "new"):
            changes = {"storage": storage, "name": f"{spec.name}-r{r}", "pack": pack}
            if kind == "baseline":
                changes.update({"name": f"{spec.name}-baseline-r{r}", **runtime_off(), "pack": 1})
            runs[kind] = _timed(spec, changes)
        (result, seconds), (base, base_seconds) = runs["new"], runs["baseline"]
        first = first or (result, seconds)
        (rate, epoch_rate, startup), (base_rate, base_epoch_rate, base_startup) = (
            _throughput(result, seconds), _throughput(base, base_seconds))
        ratios.append(rate / base_rate)
        epoch_ratios.append(epoch_rate / base_epoch_rate)
        startups.append(base_startup / startup)
        print(f"round {r + 1}: {rate:.1f} trials/min vs baseline {base_rate:.1f} ({ratios[-1]:.2f}x); "
              f"{epoch_rate:.0f} vs {base_epoch_rate:.0f} epochs/min ({epoch_ratios[-1]:.2f}x); median time "
              f"to first generator step {startup:.2f} s vs {base_startup:.2f} s ({startups[-1]:.1f}x shorter)")
        print(f"  new: {len(result.rows)} trials in {seconds:.0f} s, best H {result.rows[0]['H']:.4f}; baseline: "
              f"{len(base.rows)} trials in {base_seconds:.0f} s, best H {base.rows[0]['H']:.4f}")
    print(f"throughput: {statistics.median(ratios):.2f}x trials/min (median of {rounds} rounds, "
          f"{min(ratios):.2f}x-{max(ratios):.2f}x), {statistics.median(epoch_ratios):.2f}x epochs/min; "
          f"first generator step {statistics.median(startups):.1f}x sooner")
    return first


def main(argv: list[str] | None = None) -> int:
    from zsl_search.search import load_spec

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default=str(ROOT / "experiments" / "quickstart.yaml"))
    parser.add_argument("--storage", default=None, help="results directory (default: a temporary one)")
    parser.add_argument("--baseline", action="store_true", help="also run with the throughput machinery off")
    parser.add_argument("--pack", type=int, default=None, help="override the spec's pack (the baseline keeps 1)")
    parser.add_argument("--rounds", type=int, default=1, help="with --baseline: pairs of searches, order alternating")
    args = parser.parse_args(argv)
    spec = load_spec(args.spec)
    storage = args.storage or scratch_dir("bench-quickstart-")  # its checkpoints: 200 MB a run
    if args.baseline:
        ray_seconds = _start_once(spec)
        print(f"Ray started and the dataset cached in {ray_seconds:.1f} s, before and outside both timed searches")
        result, search_seconds = _compare(spec, storage, max(1, args.rounds), args.pack)
    else:
        result, search_seconds = _timed(spec, {"storage": storage, "pack": args.pack})
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
