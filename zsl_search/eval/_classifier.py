"""The reference softmax classifier: one linear layer + log-softmax + NLL, trained with Adam."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..errors import ConfigError


def fit_softmax(
    x: Tensor,
    y: Tensor,
    n_classes: int,
    *,
    epochs: int,
    batch_size: int,
    lr: float = 1e-3,
    beta1: float = 0.5,
    seed: int = 0,
    device: torch.device | str = "cpu",
    on_epoch: Callable[[int, nn.Linear], None] | None = None,
    max_steps: int | None = None,
) -> nn.Linear:
    """Train a linear softmax classifier on features ``x`` with labels ``y``.

    As in the reference code: weights N(0, 0.02), zero bias, log-softmax + NLL loss,
    Adam(lr, betas=(beta1, 0.999)), a fresh shuffle every epoch, last batch kept even if short.
    Initialisation and shuffling draw from one ``torch.Generator`` seeded with ``seed``; the
    global RNG is neither used nor advanced, so the same inputs and seed give the same weights.

    Args:
        x: (N, D) features (cast to float32 and moved to ``device``).
        y: (N,) int labels in [0, n_classes).
        n_classes: number of output classes.
        epochs: passes over the data (0 returns the initialised layer).
        batch_size: samples per Adam step.
        lr: Adam learning rate.
        beta1: Adam first-moment decay.
        seed: seed of the generator for init and shuffling.
        device: where to train.
        on_epoch: called as ``on_epoch(epoch, layer)`` after each epoch, epoch counted from 0,
            e.g. to evaluate and keep the best epoch. It must not change the layer.
        max_steps: stop after this many Adam steps (the last epoch may be partial; it still
            ends with ``on_epoch``). None: ``epochs`` whole epochs.

    Returns:
        The trained ``nn.Linear(D, n_classes)`` on ``device`` (logits; apply softmax yourself).
        Its parameters still require grad; freeze them if the classifier is used as a fixed loss.

    Raises:
        ConfigError: ``epochs`` < 0 or ``batch_size`` < 1.
        ValueError: ``x``/``y`` shapes disagree, ``x`` is empty, or a label is outside [0, n_classes).
    """
    if epochs < 0:
        raise ConfigError(f"fit_softmax: epochs={epochs}; set the classifier epochs to 0 or more")
    if batch_size < 1:
        raise ConfigError(f"fit_softmax: batch_size={batch_size}; set the batch size to 1 or more")
    if x.ndim != 2 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(f"fit_softmax: expected x (N, D) and y (N,), got {tuple(x.shape)} and {tuple(y.shape)}")
    if len(x) == 0:
        raise ValueError("fit_softmax: no training samples")
    device = torch.device(device)
    x = x.to(device=device, dtype=torch.float32)  # (N, D)
    y = y.to(device=device, dtype=torch.long)  # (N,)
    if int(y.min()) < 0 or int(y.max()) >= n_classes:
        raise ValueError(f"fit_softmax: labels in [{int(y.min())}, {int(y.max())}], outside [0, {n_classes})")

    # CPU generator for init and shuffling: the same numbers whatever the training device.
    gen = torch.Generator().manual_seed(seed)
    # skip_init: plain nn.Linear(...) would draw its default init from the global RNG.
    layer = nn.utils.skip_init(nn.Linear, x.shape[1], n_classes)
    with torch.no_grad():
        nn.init.normal_(layer.weight, 0.0, 0.02, generator=gen)
        nn.init.zeros_(layer.bias)
    layer = layer.to(device)
    with torch.no_grad():
        _train(layer, x, y, gen, epochs=epochs, batch_size=batch_size, lr=lr, beta1=beta1,
               on_epoch=on_epoch, max_steps=max_steps)
    return layer


def _train(
    layer: nn.Linear, x: Tensor, y: Tensor, gen: torch.Generator, *, epochs: int, batch_size: int,
    lr: float, beta1: float, on_epoch: Callable[[int, nn.Linear], None] | None, max_steps: int | None,
) -> None:
    """The training loop of `fit_softmax`, with the gradient written out.

    The steps are tiny (a 100-row batch, a few thousand weights), so autograd, `Optimizer.step`
    and per-step indexing cost several times the arithmetic. Here each step is two matmuls, a
    softmax, a scatter and one call of PyTorch's fused Adam kernel, on batches sliced from one
    gather per epoch. The math is the autograd loop's: d(mean NLL of log-softmax)/d(logits) is
    (softmax - onehot) / batch. tests/test_eval.py checks it against torch.optim.Adam + autograd.

    Fewer calls per step, same math: the bias is the weight's last column, against a column of
    ones appended to ``x``, so one matmul gives the logits and one gives both gradients, and
    Adam updates one tensor; Adam's ``grad_scale`` divides by the batch; an epoch's step counts
    are made at once, as views of one tensor.
    """
    n, d = x.shape
    device = x.device
    wb = torch.cat([layer.weight, layer.bias[:, None]], dim=1)  # (C, D + 1): [weight | bias]
    layer.weight.data, layer.bias.data = wb[:, :d], wb[:, d]  # views: on_epoch sees the live weights
    xs_all = torch.cat([x, torch.ones(n, 1, device=device)], dim=1)  # (N, D + 1)
    wb_t = wb.t()  # a view: stays current as wb is updated
    exp_avg, exp_avg_sq = torch.zeros_like(wb), torch.zeros_like(wb)
    bounds = [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]  # the last may be short
    total = epochs * len(bounds) if max_steps is None else min(max_steps, epochs * len(bounds))
    minus_one = torch.full((bounds[0][1], 1), -1.0, device=device)  # the onehot, subtracted by scatter
    sizes = {e - s for s, e in bounds}
    onehot = {k: minus_one[:k] for k in sizes}
    scale = {k: torch.tensor(float(k), device=device) for k in sizes}
    batches = [(s, e, onehot[e - s], scale[e - s]) for s, e in bounds]
    steps = 0
    for epoch in range(epochs):
        if steps >= total:
            break
        perm = torch.randperm(n, generator=gen).to(device)  # (N,)
        xs, ys = xs_all.index_select(0, perm), y.index_select(0, perm)[:, None]  # one gather per epoch
        # Adam's step count of each of this epoch's steps, as views of one tensor.
        counts = torch.arange(steps + 1, steps + len(batches) + 1, dtype=torch.float32, device=device).unbind()
        for (s, e, minus, batch), count in zip(batches, counts, strict=True):
            if steps >= total:
                break
            xb = xs[s:e]  # (B, D + 1)
            grad = xb.mm(wb_t).softmax(dim=1)  # (B, C)
            grad.scatter_add_(1, ys[s:e], minus)
            torch._fused_adam_(
                [wb], [grad.t().mm(xb)], [exp_avg], [exp_avg_sq], [], [count],
                lr=lr, beta1=beta1, beta2=0.999, weight_decay=0.0, eps=1e-8, amsgrad=False, maximize=False,
                grad_scale=batch,
            )
            steps += 1
        if on_epoch is not None:
            on_epoch(epoch, layer)
    # Contiguous parameters again: the trained layer is used as a frozen loss in training.
    layer.weight.data, layer.bias.data = wb[:, :d].contiguous(), wb[:, d].contiguous()


def _train_autograd(
    layer: nn.Linear, x: Tensor, y: Tensor, gen: torch.Generator, *, epochs: int, batch_size: int,
    lr: float, beta1: float, on_epoch: Callable[[int, nn.Linear], None] | None, max_steps: int | None,
) -> None:
    """`_train` as the reference code writes it: autograd, `torch.optim.Adam`, indexing per batch.

    Not used in training: it is the twin that `_train` is tested against, and the baseline that
    bench/evaluator.py patches back in to measure what the written-out loop saves.
    """
    opt = torch.optim.Adam(layer.parameters(), lr=lr, betas=(beta1, 0.999))
    n = len(x)
    steps = 0
    for epoch in range(epochs):
        if max_steps is not None and steps >= max_steps:
            break
        perm = torch.randperm(n, generator=gen).to(x.device)  # (N,)
        for start in range(0, n, batch_size):
            if max_steps is not None and steps >= max_steps:
                break
            steps += 1
            idx = perm[start : start + batch_size]
            with torch.enable_grad():
                loss = torch.nn.functional.nll_loss(torch.log_softmax(layer(x[idx]), dim=1), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if on_epoch is not None:
            on_epoch(epoch, layer)
