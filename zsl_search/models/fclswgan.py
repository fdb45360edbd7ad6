"""f-CLSWGAN (Xian et al., CVPR 2018): conditional WGAN-GP on concat(z, a) plus the frozen
classifier loss. The reference network for every other WGAN variant here."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ._nets import init_normal, wgan_gp_critic_loss
from ._registry import GAN, Batch, CommonParams, Variant, _check, register
from ._space import Categorical, Float, Int


@dataclass(frozen=True)
class Params(CommonParams):
    gp_lambda: float = 10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check("gp_lambda", self.gp_lambda >= 0, ">= 0")


class Generator(nn.Module):
    def __init__(self, nz: int, att_dim: int, hidden: int, feat_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(nz + att_dim, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, feat_dim), nn.ReLU()
        )

    def forward(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, a], dim=1))  # (B, D), non-negative like ResNet features


class Critic(nn.Module):
    def __init__(self, feat_dim: int, att_dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(feat_dim + att_dim, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, a], dim=1))  # (B, 1) unbounded Wasserstein score


class WGAN(GAN):
    """The f-CLSWGAN networks with WGAN-GP losses; subclasses swap the networks or the losses."""

    def __init__(self, *, feat_dim: int, att_dim: int, n_seen: int, params: CommonParams) -> None:
        super().__init__(feat_dim=feat_dim, att_dim=att_dim, n_seen=n_seen, params=params)
        self.generator, self.critic = self.build_nets(params)
        init_normal(self)

    def build_nets(self, params: CommonParams) -> tuple[nn.Module, nn.Module]:
        return (
            Generator(self.nz, self.att_dim, params.hidden, self.feat_dim),
            Critic(self.feat_dim, self.att_dim, params.hidden),
        )

    def critic_loss(self, batch: Batch, fake: torch.Tensor) -> torch.Tensor:
        return wgan_gp_critic_loss(self.critic, batch.real, fake, batch.a, gp_lambda=self.params.gp_lambda, rng=batch.rng)

    def generator_loss(self, batch: Batch, fake: torch.Tensor) -> torch.Tensor:
        return -self.critic(fake, batch.a).mean()


# Shared by the WGAN variants: the dimensions the seed reports tuned, on the scales they vary.
WGAN_SPACE = {
    "lr_g": Float(1e-5, 1e-3, log=True),
    "lr_d": Float(1e-5, 1e-3, log=True),
    "beta1": Categorical((0.0, 0.5, 0.9)),
    "cls_weight": Float(1e-3, 1.0, log=True),
    "gp_lambda": Float(1.0, 20.0, log=True),
    "n_critic": Int(1, 7),
    "syn_num": Int(8, 3000, log=True),  # every per-dataset default: PF60 24 ... ZS-WGAN AWA 2500
    "batch_size": Categorical((32, 64, 128, 256)),
    "hidden": Categorical((256, 512, 1024, 2048, 4096)),
    "nz": Categorical((0, 32, 100, 300)),  # 0 = the attribute dimension
}

register(
    Variant(
        name="fclswgan",
        description="f-CLSWGAN: WGAN-GP on concat(z, a) + frozen-classifier loss (Xian et al. 2018)",
        params_cls=Params,
        build=WGAN,
        # Per-dataset GZSL settings of the reference code (lr / cls_weight / syn_num / epochs).
        dataset_defaults={
            # The built-in synthetic demo set (zsl-search data synth): ~45 images per class, so fewer
            # synthetic features, a faster rate and a smaller network than the ImageNet-scale sets.
            "DEMO": dict(lr_g=1e-3, lr_d=1e-3, syn_num=100, hidden=512, epochs=15),
            # PF60 (real, 73-d features, ~12 images per class): few synthetic features per class (as
            # many as a seen class has real ones, ~10-30) so the final softmax is not swamped by them.
            "PF60": dict(lr_g=1e-4, lr_d=1e-4, cls_weight=0.1, syn_num=24, batch_size=32, hidden=512, epochs=20),
            "AWA1": dict(lr_g=1e-5, lr_d=1e-5, syn_num=1800, epochs=30),
            "AWA2": dict(lr_g=1e-5, lr_d=1e-5, syn_num=1800, epochs=30),
            "CUB": dict(lr_g=1e-4, lr_d=1e-4, syn_num=300, epochs=56),
            "SUN": dict(lr_g=2e-4, lr_d=2e-4, syn_num=400, epochs=40),
            "FLO": dict(lr_g=1e-4, lr_d=1e-4, cls_weight=0.1, syn_num=1200, epochs=80),
        },
        space=WGAN_SPACE,
    )
)
