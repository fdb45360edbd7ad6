"""Fused trial arrays (after HFTA, Wang et al. MLSys 2021): K runs ("members") of one GAN
variant with the same network shapes train as one model whose weights carry a leading member
dimension, so one batched matmul does the work of K small ones.

Every member is the computation of its solo `Trainer` run: the same initial weights (built by
the variant under the same seeded RNG, then stacked), the same batches, noise and
gradient-penalty draws (one `torch.Generator` per member, drawn in the solo order), the same
losses (per member; their sum is back-propagated, and members share no weight so each gets its
solo gradient) and the same Adam arithmetic (per-member rates and betas). Results agree with
the solo runs to float rounding: batched and single matmuls may round differently.

Scope: the variants whose networks are the plain concat MLPs of `ConcatGAN` (fclswgan, cgan,
zswgan without ``project_att``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, fields
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .._device import resolve_device
from ..errors import ConfigError
from ..models import CommonParams, get_variant
from ..models.base import Critic, Generator, leaky_relu, mlp_wgan_gp_loss
from ._adam import _EPS
from ._trainer import (GEN_CHUNK, _rng_state, check_data_identity, check_same_run, data_identity, eval_inputs,
                       evaluate_params, lr_factor, pretrain_classifier, saved_params)

if TYPE_CHECKING:
    from ..data import Split
    from ..eval import EvalResult

__all__ = ["FusedTrainer", "can_fuse", "pack_key", "PER_MEMBER"]

# What members of one pack may differ in; every other hyperparameter decides shapes, the step
# structure, the schedule or evaluation, so it must be equal.
PER_MEMBER = ("lr_g", "lr_d", "beta1", "beta2", "cls_weight", "gp_lambda")
# The loss family of each supported variant: its losses are reimplemented batched here.
_FAMILY = {"fclswgan": "wgan_gp", "zswgan": "wgan_gp", "cgan": "bce"}


def can_fuse(variant: str, params: CommonParams) -> bool:
    """Whether a run of ``variant`` with ``params`` can be a `FusedTrainer` member."""
    return variant in _FAMILY and not getattr(params, "project_att", False)


def pack_key(variant: str, params: CommonParams) -> tuple:
    """What must be equal for two configurations to share a pack: the variant and every
    hyperparameter except the per-member ones (rates, betas, cls_weight, gp_lambda)."""
    return (variant, *((f.name, getattr(params, f.name)) for f in fields(params) if f.name not in PER_MEMBER))


class FusedTrainer:
    """K members of one variant trained as one batched model, an epoch at a time.

    Members are addressed by position ``k`` in ``0 .. len(self) - 1``; `drop` and `keep` remove
    members and shift the positions, ``ids[k]`` is the member's position at construction.

    Example:
        >>> fused = FusedTrainer(split, variant="fclswgan", params=[p1, p2, p3], seeds=[0, 1, 2])
        >>> for _ in range(p1.epochs):
        ...     losses = fused.train_epoch()  # one dict per member
        ...     metrics = [fused.evaluate(k) for k in range(len(fused))]
    """

    def __init__(
        self, split: Split, *, variant: str, params: Sequence[CommonParams], seeds: Sequence[int],
        device: str = "auto", schedule_steps: int | None = None,
        classifiers: Sequence[torch.nn.Linear | None] | None = None,
    ) -> None:
        self.variant = get_variant(variant)
        if len(params) != len(seeds) or not params:
            raise ConfigError(f"FusedTrainer needs one seed per params and at least one member, "
                              f"got {len(params)} params and {len(seeds)} seeds")
        for p in params:
            if not isinstance(p, self.variant.params_cls):
                raise ConfigError(f"params for {variant!r} must be {self.variant.params_cls.__name__}")
            if not can_fuse(variant, p):
                raise ConfigError(f"variant {variant!r} (with these params) cannot be fused; "
                                  f"supported: {', '.join(sorted(_FAMILY))} with plain concat networks")
        _check_pack(variant, params)
        self.family = _FAMILY[variant]
        self.params, self.seeds = list(params), list(seeds)
        self.ids = list(range(len(params)))
        self.split, self.device = split, resolve_device(device)
        self.data = data_identity(split)  # what `state_dict` records and `load_state_dict` checks, as Trainer's
        dev = self.device
        self.train_x, self.train_y = split.train_x.to(dev), split.train_y.to(dev)
        self.seen_att = split.att[: split.n_seen].to(dev)

        gans = [self._build_solo(p, s) for p, s in zip(self.params, self.seeds)]
        self.nz = gans[0].nz
        self.g = _stack_mlp([gan.generator for gan in gans])  # [w1, b1, w2, b2]: (K, in, out), (K, 1, out)
        self.d = _stack_mlp([gan.critic for gan in gans])
        del gans
        self.rngs = [torch.Generator(device=dev).manual_seed(s) for s in self.seeds]
        self.opt_g = _FusedAdam(self.g, [(p.beta1, p.beta2) for p in self.params])
        self.opt_d = _FusedAdam(self.d, [(p.beta1, p.beta2) for p in self.params])
        # Members with the same seed get the same classifier from the solo recipe: train it once.
        # A caller holding them already (a search's store) passes them in, one per member.
        given = list(classifiers) if classifiers is not None else [None] * len(self.params)
        if len(given) != len(self.params):
            raise ConfigError(f"classifiers: {len(given)} given for {len(self.params)} members")
        cache: dict[tuple[int, int], torch.nn.Linear] = {}
        self.classifiers = [
            (c.to(dev).eval().requires_grad_(False) if c is not None else self._classifier(s, p, cache))
            if p.cls_weight > 0 else None
            for p, s, c in zip(self.params, self.seeds, given)
        ]
        p0 = self.params[0]
        self.steps_per_epoch = math.ceil(self.train_y.shape[0] / p0.batch_size)
        self.schedule_steps = p0.epochs * self.steps_per_epoch if schedule_steps is None else schedule_steps
        if self.schedule_steps < 0:
            raise ConfigError(f"schedule_steps={schedule_steps} must be >= 0")
        self.epoch = 0
        self.step = 0  # generator steps done (the same for every member)
        self._refresh()

    def __len__(self) -> int:
        return len(self.params)

    # -- construction --------------------------------------------------------------------------
    def _build_solo(self, params: CommonParams, seed: int):  # -> ConcatGAN
        # Exactly the solo Trainer's construction, so member k starts from its solo weights.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            gan = self.variant.build(
                feat_dim=self.split.feat_dim, att_dim=self.split.att_dim, n_seen=self.split.n_seen, params=params
            ).to(self.device)
        if type(gan.generator) is not Generator or type(gan.critic) is not Critic:
            raise ConfigError(f"variant {self.variant.name!r} built networks other than the concat MLPs; cannot fuse")
        return gan

    def _classifier(self, seed: int, params: CommonParams, cache: dict) -> torch.nn.Linear:
        key = (seed, params.cls_pretrain_epochs)
        if key not in cache:  # the solo Trainer's classifier, once per (seed, length)
            cache[key] = pretrain_classifier(self.train_x, self.train_y, self.split.n_seen,
                                             epochs=params.cls_pretrain_epochs, seed=seed, device=self.device)
        return cache[key]

    def _refresh(self) -> None:
        """Per-member constant tensors, rebuilt whenever the member set changes."""
        dev = self.device
        self.gp = torch.tensor([getattr(p, "gp_lambda", 0.0) for p in self.params], device=dev)
        with_cls = [k for k, c in enumerate(self.classifiers) if c is not None]
        self.cls_idx = torch.tensor(with_cls, dtype=torch.long, device=dev)
        self.cls_weight = torch.tensor([self.params[k].cls_weight for k in with_cls], device=dev)
        # Stacked like the GAN layers: (K_cls, n_seen, D) and (K_cls, 1, n_seen).
        self.cls_w = torch.stack([self.classifiers[k].weight for k in with_cls]) if with_cls else None
        self.cls_b = torch.stack([self.classifiers[k].bias for k in with_cls]).unsqueeze(1) if with_cls else None

    # -- members -------------------------------------------------------------------------------
    def drop(self, k: int) -> None:
        """Remove the member at position ``k`` (it stops costing compute); the others train on
        exactly as before."""
        if not 0 <= k < len(self):
            raise IndexError(f"no member at position {k} (there are {len(self)})")
        self.keep([i for i in range(len(self)) if i != k])

    def keep(self, positions: Sequence[int]) -> None:
        """Keep only the members at ``positions`` (in that order)."""
        positions = list(positions)
        if len(set(positions)) != len(positions) or any(not 0 <= k < len(self) for k in positions):
            raise IndexError(f"keep: positions {positions} must be distinct and in [0, {len(self)})")
        idx = torch.tensor(positions, dtype=torch.long, device=self.device)
        self.g = [t.detach().index_select(0, idx).requires_grad_(True) for t in self.g]
        self.d = [t.detach().index_select(0, idx).requires_grad_(True) for t in self.d]
        self.opt_g.keep(self.g, idx, positions)
        self.opt_d.keep(self.d, idx, positions)
        for name in ("params", "seeds", "ids", "rngs", "classifiers"):
            setattr(self, name, [getattr(self, name)[k] for k in positions])
        self._refresh()

    # -- training ------------------------------------------------------------------------------
    def _batch(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(real (K, B, D), y (K, B), a (K, B, A), z (K, B, nz)): each member's solo draws, in
        the solo order (randperm for the batch, then randn for the noise)."""
        n, bs, dev = self.train_y.shape[0], self.params[0].batch_size, self.device
        idx, z = [], []
        for rng in self.rngs:
            i = torch.randperm(n, generator=rng, device=dev)[:bs]
            idx.append(i)
            z.append(torch.randn(i.shape[0], self.nz, generator=rng, device=dev))
        idx_t = torch.stack(idx)
        y = self.train_y[idx_t]
        return self.train_x[idx_t], y, self.seen_att[y], torch.stack(z)

    def _critic_loss(self, real: Tensor, fake: Tensor, a: Tensor) -> Tensor:
        """(K,) per-member critic losses, the solo formulas batched."""
        if self.family == "bce":
            return _bce(_critic(self.d, real, a), 1.0) + _bce(_critic(self.d, fake, a), 0.0)
        # wgan_gp_critic_loss: alpha is drawn from each member's rng after its batch and noise.
        b = real.shape[1]
        alpha = torch.stack([torch.rand(b, 1, generator=rng, device=rng.device) for rng in self.rngs]).to(real.device)
        return mlp_wgan_gp_loss(*self.d, real, fake, a, alpha, gp_lambda=self.gp)  # stacked, as solo

    def _generator_loss(self, fake: Tensor, y: Tensor, a: Tensor) -> Tensor:
        score = _critic(self.d, fake, a)
        loss = _bce(score, 1.0) if self.family == "bce" else -score.mean(dim=(1, 2))
        if self.cls_w is None:
            return loss
        # Only members with a classifier pay for it (a solo run with cls_weight 0 has none).
        f, yk = fake.index_select(0, self.cls_idx), y.index_select(0, self.cls_idx)
        logits = torch.baddbmm(self.cls_b, f, self.cls_w.transpose(1, 2))
        ce = F.cross_entropy(logits.flatten(0, 1), yk.flatten(), reduction="none").view(yk.shape).mean(dim=1)
        return loss.index_add(0, self.cls_idx, self.cls_weight * ce)

    def train_epoch(self, max_steps: int | None = None) -> list[dict[str, float]]:
        """One pass for every member, as `Trainer.train_epoch`: one dict of losses per member."""
        if not self.params:
            return []
        n_critic = self.params[0].n_critic
        steps = self.steps_per_epoch if max_steps is None else max(0, min(max_steps, self.steps_per_epoch))
        # Float64 sums of float32 losses: the solo loop's Python-float sums, without a sync per step.
        d_total = torch.zeros(len(self), dtype=torch.float64, device=self.device)
        g_total = torch.zeros_like(d_total)
        for _ in range(steps):
            factor = lr_factor(self.params[0].lr_decay, self.step, self.schedule_steps)
            for _ in range(n_critic):
                real, _, a, z = self._batch()
                with torch.no_grad():
                    fake = _generator(self.g, z, a)
                d_loss = self._critic_loss(real, fake, a)
                grads = torch.autograd.grad(d_loss.sum(), self.d)
                self.opt_d.step(grads, [p.lr_d * factor for p in self.params])
                d_total += d_loss.detach().double()
            real, y, a, z = self._batch()
            fake = _generator(self.g, z, a)
            g_loss = self._generator_loss(fake, y, a)
            grads = torch.autograd.grad(g_loss.sum(), self.g)  # no critic weight gradients are computed
            self.opt_g.step(grads, [p.lr_g * factor for p in self.params])
            g_total += g_loss.detach().double()
            self.step += 1
        self.epoch += 1
        d_mean = (d_total / max(steps * n_critic, 1)).tolist()
        g_mean = (g_total / max(steps, 1)).tolist()
        out = []
        for d, g in zip(d_mean, g_mean):
            row = {"step": self.step, "loss_d": d, "loss_g": g}
            if not (math.isfinite(d) and math.isfinite(g)):
                row["diverged"] = 1.0
            out.append(row)
        return out

    # -- evaluation ----------------------------------------------------------------------------
    @torch.no_grad()
    def member_generate(self, k: int, att: Tensor, n: int) -> Tensor:
        """Member ``k``'s `Trainer.generate`: same noise seed, same single-member matmuls."""
        dev = self.device
        z, a = eval_inputs(att, n, nz=self.nz, seed=self.seeds[k], epoch=self.epoch, device=dev)
        # nn.Linear's own layout and call, so the features are the solo run's bit for bit.
        w1, w2 = (w[k].t().contiguous() for w in self.g[0::2])
        b1, b2 = (b[k, 0] for b in self.g[1::2])
        out = []
        for i in range(0, a.shape[0], GEN_CHUNK):
            h = F.leaky_relu(F.linear(torch.cat([z[i : i + GEN_CHUNK], a[i : i + GEN_CHUNK]], dim=1), w1, b1), 0.2)
            out.append(F.relu(F.linear(h, w2, b2)))
        return torch.cat(out)

    def member_state(self, k: int) -> dict[str, Tensor]:
        """Member ``k``'s networks as the solo GAN's ``state_dict()`` (a copy): loadable into
        ``Trainer.gan`` of the same variant and params, e.g. to checkpoint or finalize it alone."""
        out = {}
        for prefix, stack in (("generator", self.g), ("critic", self.d)):
            for layer, (w, b) in zip((0, 2), (stack[:2], stack[2:])):
                out[f"{prefix}.net.{layer}.weight"] = w[k].detach().t().contiguous()
                out[f"{prefix}.net.{layer}.bias"] = b[k, 0].detach().clone()
        return out

    # -- checkpoints ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything training depends on, for the members still in the pack (CPU tensors)."""
        return {
            "variant": self.variant.name, "params": [asdict(p) for p in self.params], "seeds": list(self.seeds),
            "data": self.data, "ids": list(self.ids), "epoch": self.epoch, "step": self.step,
            "schedule_steps": self.schedule_steps,
            "g": [t.detach().cpu() for t in self.g], "d": [t.detach().cpu() for t in self.d],
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "rngs": [bytes(r.get_state().numpy()) for r in self.rngs],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state_dict`: this pack must have been built like the one that wrote it
        (members it had dropped by then are dropped here too), on the same data."""
        check_data_identity(state.get("data"), self.data)
        if state["variant"] != self.variant.name or state["schedule_steps"] != self.schedule_steps:
            raise ConfigError("checkpoint was written by another variant or schedule; start a new run")
        if not set(state["ids"]) <= set(self.ids):
            raise ConfigError(f"checkpoint members {state['ids']} are not among this pack's {self.ids}")
        self.keep([self.ids.index(i) for i in state["ids"]])
        check_same_run(_by_member(state["seeds"], [saved_params(p, q) for p, q in zip(self.params, state["params"])]),
                       _by_member(self.seeds, [asdict(p) for p in self.params]))
        with torch.no_grad():
            for mine, saved in zip([*self.g, *self.d], [*state["g"], *state["d"]], strict=True):
                mine.copy_(saved)
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        for rng, saved in zip(self.rngs, state["rngs"], strict=True):
            rng.set_state(_rng_state(saved))
        self.epoch, self.step = state["epoch"], state["step"]

    def evaluate(self, k: int, *, select_epoch: bool = True, cls_epochs: int | None = None,
                 cls_steps: int | None = None, extras_above: float | None = None) -> EvalResult:
        """Member ``k``'s `Trainer.evaluate` (one member at a time: the final classifiers are
        the cost, and they are not fused)."""
        return evaluate_params(self.split, lambda att, n: self.member_generate(k, att, n), self.params[k],
                               seed=self.seeds[k], device=self.device, select_epoch=select_epoch,
                               cls_epochs=cls_epochs, cls_steps=cls_steps, extras_above=extras_above)


def _by_member(seeds: Sequence[int], params: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A pack's settings flat, member by member, for `check_same_run` to name the ones that differ."""
    flat: dict[str, Any] = {}
    for j, (seed, values) in enumerate(zip(seeds, params, strict=False)):
        flat.update({f"member {j} seed": seed, **{f"member {j} {k}": v for k, v in values.items()}})
    return flat


def _check_pack(variant: str, params: Sequence[CommonParams]) -> None:
    first = pack_key(variant, params[0])
    for i, p in enumerate(params[1:], start=1):
        for (name, want), (_, got) in zip(first[1:], pack_key(variant, p)[1:]):
            if want != got:
                raise ConfigError(f"fused members must share {name!r}: member 0 has {want!r}, member {i} has {got!r}")


def _stack_mlp(nets: list[torch.nn.Module]) -> list[Tensor]:
    """The two Linear layers of each concat MLP, stacked over members: [w1, b1, w2, b2].

    Weights are stored (K, in, out), transposed from nn.Linear's (out, in): bmm then returns
    their gradients contiguous, where the (K, out, in) layout would hand every gradient sum and
    Adam update a strided tensor (several times slower on the CPU at AWA2 sizes)."""
    out = []
    for layer in (0, 2):
        out.append(torch.stack([net.net[layer].weight.detach().t() for net in nets]).requires_grad_(True))
        out.append(torch.stack([net.net[layer].bias.detach() for net in nets]).unsqueeze(1).requires_grad_(True))
    return out


def _mlp(x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor) -> Tensor:
    return torch.baddbmm(b2, leaky_relu(torch.baddbmm(b1, x, w1), 0.2), w2)


def _generator(g: list[Tensor], z: Tensor, a: Tensor) -> Tensor:
    return F.relu(_mlp(torch.cat([z, a], dim=2), *g))


def _critic(d: list[Tensor], x: Tensor, a: Tensor) -> Tensor:
    return _mlp(torch.cat([x, a], dim=2), *d)


def _bce(logit: Tensor, target: float) -> Tensor:
    """Per-member `bce_loss`: (K, B, 1) logits -> (K,)."""
    return F.binary_cross_entropy_with_logits(logit, torch.full_like(logit, target), reduction="none").mean(dim=(1, 2))


class _FusedAdam:
    """Adam over stacked tensors: each member's slices are updated by PyTorch's fused Adam kernel
    (the one its solo `Trainer` steps with) at that member's own rate and betas, so member k's
    update is its solo optimiser's, element for element. Members always step together, so one
    step count serves them all (a solo optimiser keeps one per tensor, all equal)."""

    def __init__(self, params: list[Tensor], betas: list[tuple[float, float]]) -> None:
        self.params, self.betas = params, list(betas)
        self.exp_avg = [torch.zeros_like(p) for p in params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in params]
        self.count = torch.zeros((), device=params[0].device)

    def state_dict(self) -> dict[str, Any]:
        return {"exp_avg": [t.cpu() for t in self.exp_avg], "exp_avg_sq": [t.cpu() for t in self.exp_avg_sq],
                "count": float(self.count)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved_moments = [*state["exp_avg"], *state["exp_avg_sq"]]
        for mine, saved in zip([*self.exp_avg, *self.exp_avg_sq], saved_moments, strict=True):
            mine.copy_(saved)
        # Checkpoints from before the shared count hold one per member and tensor, all equal.
        self.count.fill_(state["count"] if "count" in state else state["counts"][0][0])

    def keep(self, params: list[Tensor], idx: Tensor, positions: list[int]) -> None:
        self.params = params
        self.exp_avg = [t.index_select(0, idx) for t in self.exp_avg]
        self.exp_avg_sq = [t.index_select(0, idx) for t in self.exp_avg_sq]
        self.betas = [self.betas[k] for k in positions]

    @torch.no_grad()
    def step(self, grads: Sequence[Tensor], lrs: list[float]) -> None:
        self.count.add_(1)
        counts = [self.count] * len(self.params)
        for k, (lr, (b1, b2)) in enumerate(zip(lrs, self.betas)):
            torch._fused_adam_([p[k] for p in self.params], [g[k] for g in grads], [m[k] for m in self.exp_avg],
                               [v[k] for v in self.exp_avg_sq], [], counts, lr=lr, beta1=b1, beta2=b2,
                               weight_decay=0.0, eps=_EPS, amsgrad=False, maximize=False)
