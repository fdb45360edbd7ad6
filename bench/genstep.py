"""How close does one generator step come to the machine's GEMM rate?

A generator step is ``n_critic`` critic steps (each: a generator forward, critic forwards, the
gradient penalty's double backward, an Adam update of the critic) and one generator step
(forward, backward, Adam). This benchmark runs it at real-set shapes with the project's
`Trainer`, on random tensors of those shapes (the rate depends on the shapes only), twice in
the same run:

- baseline: the textbook step the code took before (``F.leaky_relu`` in the critic, three
  critic calls per WGAN-GP loss, PyTorch's CPU-default single-tensor Adam), patched back in;
- current: the project's step (a leaky ReLU whose zero second derivative costs nothing, fake
  and real rows in one critic call, fused Adam);
- then, on Linux, the current step again after `zsl_search._memory.reuse_freed_memory`, as a
  trial worker runs it: glibc no longer maps and unmaps every tensor over 32 MiB (the largest
  gradients at real-set shapes) each step. It must give the same losses, bit for bit.

For each: seconds per generator step (median of ``--steps`` after a warm-up step), FLOPs per
step (torch.profiler's per-op estimates), the achieved rate of the step's necessary FLOPs (the
current count; the baseline's extra ones are a zero second derivative) divided by a large
GEMM's rate on the same threads (goal >= 60%), the top operators by self time, and the
largest relative difference between the two runs' losses (same seed: the same math).

    python -m bench.genstep [--shapes awa2|cub|demo] [--steps 5] [--threads 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time

# (variant, feature dim, attribute dim, seen classes, hyperparameters): the table.
SHAPES = {
    "awa2": ("fclswgan", 2048, 85, 40, {"hidden": 4096}),
    "cub": ("filmwgan", 2048, 312, 150, {"hidden": 4400}),
    "demo": ("fclswgan", 128, 32, 20, {"hidden": 512}),
}


def random_split(feat: int, att: int, n_seen: int, n: int = 2000, seed: int = 0, dataset: str = "bench"):
    """Random tensors shaped like a dataset's training split (10 unseen classes besides):
    training throughput depends on the shapes only."""
    import torch

    from zsl_search.data import Split

    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, n_seen, (n,), generator=gen)
    x = torch.rand(n, feat, generator=gen)
    empty = torch.empty(0, dtype=torch.long)
    return Split(dataset=dataset, protocol="synthetic", train_x=x, train_y=y, seen_x=x[:0], seen_y=empty,
                 unseen_x=x[:0], unseen_y=empty, att=torch.rand(n_seen + 10, att, generator=gen),
                 seen_classes=torch.arange(n_seen), unseen_classes=torch.arange(n_seen, n_seen + 10))


def _gemm_rate(device: str, n: int = 2048, k: int = 4096, reps: int = 3) -> float:
    """FLOP/s of the best of ``reps`` (n x k) @ (k x n) float32 matmuls."""
    import torch

    a, b = torch.rand(n, k, device=device), torch.rand(k, n, device=device)
    best = float("inf")
    for _ in range(reps + 1):  # the first is a warm-up
        _sync(device)
        t0 = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n * k * n / best


def _sync(device: str) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def _textbook_critic_loss(critic, real, fake, a, *, gp_lambda, rng):
    """The WGAN-GP critic loss as written before: three critic calls."""
    import torch

    alpha = torch.rand(real.shape[0], 1, generator=rng, device=rng.device).to(real.device)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat, a).sum(), x_hat, create_graph=True)
    penalty = ((grad.norm(2, dim=1) - 1) ** 2).mean()
    return critic(fake, a).mean() - critic(real, a).mean() + gp_lambda * penalty


@contextlib.contextmanager
def _textbook():
    """Patch the textbook step back in: autograd's own leaky ReLU and three critic calls."""
    import torch.nn.functional as F

    from zsl_search.models import _nets, base, filmwgan

    saved = _nets.leaky_relu, filmwgan.leaky_relu, base.wgan_gp_critic_loss
    _nets.leaky_relu = filmwgan.leaky_relu = F.leaky_relu
    base.wgan_gp_critic_loss = _textbook_critic_loss
    try:
        yield
    finally:
        _nets.leaky_relu, filmwgan.leaky_relu, base.wgan_gp_critic_loss = saved


def _run(split, variant: str, params, *, baseline: bool, steps: int, device: str):
    """(seconds per step, losses per step, FLOPs of one step, top operators) of one Trainer."""
    with _textbook() if baseline else contextlib.nullcontext():
        return _timed_run(split, variant, params, optimizer="single" if baseline else "fused", steps=steps,
                          device=device)


def _timed_run(split, variant: str, params, *, optimizer: str, steps: int, device: str):
    import torch
    from torch.profiler import ProfilerActivity, profile

    from zsl_search.train import Trainer

    trainer = Trainer(split, variant=variant, params=params, seed=0, device=device, optimizer=optimizer)
    losses, times = [trainer.train_epoch(max_steps=1)], []  # warm-up: allocator, BLAS setup
    for _ in range(steps):
        _sync(device)
        t0 = time.perf_counter()
        losses.append(trainer.train_epoch(max_steps=1))
        _sync(device)
        times.append(time.perf_counter() - t0)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if str(device).startswith("cuda") else [])
    with profile(activities=activities, with_flops=True) as prof:
        trainer.train_epoch(max_steps=1)
    events = prof.key_averages()
    flops = sum(e.flops for e in events)
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:8]
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    table = [(e.key, e.self_cpu_time_total / total) for e in top]
    del trainer
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return statistics.median(times), losses, flops, table


def main(argv: list[str] | None = None) -> int:
    import torch

    from zsl_search._memory import reuse_freed_memory
    from zsl_search.models import get_variant

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", choices=sorted(SHAPES), default="awa2")
    parser.add_argument("--steps", type=int, default=5, help="generator steps timed per run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    variant, feat, att, n_seen, extra = SHAPES[args.shapes]
    split = random_split(feat, att, n_seen)
    params = get_variant(variant).make_params({"batch_size": 64, "cls_pretrain_epochs": 1, "epochs": 1, **extra})
    load = os.getloadavg()[0]
    gemm = _gemm_rate(args.device)
    current, kept = "current, glibc's own malloc", "current, freed memory kept (trials)"
    runs = {name: _run(split, variant, params, baseline=baseline, steps=args.steps, device=args.device)
            for name, baseline in (("baseline (textbook step)", True), (current, False))}
    # Last: it changes malloc for the rest of the process (what a trial worker does at its start).
    if reuse_freed_memory():
        runs[kept] = _run(split, variant, params, baseline=False, steps=args.steps, device=args.device)
    gemm = max(gemm, _gemm_rate(args.device))  # before and after: the better of the two
    load = max(load, os.getloadavg()[0])

    print(f"{args.shapes} shapes: {variant}, D={feat} A={att} hidden={params.hidden} batch={params.batch_size} "
          f"n_critic={params.n_critic}; threads={args.threads}, device={args.device}, load average up to {load:.1f}")
    print(f"large GEMM (2048x4096 @ 4096x2048): {gemm / 1e9:.1f} GFLOP/s")
    needed = runs[current][2]
    for name, (sec, _, flops, table) in runs.items():
        print(f"{name}: {sec:.3f} s per generator step, {flops / 1e9:.1f} GFLOP counted; the {needed / 1e9:.1f} "
              f"needed at {needed / sec / 1e9:.1f} GFLOP/s = {needed / sec / gemm:.1%} of GEMM")
        print("  self CPU time: " + ", ".join(f"{k} {share:.0%}" for k, share in table))
    (base_s, base_losses, *_), *_, (new_s, new_losses, *_) = runs.values()
    worst = max(abs(a[k] - b[k]) / max(abs(a[k]), 1e-12)
                for a, b in zip(base_losses, new_losses) for k in ("loss_d", "loss_g"))
    print(f"{list(runs)[-1]} / baseline speed: {base_s / new_s:.2f}x; largest relative loss difference over "
          f"{len(new_losses)} steps: {worst:.1e}")
    if kept in runs:
        same = runs[current][1] == new_losses
        print(f"freed memory kept vs glibc's own malloc: losses {'identical' if same else 'DIFFER'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
