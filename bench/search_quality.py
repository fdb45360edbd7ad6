"""Search quality on real features: does TPE + ASHA find as good a configuration as random
sampling without early stopping, for fewer epochs? And does the throughput machinery (worker
reuse, the node-shared classifier) reach the same best H sooner?

Runs ``experiments/pf60.yaml`` (PF60: real features, validation protocol) with the same trial
count under each arm and sampler seed, and reports per run the best validation H, the epochs
all trials trained in total, the wall time, and the best H found by the time the slower arm
had used a quarter, a half and all of its time (best H vs wall time: from each row's
completion time).

Arms: ``tpe+asha`` (the spec as written), ``random`` (random sampling, FIFO: every trial runs
all its epochs) and, with ``--runtime-baseline``, ``tpe+asha runtime off`` (the same spec with
every ``runtime`` switch false, `bench.quickstart.runtime_off`; it computes the same rows).
Every arm starts from each variant's PF60 defaults (the spec's ``warm_start``), then samples.

    python -m bench.search_quality [--seeds 0 1 2] [--trials 30] [--epochs 20] [--runtime-baseline]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

from .evaluator import PF60, pf60_missing, ROOT
from .quickstart import runtime_off

ARMS = {
    "tpe+asha": {},
    "random": {"sampler.name": "random", "scheduler": "fifo"},
}
RUNTIME_OFF = "tpe+asha runtime off"  # the spec as written, every runtime switch off


def _run(spec, arm: str, seed: int, storage: str) -> dict:
    from zsl_search.search import run_search

    over = {"storage": storage, "name": f"q-{arm.replace('+', '-').replace(' ', '-')}-{seed}", "sampler.seed": seed,
            **(runtime_off() if arm == RUNTIME_OFF else ARMS[arm])}
    start, t0 = time.time(), time.perf_counter()
    result = run_search(spec.override(over), progress=False)
    seconds = time.perf_counter() - t0
    # (seconds since start, best H so far) at each trial's end
    done = sorted((r["created_at"].timestamp() - start, r["H"]) for r in result.rows)
    return {"best": result.rows[0]["H"] if result.rows else 0.0, "epochs": sum(r["epochs"] for r in result.rows),
            "seconds": seconds, "done": done, "trials": len(result.rows)}


def _best_by(done: list[tuple[float, float]], t: float) -> float:
    return max((h for s, h in done if s <= t), default=0.0)


def main(argv: list[str] | None = None) -> int:
    from zsl_search.search import load_spec

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default=str(ROOT / "experiments" / "pf60.yaml"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--runtime-baseline", action="store_true",
                        help="also run the arm with the runtime switches off")
    parser.add_argument("--storage", default=None, help="results directory (default: a temporary one)")
    args = parser.parse_args(argv)
    if PF60 is None:
        return pf60_missing("bench.search_quality")
    spec = load_spec(args.spec)
    spec = spec.override({"dataset.path": str(PF60), "budget.trials": args.trials, "budget.max_epochs": args.epochs,
                          "budget.grace_epochs": min(spec.budget.grace_epochs, args.epochs)})
    storage = args.storage or tempfile.mkdtemp(prefix="bench-quality-")
    arms = [*ARMS, *([RUNTIME_OFF] if args.runtime_baseline else [])]
    runs = {(arm, seed): _run(spec, arm, seed, storage) for seed in args.seeds for arm in arms}

    print(f"PF60, {args.trials} trials x up to {args.epochs} epochs, variants {', '.join(spec.variants)}")
    for (arm, seed), r in runs.items():
        print(f"  {arm:22s} seed {seed}: best validation H {r['best']:.4f}, {r['epochs']:4d} epochs in all, "
              f"{r['seconds']:5.0f} s, {r['trials']} rows")
    for arm in arms:
        rs = [runs[(arm, s)] for s in args.seeds]
        mean = {k: statistics.fmean(r[k] for r in rs) for k in ("best", "epochs", "seconds")}
        print(f"{arm:22s} mean over seeds: best H {mean['best']:.4f}, epochs {mean['epochs']:.0f}, "
              f"{mean['seconds']:.0f} s")
    tpe, rnd = ([runs[(a, s)] for s in args.seeds] for a in ("tpe+asha", "random"))
    ratio = statistics.fmean(r["epochs"] for r in tpe) / statistics.fmean(r["epochs"] for r in rnd)
    better = sum(a["best"] >= b["best"] for a, b in zip(tpe, rnd))
    print(f"tpe+asha vs random: best H equal or better in {better}/{len(tpe)} seeds with {ratio:.0%} of the epochs "
          "(goal: equal or better with <= 50%)")
    # Best H vs wall time, against the slower arm's clock, per seed.
    for seed in args.seeds:
        pair = [a for a in arms if a != "tpe+asha"]
        for other in pair:
            a, b = runs[("tpe+asha", seed)], runs[(other, seed)]
            horizon = max(a["seconds"], b["seconds"])
            marks = [horizon * f for f in (0.25, 0.5, 1.0)]
            print(f"best H by 25/50/100% of {horizon:.0f} s, seed {seed}: tpe+asha "
                  + "/".join(f"{_best_by(a['done'], t):.3f}" for t in marks)
                  + f" vs {other} " + "/".join(f"{_best_by(b['done'], t):.3f}" for t in marks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
