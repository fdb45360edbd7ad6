"""Does the search's per-epoch evaluator rank configurations like the reference one, and how
much cheaper is it?

A search scores every epoch of every trial on the validation split and ranks trials by their
best H over epochs. The reference protocol (the reference code's) trains, at every epoch, a
softmax over real seen + synthetic unseen features for 25 Adam epochs at batch = syn_num with
autograd + `torch.optim.Adam`, then a ZSL softmax, then retrieval. On small sets that is close
to half of an epoch's time. This benchmark trains N random configurations per dataset epoch by
epoch, as a trial does, and at every epoch scores the generator with the reference evaluator and
with each candidate, on the same synthetic features. Per candidate it reports:

- Spearman's rho between its best-over-epochs H and the reference's, over the N configurations
  (goal >= 0.9);
- the reference's evaluation time, summed over all epochs, divided by its own (goal >= 5x).

The reference is timed with the classifier's autograd loop patched back in
(`_classifier._train_autograd`). The candidates run the package's written-out loop
(`_classifier._train`: the same math without autograd). The first is what a search runs: the
reference protocol, with the ZSL classifier and retrieval only at epochs that beat the trial's
best H so far (``runtime.lazy_zsl``; the only epochs the leaderboard reports them for). It also
checks that this evaluator reports the same ZSL accuracy for each trial's best epoch. Both sides
keep freed memory, as trial workers do. For scale: the reference against itself under another
classifier seed.

    python -m bench.evaluator [--configs 30] [--pf60 DIR] [--threads 1]
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PF60 = next((p for p in (ROOT.parent / "shared/data/real/PF60", Path("/work/shared/data/real/PF60"))
             if (p / "res101.mat").is_file()), None)


def pf60_missing(bench: str) -> int:
    """What a PF60 benchmark does without the feature set: say so on stderr and return 2."""
    print(f"{bench}: the PF60 feature set (../shared/data/real/PF60) is not on this machine", file=sys.stderr)
    return 2

SEARCH = "search: reference, ZSL at new best H"
# name -> evaluate_gzsl keyword arguments (the reference is the default call); "lazy" marks the
# candidate whose ZSL and retrieval run only above its trial's best H so far.
CANDIDATES = {
    SEARCH: {"lazy": True},
    "reference protocol, written-out loop": {},
    "reference, other seed": dict(seed=1),
    "batch 512, lr 1e-2, 10 epochs, no ZSL": dict(cls_batch=512, cls_lr=1e-2, cls_epochs=10, zsl=False),
    "full batch, lr 3e-2, 60 steps, no ZSL": dict(cls_batch=1 << 30, cls_lr=3e-2, cls_epochs=60, zsl=False),
}


def _config(rng: random.Random, dataset: str) -> tuple[str, dict]:
    variant = rng.choice(["fclswgan", "cgan", "cosgan"])
    small = dataset == "PF60"
    return variant, {
        "lr_g": 10 ** rng.uniform(-4, -2.5), "lr_d": 10 ** rng.uniform(-4, -2.5),
        "syn_num": int(10 ** rng.uniform(0.9, 2.0)) if small else int(10 ** rng.uniform(1.5, 2.5)),
        "hidden": rng.choice([256, 512]), "epochs": rng.randint(1, 10), "cls_pretrain_epochs": 20,
        **({"cls_weight": 10 ** rng.uniform(-2, 0)} if variant != "cosgan" else {}),
    }


def _spearman(a: list[float], b: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def run(split, n: int, seed: int) -> dict[str, tuple[float, float]]:
    import torch

    from zsl_search.eval import _classifier, evaluate_gzsl
    from zsl_search.models import get_variant
    from zsl_search.train import Trainer

    written_out = _classifier._train
    rng = random.Random(seed)
    names = ["reference", *CANDIDATES]
    best = {k: [] for k in names}  # per configuration: (best H over epochs, its ZSL accuracy)
    seconds = dict.fromkeys(names, 0.0)
    lazy_epochs = total_epochs = 0
    for i in range(n):
        variant, values = _config(rng, split.dataset)
        params = get_variant(variant).make_params(values, dataset=split.defaults_name)
        trainer = Trainer(split, variant=variant, params=params, seed=i)
        trial = dict.fromkeys(names, (-1.0, 0.0))
        for _ in range(params.epochs):
            trainer.train_epoch()
            with torch.no_grad():
                feats = trainer.generate(split.att[split.n_seen:], params.syn_num)
            if i == 0 and not total_epochs:  # warm up (first-call allocations) so that no evaluator pays for it
                for train in (_classifier._train_autograd, written_out):
                    _classifier._train = train
                    evaluate_gzsl(split, lambda att, k: feats, syn_num=params.syn_num, cls_epochs=1)
            total_epochs += 1
            for name in names:
                kwargs = dict(CANDIDATES.get(name, {}))
                if kwargs.pop("lazy", False):
                    kwargs["extras_above"] = trial[name][0]
                _classifier._train = _classifier._train_autograd if name == "reference" else written_out
                t = time.perf_counter()
                r = evaluate_gzsl(split, lambda att, k: feats, syn_num=params.syn_num,
                                  **{"cls_epochs": params.cls_epochs, "seed": 0, **kwargs})
                seconds[name] += time.perf_counter() - t
                _classifier._train = written_out
                if r.H > trial[name][0]:  # earliest epoch on ties, as a trial's best
                    trial[name] = (r.H, r.zsl_acc)
                lazy_epochs += name == SEARCH and not math.isnan(r.zsl_acc)
        for name in names:
            best[name].append(trial[name])
        print(f"  {i + 1}/{n} {variant:8s} epochs={params.epochs:2d} best H ref {best['reference'][-1][0]:.3f} "
              + " ".join(f"{best[k][-1][0]:.3f}" for k in CANDIDATES), flush=True)
    ref_h = [h for h, _ in best["reference"]]
    same_zsl = sum(abs(a[1] - b[1]) < 1e-6 for a, b in zip(best[SEARCH], best["reference"]) if a[0] == b[0])
    same_h = sum(a[0] == b[0] for a, b in zip(best[SEARCH], best["reference"]))
    print(f"  {SEARCH}: ZSL classifier at {lazy_epochs} of {total_epochs} epochs; best-epoch ZSL accuracy "
          f"equal to the reference's in {same_zsl} of the {same_h} trials whose best H is equal", flush=True)
    return {k: (_spearman(ref_h, [h for h, _ in best[k]]), seconds["reference"] / seconds[k]) for k in CANDIDATES}


def main(argv: list[str] | None = None) -> int:
    import torch

    from zsl_search import settings
    from zsl_search._memory import reuse_freed_memory
    from zsl_search.store import DataSource, load_split

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", type=int, default=30)
    ap.add_argument("--pf60", default=str(PF60) if PF60 else None, help="PF60 directory (skipped if absent)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (a trial's default: resources.cpu = 1)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    reuse_freed_memory()  # as every trial worker does (runtime.reuse_memory)
    sets = {"demo": "demo", **({"PF60": args.pf60} if args.pf60 else {})}
    for name, path in sets.items():
        split = load_split(DataSource(path=path), cache_dir=settings.cache_dir())
        print(f"{name}: {args.configs} random configurations, scored at every epoch", flush=True)
        for cand, (rho, speed) in run(split, args.configs, args.seed).items():
            print(f"{name}: {cand:40s} Spearman {rho:.3f}  evaluation {speed:.1f}x faster", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
