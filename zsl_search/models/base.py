"""What a GAN variant is built from: the contract (`GAN`, `Batch`, `CommonParams`), the shared
networks and losses, two ready GANs to subclass (`ConcatGAN`, `WGANGP`), the shared search
spaces and the shared small-data defaults, and the registry entry points (`Variant`,
`register`, the distributions). A variant module imports from here and nowhere else.

Example, a complete variant (one file in ``zsl_search/models/``, or a plugin module)::

    @dataclass(frozen=True)
    class Params(CommonParams):
        n_critic: int = 1

    class HingeGAN(ConcatGAN):
        def critic_loss(self, batch, fake):
            return (F.relu(1 - self.critic(batch.real, batch.a)).mean()
                    + F.relu(1 + self.critic(fake, batch.a)).mean())

        def generator_loss(self, batch, fake):
            return -self.critic(fake, batch.a).mean()

    register(Variant(name="hinge", description="...", params_cls=Params, build=HingeGAN,
                     dataset_defaults=merge_defaults(SMALL_DATA_RATES, SMALL_DATA_SIZES),
                     space=extend_space(COMMON_SPACE, {"n_critic": Int(1, 3)}, after="cls_weight")))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ._nets import (
    Critic, FiLM, Generator, LeakyReLU, bce_loss, init_normal, leaky_relu, lsgan_loss, mlp_wgan_gp_loss,
    wgan_gp_critic_loss,
)
from ._registry import Variant, register
from ._space import Categorical, Distribution, Float, Int

__all__ = [
    # the contract
    "CommonParams", "check", "Batch", "GAN",
    # ready GANs to subclass
    "ConcatGAN", "WGANParams", "WGANGP",
    # networks and losses
    "Generator", "Critic", "FiLM", "LeakyReLU", "leaky_relu", "init_normal", "wgan_gp_critic_loss", "lsgan_loss",
    "bce_loss", "mlp_wgan_gp_loss",
    # search spaces and defaults
    "COMMON_SPACE", "WGAN_SPACE", "extend_space", "SMALL_DATA_SIZES", "SMALL_DATA_RATES", "THESIS_DEFAULTS",
    "merge_defaults",
    # registering
    "Variant", "register", "Float", "Int", "Categorical", "Distribution",
]


def check(name: str, ok: bool, rule: str) -> None:
    """Validate one hyperparameter in a params class's ``__post_init__``.

    Raises:
        ConfigError: ``ok`` is false; the message names ``name`` and the ``rule`` it breaks
            (e.g. ``check("film_depth", 1 <= d <= 4, "between 1 and 4")``).
    """
    if not ok:
        raise ConfigError(f"hyperparameter {name!r} must be {rule}")


@dataclass(frozen=True)
class CommonParams:
    """Hyperparameters every variant has. Defaults are the f-CLSWGAN reference values for a
    dataset without per-dataset settings; variants override them by subclassing."""

    epochs: int = 30
    batch_size: int = 64
    lr_g: float = 1e-4  # TTUR: the generator and critic get separate rates and betas
    lr_d: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lr_decay: str = "none"  # "linear": decay both rates linearly to 0 over the second half
    n_critic: int = 5
    cls_weight: float = 0.01  # weight of the frozen seen-class classifier's NLL in the G loss
    syn_num: int = 300  # synthetic features per unseen class for the final classifier
    nz: int = 0  # noise dim; 0 means "the attribute dimension", as in f-CLSWGAN
    hidden: int = 4096
    cls_pretrain_epochs: int = 50  # frozen classifier for the cls loss
    cls_epochs: int = 25  # final GZSL softmax classifier
    cls_batch: int = 0  # its batch; 0: syn_num, as the reference protocol

    def __post_init__(self) -> None:
        for name in ("epochs", "n_critic", "cls_epochs", "cls_pretrain_epochs"):
            check(name, getattr(self, name) >= 0, ">= 0")
        for name in ("batch_size", "syn_num", "hidden"):
            check(name, getattr(self, name) >= 1, ">= 1")
        for name in ("lr_g", "lr_d"):
            check(name, getattr(self, name) > 0, "> 0")
        for name in ("beta1", "beta2"):
            check(name, 0 <= getattr(self, name) < 1, "in [0, 1)")
        check("cls_weight", self.cls_weight >= 0, ">= 0")
        check("nz", self.nz >= 0, ">= 0 (0 = attribute dimension)")
        check("cls_batch", self.cls_batch >= 0, ">= 0 (0 = syn_num)")
        check("lr_decay", self.lr_decay in ("none", "linear"), "one of none, linear")


@dataclass(frozen=True)
class WGANParams(CommonParams):
    """`CommonParams` plus the weight of the WGAN-GP gradient penalty."""

    gp_lambda: float = 10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check("gp_lambda", self.gp_lambda >= 0, ">= 0")


@dataclass
class Batch:
    """What a variant's losses see for one step. ``att`` is the seen-class attribute table."""

    real: torch.Tensor  # (B, D)
    y: torch.Tensor  # (B,) local seen labels
    a: torch.Tensor  # (B, A) attributes of y
    att: torch.Tensor  # (n_seen, A)
    rng: torch.Generator
    progress: float  # fraction of training done, in [0, 1]


class GAN(nn.Module):
    """Base class of a variant's networks and losses; the shared loop (`zsl_search.train.Trainer`)
    owns everything else: optimisers, noise, batches, the frozen-classifier loss, learning-rate
    decay, evaluation and checkpoints.

    A subclass must:

    - call ``super().__init__(feat_dim=..., att_dim=..., n_seen=..., params=...)`` first, then
      set ``self.generator``, a module with ``forward(z, a) -> x``: z (B, ``self.nz``) noise,
      a (B, A) attributes, x (B, D) features, non-negative like the ReLU features of the real
      data; and ``self.critic``, whatever module its own losses call;
    - implement `critic_loss` and `generator_loss`;
    - override `critic_parameters` when modules other than ``self.critic`` train with the
      critic (e.g. a semantic encoder).

    `ConcatGAN` and `WGANGP` implement all of this with the f-CLSWGAN networks; subclassing one
    of them is usually shorter.

    How the loop uses a GAN, in order:

    1. **Construction**, once per training run (one per trial of a search), by the variant's
       ``build(feat_dim=D, att_dim=A, n_seen=S, params=p)``: ``p`` is an instance of the
       variant's ``params_cls``, already validated. It runs on the CPU under a forked global
       torch RNG seeded with the run seed, so initialisation drawn from the global RNG (as
       `init_normal` does) is a function of the seed; the order in which modules are created
       and initialised is therefore part of the result. The module is then moved to the
       training device with ``.to(device)``: keep every tensor a parameter or a buffer.
    2. `critic_parameters` is called once to build the critic's Adam optimiser, and again
       around every generator step (to freeze and unfreeze those parameters): it must return
       the same parameters every time. The generator's optimiser takes
       ``self.generator.parameters()``, so whatever the generator loss trains lives there.
    3. **A generator step**, ``ceil(N / batch_size)`` times per epoch (N training features),
       the whole module in train mode:

       - ``params.n_critic`` times: a fresh `Batch`, ``fake = generator(noise, batch.a)``
         computed under ``torch.no_grad()`` (so ``fake`` carries no graph and the generator's
         parameters have ``requires_grad`` off), then `critic_loss` ``(batch, fake)``; the loop
         zeroes the critic's gradients, back-propagates the loss and steps the critic
         optimiser.
       - once: a fresh `Batch`, the critic parameters frozen (``requires_grad`` off),
         ``fake = generator(noise, batch.a)`` with its graph, then `generator_loss`
         ``(batch, fake)``; when ``params.cls_weight > 0`` the loop adds ``cls_weight`` times
         the cross-entropy of a frozen seen-class softmax classifier (pretrained on the real
         training features for ``params.cls_pretrain_epochs``) on ``(fake, batch.y)``, then
         back-propagates and steps the generator optimiser.

       The noise is ``torch.randn(B, self.nz)`` from the loop's generator.
    4. **Evaluation**, after every ``eval_every``-th epoch, the last and a diverged one (and of
       the untrained GAN when there is nothing to train): ``self.generator`` alone, in eval
       mode and under ``torch.no_grad()``, turns noise and *unseen*-class attributes into
       synthetic features (chunks of up to 8192 rows); it is back in train mode afterwards.
    5. **Checkpoints** save and restore ``state_dict()``: attribute names are checkpoint keys.

    A loss may assume: every tensor of the `Batch` is on the module's device; B is
    ``min(params.batch_size, N)`` and ``fake`` has B rows matching ``batch.y`` and ``batch.a``;
    ``batch.att`` holds the seen classes only (the GAN never sees an unseen attribute in
    training); ``batch.progress`` is the fraction of the schedule's generator steps done,
    the same for all the losses of one generator step. A loss returns a 0-dim tensor; a
    non-finite one marks the run diverged and training stops after that epoch. Randomness
    inside a loss must come from ``batch.rng`` (``generator=batch.rng,
    device=batch.rng.device``): it is the loop's seeded generator, saved in checkpoints, so a
    run is reproducible and resumes bit for bit; the global RNG is neither.
    """

    generator: nn.Module
    critic: nn.Module

    def __init__(self, *, feat_dim: int, att_dim: int, n_seen: int, params: CommonParams) -> None:
        super().__init__()
        self.feat_dim, self.att_dim, self.n_seen, self.params = feat_dim, att_dim, n_seen, params
        self.nz = params.nz or att_dim

    def critic_parameters(self) -> list[nn.Parameter]:
        """What the critic's optimiser trains: ``self.critic``'s parameters unless overridden."""
        return list(self.critic.parameters())

    def critic_loss(self, batch: Batch, fake: torch.Tensor) -> torch.Tensor:
        """The critic's loss (0-dim) on real ``batch.real`` and generated ``fake`` (B, D, no graph)."""
        raise NotImplementedError

    def generator_loss(self, batch: Batch, fake: torch.Tensor) -> torch.Tensor:
        """The generator's adversarial loss (0-dim) for ``fake`` (B, D, with its graph); the
        loop adds the frozen-classifier loss itself."""
        raise NotImplementedError


class ConcatGAN(GAN):
    """A GAN on the f-CLSWGAN networks: `Generator` on concat(z, a) and `Critic` on concat(x, a),
    N(0, 0.02)-initialised. Subclasses implement the two losses and may build other networks
    by overriding `build_nets`."""

    def __init__(self, *, feat_dim: int, att_dim: int, n_seen: int, params: CommonParams) -> None:
        super().__init__(feat_dim=feat_dim, att_dim=att_dim, n_seen=n_seen, params=params)
        self.generator, self.critic = self.build_nets(params)
        init_normal(self)

    def build_nets(self, params: CommonParams) -> tuple[nn.Module, nn.Module]:
        """(generator, critic), created in that order; called once from ``__init__``."""
        return (
            Generator(self.nz, self.att_dim, params.hidden, self.feat_dim),
            Critic(self.feat_dim, self.att_dim, params.hidden),
        )


class WGANGP(ConcatGAN):
    """`ConcatGAN` with WGAN-GP losses (gradient-penalty weight ``params.gp_lambda``, so the
    params class is a `WGANParams`): f-CLSWGAN itself, and the base of the other WGANs.

    The critic must score each row on its own (no batch norm, no dropout): `wgan_gp_critic_loss`
    scores fake and real rows in one call. Use `leaky_relu` / `LeakyReLU` for its activations:
    the gradient penalty then skips a zero second derivative. A critic may also write the loss
    out itself, as a method ``wgan_gp_loss(real, fake, a, alpha, *, gp_lambda)`` that
    `wgan_gp_critic_loss` then calls (FiLM-WGAN's does; test it against autograd's double
    backward, as ``tests/test_models.py`` does)."""

    params: WGANParams

    def critic_loss(self, batch: Batch, fake: torch.Tensor) -> torch.Tensor:
        return wgan_gp_critic_loss(self.critic, batch.real, fake, batch.a, gp_lambda=self.params.gp_lambda, rng=batch.rng)

    def generator_loss(self, batch: Batch, fake: torch.Tensor) -> torch.Tensor:
        return -self.critic(fake, batch.a).mean()


def extend_space(
    base: Mapping[str, Distribution], entries: Mapping[str, Distribution], *, after: str | None = None
) -> dict[str, Distribution]:
    """A copy of the search space ``base`` with ``entries``: a name ``base`` has keeps its place
    and takes the new distribution; new names go right after ``after`` (default: at the end).

    The order of a space is the order a search samples it in, so where a name goes matters to a
    seeded search.

    Raises:
        ValueError: ``after`` is not a name of ``base``.
    """
    if after is not None and after not in base:
        raise ValueError(f"extend_space: {after!r} is not in the space ({', '.join(base)})")
    added = {k: d for k, d in entries.items() if k not in base}
    out: dict[str, Distribution] = {}
    for name, dist in base.items():
        out[name] = entries.get(name, dist)
        if name == after:
            out.update(added)
    if after is None:
        out.update(added)
    return out


# The dimensions every variant searches, on the scales the seed reports tuned them.
COMMON_SPACE: dict[str, Distribution] = {
    "lr_g": Float(1e-5, 1e-3, log=True),
    "lr_d": Float(1e-5, 1e-3, log=True),
    "beta1": Categorical((0.0, 0.5, 0.9)),
    "cls_weight": Float(1e-3, 1.0, log=True),
    "syn_num": Int(8, 3000, log=True),  # every per-dataset default: PF60 24 ... ZS-WGAN AWA 2500
    "batch_size": Categorical((32, 64, 128, 256)),
    "hidden": Categorical((256, 512, 1024, 2048, 4096)),
    "nz": Categorical((0, 32, 100, 300)),  # 0 = the attribute dimension
}
WGAN_SPACE = extend_space(
    COMMON_SPACE, {"gp_lambda": Float(1.0, 20.0, log=True), "n_critic": Int(1, 7)}, after="cls_weight"
)


def merge_defaults(*tables: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per-dataset defaults tables (``{dataset: {name: value}}``) merged into one, for a
    `Variant`'s ``dataset_defaults``: datasets in the order first met, a later table's value
    winning for the same dataset and name."""
    out: dict[str, dict[str, Any]] = {}
    for table in tables:
        for dataset, values in table.items():
            out.setdefault(dataset, {}).update(values)
    return out


# The small data sets, whatever the variant: the built-in synthetic demo set (zsl-search data
# synth, ~45 images per class) and PF60 (real, 73-d features, ~12 images per class) want a
# smaller network and fewer epochs than the ImageNet-scale sets, and fewer synthetic features
# per class (on PF60 as many as a seen class has real ones, ~10-30) so that the final softmax
# is not swamped by them.
SMALL_DATA_SIZES: dict[str, dict[str, Any]] = {
    "DEMO": dict(syn_num=100, hidden=512, epochs=15),
    "PF60": dict(syn_num=24, batch_size=32, hidden=512, epochs=20),
}
# The rates on those sets of the variants that train at the f-CLSWGAN reference rates (the
# WGANs and the cGAN; cosgan's TTUR rates are its own): faster on the small synthetic demo
# set; on PF60 the reference rate with a stronger classifier loss, as on FLO.
SMALL_DATA_RATES: dict[str, dict[str, Any]] = {
    "DEMO": dict(lr_g=1e-3, lr_d=1e-3),
    "PF60": dict(lr_g=1e-4, lr_d=1e-4, cls_weight=0.1),
}
# The per-dataset settings of the thesis behind the seed blog post, which both of its WGANs
# (zswgan, filmwgan) were trained with: 50 epochs / syn_num 2500 on AWA, 100 epochs / nz 300 /
# syn_num 500 on CUB; lr 1e-5.
THESIS_DEFAULTS: dict[str, dict[str, Any]] = {
    "AWA1": dict(lr_g=1e-5, lr_d=1e-5, syn_num=2500, epochs=50),
    "AWA2": dict(lr_g=1e-5, lr_d=1e-5, syn_num=2500, epochs=50),
    "CUB": dict(lr_g=1e-5, lr_d=1e-5, syn_num=500, nz=300, epochs=100),
}
