"""Throughput of fused trial arrays: K members of one variant trained as one `FusedTrainer`
against the same K runs as solo `Trainer`s one after another, same threads, same params.

Training only, after one untimed warm-up step each. Construction, classifier pretraining and
evaluation are not timed: evaluation is per member and unfused (`FusedTrainer.evaluate(k)`
trains the same final classifiers as `Trainer.evaluate`), so it costs what a solo run's does.
Prints member-epochs (or member-steps) per second of both, their ratio, and the largest
difference between a member's losses and its solo run's.

On the CPU with more than one thread it also times the K solo runs the way a search runs solo
trials: ``--threads`` worker processes at once, one thread each, after the interleaved rounds.
That, not the solo runs one after another on all threads, is what a pack replaces in a search.

Last, a ceiling: the pack's FLOPs per generator step (torch.profiler's estimates) over the rate
its largest matmul reaches here, as member-epochs (-steps) per second and as a multiple of the
solo rate: what fusion could give at most on this device if the step were nothing but matmuls.

    python -m bench.fused [--k 8] [--epochs 1] [--threads 2] [--device cpu]
    python -m bench.fused --awa2 [--k 4] [--steps 3]   # AWA2-sized random tensors
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time


def _split(awa2: bool):
    from zsl_search import settings
    from zsl_search.store import DataSource, load_split

    from .genstep import random_split

    if awa2:
        return random_split(2048, 85, 40, n=6000, dataset="AWA2")  # AWA2's shapes
    return load_split(DataSource(path="demo"), cache_dir=settings.cache_dir())


def _solo_share(job: tuple) -> tuple[float, int]:
    """One process of the parallel baseline: its share of the K solo runs, one thread, one after
    another, after one untimed step each. Returns (seconds, member-epochs or -steps done)."""
    import torch

    from zsl_search._memory import reuse_freed_memory
    from zsl_search.train import Trainer

    variant, awa2, k, shared, mine, rounds, max_steps = job
    torch.set_num_threads(1)
    reuse_freed_memory()  # as a trial worker does
    split, params = _split(awa2), _members(variant, k, shared)
    solos = [Trainer(split, variant=variant, params=params[i], seed=i) for i in mine]
    for solo in solos:
        solo.train_epoch(max_steps=1)
    start = time.perf_counter()
    for _ in range(rounds):
        for solo in solos:
            solo.train_epoch(max_steps=max_steps)
    return time.perf_counter() - start, len(solos) * rounds


def _parallel_solo(variant: str, awa2: bool, k: int, shared: dict, processes: int, rounds: int,
                   max_steps: int | None) -> float:
    """Member-epochs (or -steps) per second of the K solo runs as a search runs solo trials on
    ``processes`` cores: that many worker processes at once, one thread each."""
    import multiprocessing

    jobs = [(variant, awa2, k, shared, list(range(p, k, processes)), rounds, max_steps) for p in range(processes)]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        done = pool.map(_solo_share, jobs)
    return sum(n for _, n in done) / max(seconds for seconds, _ in done)


def _members(variant: str, k: int, shared: dict, seed: int = 0) -> list:
    """K configurations that differ in everything a pack member may differ in."""
    from zsl_search.models import get_variant

    v, rnd = get_variant(variant), random.Random(seed)
    out = []
    for _ in range(k):
        per = {"lr_g": 10 ** rnd.uniform(-4, -3), "lr_d": 10 ** rnd.uniform(-4, -3),
               "beta1": rnd.choice([0.0, 0.5, 0.9]), "cls_weight": 10 ** rnd.uniform(-3, 0)}
        if "gp_lambda" in v.param_names():
            per["gp_lambda"] = 10 ** rnd.uniform(0, 1.3)
        out.append(v.make_params({**shared, **per}))
    return out


# Profiler events that launch no kernel on a GPU: views, metadata, allocation.
_NO_KERNEL = {"aten::view", "aten::t", "aten::transpose", "aten::as_strided", "aten::empty", "aten::empty_strided",
              "aten::expand", "aten::slice", "aten::select", "aten::unsqueeze", "aten::squeeze", "aten::reshape",
              "aten::_reshape_alias", "aten::detach", "aten::detach_", "aten::alias", "aten::lift_fresh",
              "aten::resize_", "aten::permute", "aten::numpy_T", "aten::_unsafe_view", "aten::unbind",
              "aten::split", "aten::narrow", "aten::flatten", "aten::expand_as", "aten::empty_like",
              "aten::result_type", "aten::is_nonzero", "aten::item", "aten::_local_scalar_dense", "aten::to",
              "aten::_to_copy", "aten::view_as", "aten::requires_grad_", "aten::set_", "aten::size", "aten::stride"}


def _kernels(step) -> int:
    """Operators of ``step()`` that would each launch a kernel on a GPU: leaf aten ops that are
    not views, metadata or allocation (a CPU profile's count; close to a CUDA trace's)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    return sum(1 for e in prof.events()
               if e.name.startswith("aten::") and not e.cpu_children and e.name not in _NO_KERNEL)


def _matmul_ceiling(fused, step, *, rows: int) -> tuple[float, float]:
    """(FLOPs of one pack generator step, torch.profiler's estimates; FLOP/s of the pack's
    largest matmul, a (K, rows, in) @ (K, in, hidden) bmm, best of 20 on this process's threads):
    a pack step can take no less than the first divided by the second, even if all of it ran
    at that matmul's rate and nothing else (Adam, elementwise ops, Python) cost anything."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from .genstep import _sync

    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        step()
    flops = sum(e.flops for e in prof.key_averages())
    w1 = fused.d[0]  # (K, in, hidden): the critic's first layer
    x = torch.rand(w1.shape[0], rows, w1.shape[1], device=w1.device)
    w = torch.rand(w1.shape, device=w1.device)
    best = float("inf")
    for _ in range(20):
        _sync(str(w.device))
        t0 = time.perf_counter()
        torch.bmm(x, w)
        _sync(str(w.device))
        best = min(best, time.perf_counter() - t0)
    return flops, 2 * x.shape[0] * rows * w.shape[1] * w.shape[2] / best


def main(argv: list[str] | None = None) -> int:
    import torch

    from zsl_search._memory import reuse_freed_memory
    from zsl_search.train import FusedTrainer, Trainer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="fclswgan", choices=["fclswgan", "cgan", "zswgan"])
    parser.add_argument("--k", type=int, default=None, help="members (default 8; 4 with --awa2)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs timed (demo shapes)")
    parser.add_argument("--steps", type=int, default=3, help="generator steps timed (--awa2)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads for both runs")
    parser.add_argument("--hidden", type=int, default=None, help="default 512 (demo) / 4096 (--awa2)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--n-critic", type=int, default=None, help="default: the variant's")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, auto")
    parser.add_argument("--awa2", action="store_true", help="AWA2-sized random tensors instead of the demo split")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    reuse_freed_memory()  # both sides run as a trial worker runs them
    k = args.k or (4 if args.awa2 else 8)
    split = _split(args.awa2)
    unit, hidden = ("member-steps", args.hidden or 4096) if args.awa2 else ("member-epochs", args.hidden or 512)
    shared = {"hidden": hidden, "batch_size": args.batch_size, "epochs": args.epochs, "cls_pretrain_epochs": 2}
    if args.n_critic is not None:
        shared["n_critic"] = args.n_critic
    params, seeds = _members(args.variant, k, shared), list(range(k))
    # --awa2 times single generator steps (train_epoch(max_steps=1)), the demo whole epochs.
    rounds, max_steps = (args.steps, 1) if args.awa2 else (args.epochs, None)

    Trainer(split, variant=args.variant, params=params[0], seed=0, device=args.device)  # first-call costs, untimed
    t0 = time.perf_counter()
    fused = FusedTrainer(split, variant=args.variant, params=params, seeds=seeds, device=args.device)
    build_fused = time.perf_counter() - t0
    t0 = time.perf_counter()
    solos = [Trainer(split, variant=args.variant, params=p, seed=s, device=args.device) for p, s in zip(params, seeds)]
    build_solo = time.perf_counter() - t0

    def timed(fn):  # CUDA runs asynchronously: time finished work only
        if fused.device.type == "cuda":
            torch.cuda.synchronize(fused.device)
        t0 = time.perf_counter()
        out = fn()
        if fused.device.type == "cuda":
            torch.cuda.synchronize(fused.device)
        return out, time.perf_counter() - t0

    # One untimed generator step each: first-call costs (allocator, BLAS setup) are not the rate.
    fused.train_epoch(max_steps=1)
    for solo in solos:
        solo.train_epoch(max_steps=1)
    # Rounds interleave the two sides so that load from elsewhere on the machine hits both alike.
    t_fused = t_solo = worst = 0.0
    ratios = []  # per round: on a shared machine the spread says how far one ratio can be trusted
    load = os.getloadavg()[0]
    for _ in range(rounds):
        fused_rows, dt_fused = timed(lambda: fused.train_epoch(max_steps=max_steps))
        t_fused += dt_fused
        dt_solos = 0.0
        for solo, mine in zip(solos, fused_rows):
            theirs, dt = timed(lambda: solo.train_epoch(max_steps=max_steps))  # noqa: B023 - called at once
            dt_solos += dt
            for key in ("loss_d", "loss_g"):
                worst = max(worst, abs(mine[key] - theirs[key]) / max(abs(theirs[key]), 1e-12))
        t_solo += dt_solos
        ratios.append(dt_solos / dt_fused)
    load = max(load, os.getloadavg()[0])

    work = k * rounds
    data = "AWA2-sized random" if args.awa2 else "demo"
    shape = f"{data}: D={split.feat_dim} A={split.att_dim} N={len(split.train_y)}"
    print(f"{args.variant}, K={k}, {shape}, hidden={hidden}, batch={args.batch_size}, n_critic={params[0].n_critic}, "
          f"threads={args.threads}, device={fused.device}, load average up to {load:.1f}")
    print(f"fused: {work / t_fused:8.3f} {unit}/s ({t_fused:.2f} s; construction {build_fused:.2f} s)")
    print(f"solo:  {work / t_solo:8.3f} {unit}/s ({t_solo:.2f} s; construction {build_solo:.2f} s)")
    print(f"fused / solo throughput: {t_solo / t_fused:.2f}x (per round: median {statistics.median(ratios):.2f}x, "
          f"{min(ratios):.2f}x-{max(ratios):.2f}x over {len(ratios)})")
    print(f"largest relative loss difference, member vs its solo run: {worst:.2e}")
    if args.threads > 1 and fused.device.type == "cpu":
        # A search does not run solo trials one after another on all cores: it runs one per
        # core, one thread each (resources.cpu: 1), which the sequential solo side above is not.
        rate = _parallel_solo(args.variant, args.awa2, k, shared, args.threads, rounds, max_steps)
        print(f"solo, {args.threads} at once, 1 thread each (as a search runs solo trials): {rate:8.3f} {unit}/s; "
              f"fused / that: {work / t_fused / rate:.2f}x")
    else:
        rate = work / t_solo
    # What fusion could give at most on this device: the pack's step as nothing but matmuls at
    # the rate its largest one reaches here (the critic's forward over fake, real and x_hat rows).
    flops, mm_rate = _matmul_ceiling(fused, lambda: fused.train_epoch(max_steps=1), rows=3 * args.batch_size)
    ceiling = k / (flops / mm_rate) / (1 if args.awa2 else fused.steps_per_epoch)
    print(f"ceiling: {flops / 1e9:.2f} GFLOP per pack generator step; at its largest matmul's {mm_rate / 1e9:.0f} "
          f"GFLOP/s here (a ({k}, {3 * args.batch_size}, {fused.d[0].shape[1]}) @ ({k}, {fused.d[0].shape[1]}, "
          f"{hidden}) bmm) and nothing else, a pack would do {ceiling:8.3f} {unit}/s = {ceiling / rate:.2f}x the "
          f"solo rate above; it does {work / t_fused / ceiling:.0%} of that")
    print("evaluation (untimed) is per member and unfused: FusedTrainer.evaluate(k) costs a solo evaluate")
    # On a GPU these shapes leave the device idle: a step costs its kernel launches (~5-10 us
    # each) more than its FLOPs, so K solo runs pay K times a solo step's launches, a pack once.
    solo_k = _kernels(lambda: solos[0].train_epoch(max_steps=1))
    fused_k = _kernels(lambda: fused.train_epoch(max_steps=1))
    print(f"GPU kernels per generator step: solo {solo_k}, fused K={k} {fused_k}; where launches bound the step, "
          f"K solo runs cost {k * solo_k / fused_k:.1f}x the launches of one pack (the most fusion can give there)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
