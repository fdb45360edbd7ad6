"""ZS-WGAN (the thesis behind the seed blog post): the f-CLSWGAN network at width 4400 with its
own noise size, optionally projecting the attribute to nz first (tanh in G, LeakyReLU in the
critic) so noise and semantics enter with equal width."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .base import (
    SMALL_DATA_RATES, SMALL_DATA_SIZES, THESIS_DEFAULTS, WGAN_SPACE, WGANGP, Categorical, Critic, Generator,
    Variant, WGANParams, extend_space, merge_defaults, register,
)


@dataclass(frozen=True)
class Params(WGANParams):
    hidden: int = 4400
    nz: int = 100
    project_att: bool = False
    cls_pretrain_epochs: int = 25


class _Projected(nn.Module):
    """Wraps a (first, a) network so the attribute is first mapped to ``nz`` dims."""

    def __init__(self, net: nn.Module, att_dim: int, nz: int, act: nn.Module) -> None:
        super().__init__()
        self.net, self.proj = net, nn.Sequential(nn.Linear(att_dim, nz), act)

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.net(x, self.proj(a))


class ZSWGAN(WGANGP):
    def build_nets(self, params: Params) -> tuple[nn.Module, nn.Module]:
        if not params.project_att:
            return super().build_nets(params)
        g = Generator(self.nz, self.nz, params.hidden, self.feat_dim)
        d = Critic(self.feat_dim, self.nz, params.hidden)
        return _Projected(g, self.att_dim, self.nz, nn.Tanh()), _Projected(d, self.att_dim, self.nz, nn.LeakyReLU(0.2))


register(
    Variant(
        name="zswgan",
        description="ZS-WGAN: f-CLSWGAN network at width 4400, optional attribute projection to nz",
        params_cls=Params,
        build=ZSWGAN,
        dataset_defaults=merge_defaults(SMALL_DATA_RATES, SMALL_DATA_SIZES, {"PF60": dict(nz=32)}, THESIS_DEFAULTS),
        space=extend_space(WGAN_SPACE, {"hidden": Categorical((256, 512, 1100, 2200, 4400)),
                                        "project_att": Categorical((False, True))}),
    )
)
