"""Does a cheaper per-epoch evaluator rank configurations like the reference one?

A search scores every epoch of every trial with the reference GZSL protocol (a softmax over
real seen + synthetic unseen features, 25 Adam epochs at batch = syn_num, plus a ZSL softmax).
On small sets that is close to half of an epoch's time. This benchmark trains N random
configurations per dataset, then scores each trained generator with the reference evaluator
and with cheaper candidates on the same synthetic features, and reports per candidate:

The reference is timed with the classifier's autograd training loop patched back in
(`_classifier._train_autograd`: autograd + torch.optim.Adam, as the reference code trains). The
first candidate is the package's own evaluator: the same protocol and math with the gradient
written out (`_classifier._train`); the others also use the written-out loop.

- Spearman's rho between its H and the reference H over the N configurations (goal >= 0.9),
- the reference's evaluation time divided by its own (goal >= 5x),
- for scale: rho between the reference and itself under another classifier seed.

    python -m bench.evaluator [--configs 30] [--pf60 DIR] [--threads 2]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PF60 = next((p for p in (ROOT.parent / "shared/data/real/PF60", Path("/work/shared/data/real/PF60"))
             if (p / "res101.mat").is_file()), None)

# name -> evaluate_gzsl keyword arguments (the reference is the default call)
CANDIDATES = {
    "reference protocol, written-out loop": {},
    "reference, other seed": dict(seed=1),
    "batch 512, 25 epochs, no ZSL": dict(cls_batch=512, zsl=False),
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
    scores: dict[str, list[float]] = {"reference": [], **{k: [] for k in CANDIDATES}}
    seconds = dict.fromkeys(scores, 0.0)
    for i in range(n):
        variant, values = _config(rng, split.dataset)
        params = get_variant(variant).make_params(values, dataset=split.defaults_name)
        trainer = Trainer(split, variant=variant, params=params, seed=i)
        for _ in range(params.epochs):
            trainer.train_epoch()
        with torch.no_grad():
            feats = trainer.generate(split.att[split.n_seen:], params.syn_num)
        if i == 0:  # warm up (first-call allocations) so that no evaluator pays for it
            for train in (_classifier._train_autograd, written_out):
                _classifier._train = train
                evaluate_gzsl(split, lambda att, k: feats, syn_num=params.syn_num, cls_epochs=1, zsl=False)
        for name, kwargs in {"reference": {}, **CANDIDATES}.items():
            _classifier._train = _classifier._train_autograd if name == "reference" else written_out
            t = time.perf_counter()
            result = evaluate_gzsl(split, lambda att, k: feats, syn_num=params.syn_num,
                                   **{"cls_epochs": params.cls_epochs, "seed": 0, **kwargs})
            seconds[name] += time.perf_counter() - t
            _classifier._train = written_out
            scores[name].append(result.H)
        print(f"  {i + 1}/{n} {variant:8s} epochs={params.epochs:2d} H ref {scores['reference'][-1]:.3f} "
              + " ".join(f"{scores[k][-1]:.3f}" for k in CANDIDATES), flush=True)
    return {k: (_spearman(scores["reference"], scores[k]), seconds["reference"] / seconds[k]) for k in CANDIDATES}


def main(argv: list[str] | None = None) -> int:
    import torch

    from zsl_search import settings
    from zsl_search.store import DataSource, load_split

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", type=int, default=30)
    ap.add_argument("--pf60", default=str(PF60) if PF60 else None, help="PF60 directory (skipped if absent)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    sets = {"demo": "demo", **({"PF60": args.pf60} if args.pf60 else {})}
    for name, path in sets.items():
        split = load_split(DataSource(path=path), cache_dir=settings.cache_dir())
        print(f"{name}: {args.configs} random configurations", flush=True)
        for cand, (rho, speed) in run(split, args.configs, args.seed).items():
            print(f"{name}: {cand:40s} Spearman {rho:.3f}  evaluation {speed:.1f}x faster", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
