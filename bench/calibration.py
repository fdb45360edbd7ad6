"""Would a calibrated GZSL classifier carry a validated choice over to test on PF60?

On PF60 the reference GZSL softmax tips from predicting nearly every image as an unseen person
to predicting nearly every one as a seen person within a few hundred Adam steps, and a step
count validated on one side of that edge lands on the other side under ``test`` for some seeds
(README, "Real features: PF60"). Calibrated stacking (Chao et al., ECCV 2016) subtracts a
constant ``gamma`` from the seen classes' scores; chosen on validation, it could widen the window.
This measures whether it does, for f-CLSWGAN at its PF60 defaults (what a PF60 search starts
from), per seed:

- ``reference``: the GAN epoch and classifier epoch with the best validation H, repeated under
  ``test`` (what `finalize` does, with the validated classifier length in epochs here);
- ``+ offset``: the same, with ``gamma`` chosen on validation together with both epochs;
- ``last epoch + offset``: the classifier's full 25 epochs, GAN epoch and ``gamma`` chosen on
  validation (a converged classifier, so only the offset balances U and S);
- ``oracle offset``: that last row's epochs with the best ``gamma`` chosen on TEST: how far an
  offset could lift it at all.

Every classifier here is the reference one (`fit_softmax`: Adam 1e-3, beta1 0.5, batch
``syn_num``); the offset only changes which class wins at prediction time.

    python -m bench.calibration [--seeds 0 1 2] [--variant fclswgan]
"""

from __future__ import annotations

import argparse
import statistics

from .evaluator import PF60, pf60_missing

_GAMMAS = [round(-6 + 0.25 * i, 2) for i in range(49)]  # -6 .. 6: logits here are O(1-10)
_CLS_EPOCHS = 25


def _scores(split, variant: str, seed: int) -> list[list[dict[float, float]]]:
    """H[gan_epoch][cls_epoch][gamma] of one run on one split."""
    import torch

    from zsl_search.eval._classifier import fit_softmax
    from zsl_search.eval._metrics import _PerClass, harmonic_mean
    from zsl_search.models import get_variant
    from zsl_search.train import Trainer

    params = get_variant(variant).make_params(dataset="PF60")
    trainer = Trainer(split, variant=variant, params=params, seed=seed, device="cpu")
    n_seen, n_unseen = split.n_seen, len(split.unseen_x)
    eval_x = torch.cat([split.unseen_x.float(), split.seen_x.float()])
    unseen_acc, seen_acc = _PerClass(split.unseen_y), _PerClass(split.seen_y)
    syn_y = torch.arange(n_seen, split.n_classes).repeat_interleave(params.syn_num)
    out = []
    for _ in range(params.epochs):
        trainer.train_epoch()
        syn_x = trainer.generate(split.att[n_seen:], params.syn_num)
        per_cls: list[dict[float, float]] = []

        def on_epoch(_epoch: int, layer: torch.nn.Linear, per_cls=per_cls) -> None:
            with torch.no_grad():
                logits = layer(eval_x)
            row = {}
            for gamma in _GAMMAS:
                pred = torch.cat([logits[:, :n_seen] - gamma, logits[:, n_seen:]], dim=1).max(dim=1).indices
                row[gamma] = harmonic_mean(unseen_acc(pred[:n_unseen]), seen_acc(pred[n_unseen:]))
            per_cls.append(row)

        fit_softmax(torch.cat([split.train_x.float(), syn_x]), torch.cat([split.train_y.long(), syn_y]),
                    split.n_classes, epochs=_CLS_EPOCHS, batch_size=params.syn_num, lr=1e-3, beta1=0.5, seed=seed,
                    on_epoch=on_epoch)
        out.append(per_cls)
    return out


def _best(h, gammas, cls_epochs) -> tuple[int, int, float]:
    return max(((e, c, g) for e in range(len(h)) for c in cls_epochs for g in gammas), key=lambda k: h[k[0]][k[1]][k[2]])


def main(argv: list[str] | None = None) -> int:
    import torch

    from zsl_search.data import load_xlsa, make_split

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variant", default="fclswgan")
    args = parser.parse_args(argv)
    if PF60 is None:
        return pf60_missing("bench.calibration")
    torch.set_num_threads(1)
    ds = load_xlsa(PF60)
    every, last = range(_CLS_EPOCHS), [_CLS_EPOCHS - 1]
    rows = {"reference": [], "+ offset": [], "last epoch + offset": [], "oracle offset": []}
    print(f"PF60, {args.variant} at its PF60 defaults; test H of the choice made on validation")
    for seed in args.seeds:
        val = _scores(make_split(ds, "validation", seed=seed), args.variant, seed)
        test = _scores(make_split(ds, "test", seed=seed), args.variant, seed)
        choices = {"reference": _best(val, [0.0], every), "+ offset": _best(val, _GAMMAS, every),
                   "last epoch + offset": _best(val, _GAMMAS, last)}
        e, c, _ = choices["last epoch + offset"]
        choices["oracle offset"] = (e, c, max(_GAMMAS, key=lambda g: test[e][c][g]))
        parts = []
        for name, (e, c, g) in choices.items():
            rows[name].append(test[e][c][g])
            parts.append(f"{name} {test[e][c][g]:.3f} (GAN epoch {e + 1}, classifier epoch {c + 1}, offset {g:+.2f})")
        print(f"  seed {seed}: " + "; ".join(parts), flush=True)
    for name, hs in rows.items():
        print(f"{name:20s} test H {statistics.fmean(hs):.3f} (" + " / ".join(f"{h:.3f}" for h in hs) + ")")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
