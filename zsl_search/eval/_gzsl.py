"""GZSL / ZSL / retrieval evaluation of a feature generator on one split."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ._classifier import fit_softmax
from ._metrics import _PerClass, harmonic_mean, precision_at_k, retrieval_map

if TYPE_CHECKING:  # the data layer is only needed for the type hint
    from ..data import Split

# Evaluation forward passes are cheap (one matmul); big batches keep the Python loop short.
_EVAL_BATCH = 8192
_CLS_LR, _CLS_BETA1 = 1e-3, 0.5  # the reference final classifier's Adam settings


@dataclass(frozen=True)
class EvalResult:
    """Scores of one generator on one split, all accuracies in [0, 1].

    Attributes:
        U: GZSL per-class accuracy on the unseen evaluation images (predicting over all classes).
        S: GZSL per-class accuracy on the seen evaluation images (predicting over all classes).
        H: harmonic mean of U and S at the selected classifier epoch.
        zsl_acc: ZSL per-class accuracy on the unseen images, predicting among unseen classes only.
        retrieval_map: mAP of retrieving unseen images with per-class mean synthetic features.
        precision_at_k: precision@k of the same retrieval. These three are NaN where
            ``evaluate_gzsl(extras_above=...)`` skipped them.
        cls_epoch: GZSL classifier epoch (from 0) with the best H; U, S and H are from it.
        cls_steps: Adam steps the GZSL classifier had taken by the end of that epoch.

    Example:
        >>> r = evaluate_gzsl(split, generate, syn_num=300)
        >>> print(f"U={r.U:.3f} S={r.S:.3f} H={r.H:.3f}")
    """

    U: float
    S: float
    H: float
    zsl_acc: float
    retrieval_map: float
    precision_at_k: float
    cls_epoch: int
    cls_steps: int = 0

    def as_dict(self) -> dict[str, float]:
        """The fields as a flat dict (e.g. for logging or a results table)."""
        return asdict(self)


@torch.no_grad()
def _predict(layer: nn.Linear, x: Tensor) -> Tensor:
    """Argmax class of every row of ``x``, in batches of ``_EVAL_BATCH``."""
    if len(x) == 0:
        return torch.empty(0, dtype=torch.long, device=x.device)
    # max(dim).indices: the same first-maximum index as argmax(dim), about 4x faster on CPU for few classes.
    return torch.cat([layer(x[i : i + _EVAL_BATCH]).max(dim=1).indices for i in range(0, len(x), _EVAL_BATCH)])


def evaluate_gzsl(
    split: Split,
    generate: Callable[[Tensor, int], Tensor],
    *,
    syn_num: int,
    seed: int = 0,
    device: torch.device | str = "cpu",
    cls_epochs: int = 25,
    k: int = 50,
    select_epoch: bool = True,
    cls_steps: int | None = None,
    cls_batch: int | None = None,
    cls_lr: float = _CLS_LR,
    zsl: bool = True,
    extras_above: float | None = None,
) -> EvalResult:
    """Score a feature generator on a split with the reference GZSL protocol.

    Synthesises ``syn_num`` features per unseen class once, then:

    * GZSL: a softmax over all ``split.n_classes`` classes, trained on the real ``split.train_x``
      plus the synthetic unseen features. After every epoch U (on ``split.unseen_x``), S (on
      ``split.seen_x``) and H are computed; the epoch with the best H is kept (ties: earliest).
    * ZSL: a second softmax over the unseen classes only, trained on the synthetic features
      alone; its best per-class accuracy on ``split.unseen_x`` over its epochs is reported.
    * Retrieval: the query of each unseen class is the mean of its synthetic features, the
      gallery is ``split.unseen_x``; mAP and precision@k.

    A generator output containing NaN or inf (a diverged GAN) scores 0.0 everywhere, without training.

    Both epoch choices use only the split's own evaluation sets, as the reference code does. The
    function reads nothing but ``split``: under protocol "validation" those sets are the held-out
    seen images and the validation classes inside trainval, so no test image is touched.

    Args:
        split: the data (any object with Split's tensors and ``n_seen``/``n_unseen``/``n_classes``).
        generate: ``generate(att_rows (K, A), n) -> (K * n, D)`` synthetic features in class-major
            order (n rows for class 0, then n for class 1, ...). Called once, under no_grad; it
            owns its noise, so seed it yourself for reproducible scores.
        syn_num: synthetic features per unseen class.
        seed: seed of both classifiers (init and shuffling).
        device: where the classifiers train and predict; split tensors are moved there.
        cls_epochs: epochs of each classifier.
        k: cut-off for precision@k (capped at the number of unseen images).
        select_epoch: True (the reference protocol): report the classifiers' best epoch on the
            split's evaluation sets. False: report their last epoch, choosing nothing on those
            sets (what a final report on the test split should do).
        cls_steps: train the GZSL classifier for exactly this many Adam steps instead of
            ``cls_epochs`` epochs (the last epoch may be partial): a classifier length validated
            on a split of another size, transferred as steps (see `zsl_search.search.finalize`).
        cls_batch, cls_lr: the GZSL classifier's batch (default ``syn_num``, as the reference)
            and Adam rate; a cheaper evaluator changes them (see bench/evaluator.py).
        zsl: train the ZSL classifier too; False reports ``zsl_acc`` 0.0 and saves its cost.
        extras_above: run the ZSL classifier and the retrieval only when H is above this, and
            report NaN for them otherwise. A search passes its trial's best H so far: it reports
            them for the best epoch only, so they are computed for exactly the epochs that
            become it. None (the default): always.

    Returns:
        An :class:`EvalResult`.

    Raises:
        ConfigError: ``syn_num``, ``cls_epochs``, ``k`` or ``cls_steps`` is not positive.
        ValueError: ``generate`` returns the wrong shape.
    """
    if syn_num < 1:
        raise ConfigError(f"evaluate_gzsl: syn_num={syn_num}; set syn_num to a positive integer such as 300")
    if cls_epochs < 1:
        raise ConfigError(f"evaluate_gzsl: cls_epochs={cls_epochs}; set cls_epochs to a positive integer, e.g. 25")
    if k < 1:
        raise ConfigError(f"evaluate_gzsl: k={k}; set the eval k to a positive integer such as 50")
    if cls_steps is not None and cls_steps < 1:
        raise ConfigError(f"evaluate_gzsl: cls_steps={cls_steps}; set it to a positive integer or leave it unset")
    device = torch.device(device)
    if cls_batch is not None and cls_batch < 1:
        raise ConfigError(f"evaluate_gzsl: cls_batch={cls_batch}; set it to a positive integer or leave it unset")
    batch = syn_num if cls_batch is None else cls_batch  # the reference code's batch is syn_num
    n_seen, n_unseen, n_classes = split.n_seen, split.n_unseen, split.n_classes
    train_x, train_y = split.train_x.to(device), split.train_y.to(device)  # (N_tr, D), (N_tr,)
    seen_x, seen_y = split.seen_x.to(device), split.seen_y.to(device)  # (N_s, D), (N_s,)
    unseen_x, unseen_y = split.unseen_x.to(device), split.unseen_y.to(device)  # (N_u, D), (N_u,)
    unseen_att = split.att[n_seen:].to(device)  # (n_unseen, A)

    with torch.no_grad():
        syn_x = generate(unseen_att, syn_num)
    expected = (n_unseen * syn_num, train_x.shape[1])
    if tuple(syn_x.shape) != expected:
        raise ValueError(f"evaluate_gzsl: generate returned shape {tuple(syn_x.shape)}, expected {expected}")
    syn_x = syn_x.detach().to(device=device, dtype=torch.float32)  # (n_unseen * syn_num, D)
    if not bool(torch.isfinite(syn_x).all()):
        # A diverged generator: NaN would make argmax and the ranking return arbitrary, non-zero scores.
        return EvalResult(U=0.0, S=0.0, H=0.0, zsl_acc=0.0, retrieval_map=0.0, precision_at_k=0.0, cls_epoch=0)
    syn_y = torch.arange(n_seen, n_classes, device=device).repeat_interleave(syn_num)  # (n_unseen * syn_num,)

    # GZSL: keep U, S, H of the epoch with the best H; strict ">" keeps the earliest on ties.
    best: dict[str, float] = {"H": -1.0, "U": 0.0, "S": 0.0, "epoch": 0, "steps": 0}
    n_gzsl = train_x.shape[0] + syn_x.shape[0]
    steps_per_epoch = -(-n_gzsl // batch)

    eval_x = torch.cat([unseen_x.float(), seen_x.float()])  # one predict per epoch for U and S
    unseen_acc, seen_acc = _PerClass(unseen_y), _PerClass(seen_y)

    def gzsl_epoch(epoch: int, layer: nn.Linear) -> None:
        pred = _predict(layer, eval_x)
        u, s = unseen_acc(pred[: len(unseen_x)]), seen_acc(pred[len(unseen_x) :])
        h = harmonic_mean(u, s)
        if h > best["H"] or not select_epoch:
            steps = (epoch + 1) * steps_per_epoch
            best.update(H=h, U=u, S=s, epoch=epoch, steps=steps if cls_steps is None else min(steps, cls_steps))

    fit_softmax(
        torch.cat([train_x.float(), syn_x]), torch.cat([train_y.long(), syn_y]), n_classes,
        epochs=cls_epochs if cls_steps is None else -(-cls_steps // steps_per_epoch), max_steps=cls_steps,
        batch_size=batch, lr=cls_lr, beta1=_CLS_BETA1, seed=seed, device=device,
        on_epoch=gzsl_epoch,
    )

    if extras_above is not None and not best["H"] > extras_above:
        nan = float("nan")
        return EvalResult(U=best["U"], S=best["S"], H=best["H"], zsl_acc=nan, retrieval_map=nan, precision_at_k=nan,
                          cls_epoch=int(best["epoch"]), cls_steps=int(best["steps"]))

    # ZSL: labels shifted to the unseen block 0..n_unseen-1.
    zsl_acc = _PerClass(unseen_y.long() - n_seen)
    zsl_best = [0.0]

    def zsl_epoch(epoch: int, layer: nn.Linear) -> None:
        acc = zsl_acc(_predict(layer, unseen_x))
        zsl_best[0] = max(zsl_best[0], acc) if select_epoch else acc

    if zsl:
        fit_softmax(
            syn_x, syn_y - n_seen, n_unseen,
            epochs=cls_epochs, batch_size=syn_num, lr=_CLS_LR, beta1=_CLS_BETA1, seed=seed, device=device,
            on_epoch=zsl_epoch,
        )

    queries = syn_x.view(n_unseen, syn_num, -1).mean(dim=1)  # (n_unseen, D) class-major order
    query_labels = torch.arange(n_seen, n_classes, device=device)  # (n_unseen,)
    return EvalResult(
        U=best["U"],
        S=best["S"],
        H=best["H"],
        zsl_acc=zsl_best[0],
        retrieval_map=retrieval_map(queries, query_labels, unseen_x, unseen_y),
        precision_at_k=precision_at_k(queries, query_labels, unseen_x, unseen_y, k=k),
        cls_epoch=int(best["epoch"]),
        cls_steps=int(best["steps"]),
    )
