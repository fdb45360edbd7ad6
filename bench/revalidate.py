"""Winner's curse on PF60: would re-validating a search's best trials with fresh seeds choose
better finalists?

A search keeps the trials whose validation H was highest among 30; on 10 validation people
part of that height is the luck of one seed. This runs ``experiments/pf60.yaml`` once, then
repeats each of its ``--top`` finalizable trials' validated procedure (hyperparameters,
generator steps, classifier length: what `finalize` repeats) under ``validation`` with 3 new
seeds and under ``test`` with the 3 seeds `finalize` uses, and compares the test H of the
top 3 chosen by the search's own validation H, by the re-validation mean, and by both.
In-process, one thread; the search's path depends on the order its two concurrent trials
finish, so two runs can pick different trials.

    python -m bench.revalidate [--top 10] [--sampler-seed 0]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from . import scratch_dir
from .evaluator import PF60, pf60_missing, ROOT


def main(argv: list[str] | None = None) -> int:
    import torch
    from scipy.stats import spearmanr

    from zsl_search import settings
    from zsl_search.leaderboard import read_rows
    from zsl_search.models import get_variant
    from zsl_search.search import load_spec, run_search
    from zsl_search.search._finalize import FINALIZABLE
    from zsl_search.store import DataSource, load_split
    from zsl_search.train import train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--sampler-seed", type=int, default=0)
    args = parser.parse_args(argv)
    if PF60 is None:
        return pf60_missing("bench.revalidate")
    torch.set_num_threads(1)
    storage = scratch_dir("bench-revalidate-")
    spec = load_spec(ROOT / "experiments" / "pf60.yaml").override(
        {"storage": storage, "dataset.path": str(PF60), "sampler.seed": args.sampler_seed})
    run_search(spec, progress=False)
    rows = [r for r in read_rows(storage, spec.name) if r["status"] in FINALIZABLE][: args.top]
    splits = {p: load_split(DataSource.from_spec(spec, protocol=p), cache_dir=settings.cache_dir())
              for p in ("validation", "test")}

    def repeat(row: dict, protocol: str, seed: int) -> float:
        split = splits[protocol]
        params = get_variant(row["variant"]).make_params(
            {**json.loads(row["config_json"]), "epochs": spec.budget.max_epochs}, dataset=split.defaults_name)
        result = train(split, variant=row["variant"], params=params, seed=seed, device="cpu", eval_every=sys.maxsize,
                       select_epoch=False, steps=int(row["best_step"]), schedule_steps=int(row["schedule_steps"]),
                       cls_epochs=int(row["cls_epochs"]) or None, cls_steps=int(row["cls_steps"]) or None)
        return result.metrics["H"]

    print(f"PF60, the {len(rows)} best finalizable trials of one pf60.yaml search (sampler seed {args.sampler_seed})")
    scored = []  # (search validation H, re-validation mean, test mean)
    for row in rows:
        again = statistics.fmean(repeat(row, "validation", spec.seed + 100 + i) for i in range(3))
        test = statistics.fmean(repeat(row, "test", spec.seed + i) for i in range(3))
        scored.append((row["H"], again, test))
        print(f"  {row['trial_id']} {row['variant']:9s} search validation H {row['H']:.3f}, "
              f"re-validated (3 new seeds) {again:.3f}, test {test:.3f}", flush=True)

    def top3(key) -> float:
        return statistics.fmean(t for *_, t in sorted(scored, key=key, reverse=True)[:3])

    print(f"test H of the top 3 by the search's validation H {top3(lambda s: s[0]):.3f}, by re-validation "
          f"{top3(lambda s: s[1]):.3f}, by their mean {top3(lambda s: s[0] + s[1]):.3f}; "
          f"the best single trial here {max(s[2] for s in scored):.3f}")
    rho_search = spearmanr([s[0] for s in scored], [s[2] for s in scored]).statistic
    rho_again = spearmanr([s[1] for s in scored], [s[2] for s in scored]).statistic
    print(f"Spearman with test H: the search's validation H {rho_search:.2f}, re-validation {rho_again:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
