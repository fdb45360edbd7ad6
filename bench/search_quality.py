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

With ``--replay`` it also replays the random arm's trials, which all ran every epoch, through
ASHA's rule offline for a grid of ``grace_epochs`` x reduction factors: the same trials in the
same order on the same two workers (each epoch as long as it took), a trial stopped where its
best H so far is below the rung's cutoff (Ray's rule, `ray.tune.schedulers.ASHAScheduler`).
It shows, without another search, what early stopping alone costs on these trials (best H)
and saves (epochs), and how many trials have H = 0 at the first rung, where ASHA's cutoff
carries no information.

    python -m bench.search_quality [--seeds 0 1 2] [--trials 30] [--epochs 20] [--runtime-baseline] [--replay]
"""

from __future__ import annotations

import argparse
import heapq
import json
import statistics
import sys
import time
from pathlib import Path

from . import scratch_dir
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
    return {"name": over["name"], "best": result.rows[0]["H"] if result.rows else 0.0,
            "epochs": sum(r["epochs"] for r in result.rows), "seconds": seconds, "done": done, "trials": len(result.rows)}


def _curves(storage: str, name: str) -> list[dict]:
    """Per trial, in start order: its validation H after each epoch and each epoch's seconds,
    from Tune's ``result.json`` in the (local) results directory."""
    out = []
    for f in Path(storage, name).glob("*/result.json"):
        rows = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
        if rows:
            out.append({"start": rows[0]["timestamp"] - rows[0]["time_this_iter_s"],
                        "H": [r.get("last_H", 0.0) for r in rows], "seconds": [r["time_this_iter_s"] for r in rows]})
    return sorted(out, key=lambda c: c["start"])


def _replay_asha(curves: list[dict], *, grace: int, reduction: int, max_epochs: int,
                 workers: int = 2) -> tuple[float, int]:
    """(best H found, epochs trained) had ASHA scheduled these fully trained trials, in the same
    order on ``workers`` workers: at each rung (`asha_rungs`) a trial goes on unless its best H
    so far is below the (1 - 1/reduction) quantile of the best H of the trials recorded there
    before it, as Ray's ASHA decides."""
    import numpy as np

    from zsl_search.search._factories import asha_rungs

    rungs: dict[int, list[float]] = {rung: [] for rung in asha_rungs(grace, reduction, max_epochs)}
    waiting, events, epochs, best = list(range(len(curves))), [], 0, 0.0

    def start(i: int, now: float) -> None:
        heapq.heappush(events, (now + curves[i]["seconds"][0], i, 1))

    for _ in range(min(workers, len(curves))):
        start(waiting.pop(0), 0.0)
    while events:
        now, i, epoch = heapq.heappop(events)
        epochs += 1
        h = max(curves[i]["H"][:epoch])
        best = max(best, h)
        stop = epoch >= min(max_epochs, len(curves[i]["H"]))
        if epoch in rungs:
            recorded = rungs[epoch]
            stop = stop or (bool(recorded) and h < np.nanpercentile(recorded, (1 - 1 / reduction) * 100))
            recorded.append(h)
        if not stop:
            heapq.heappush(events, (now + curves[i]["seconds"][epoch], i, epoch + 1))
        elif waiting:
            start(waiting.pop(0), now)
    return best, epochs


def _replay(storage: str, runs: dict, seeds: list[int], *, max_epochs: int, first_rung: int) -> None:
    grid = [(g, r) for g in (3, 5, 8) for r in (2, 3, 4)]
    print(f"replay of the random arm's trials through ASHA (grace x reduction: best H / epochs of {max_epochs} x trials)")
    for seed in seeds:
        curves = _curves(storage, runs[("random", seed)]["name"])
        zeros = sum(max(c["H"][:first_rung], default=0.0) == 0.0 for c in curves)
        full = max((max(c["H"]) for c in curves), default=0.0)
        cells = []
        for g, r in grid:
            b, e = _replay_asha(curves, grace=g, reduction=r, max_epochs=max_epochs)
            cells.append(f"{g}x{r} {b:.3f}/{e}")
        print(f"  seed {seed}: all epochs {full:.3f}/{sum(len(c['H']) for c in curves)}; H = 0 at epoch {first_rung} in "
              f"{zeros}/{len(curves)} trials; " + ", ".join(cells))


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
    parser.add_argument("--replay", action="store_true",
                        help="also replay the random arm's trials through ASHA offline (grace x reduction grid)")
    parser.add_argument("--storage", default=None, help="results directory (default: a temporary one)")
    args = parser.parse_args(argv)
    if PF60 is None:
        return pf60_missing("bench.search_quality")
    spec = load_spec(args.spec)
    spec = spec.override({"dataset.path": str(PF60), "budget.trials": args.trials, "budget.max_epochs": args.epochs,
                          "budget.grace_epochs": min(spec.budget.grace_epochs, args.epochs)})
    storage = args.storage or scratch_dir("bench-quality-")
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
    if args.replay:
        _replay(storage, runs, args.seeds, max_epochs=args.epochs, first_rung=spec.budget.grace_epochs)
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
