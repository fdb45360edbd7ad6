"""ZS-WGAN (the thesis behind the seed blog post): the f-CLSWGAN network at width 4400 with its
own noise size, optionally projecting the attribute to nz first (tanh in G, LeakyReLU in the
critic) so noise and semantics enter with equal width."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ._registry import Variant, register
from ._space import Categorical
from .fclswgan import WGAN, WGAN_SPACE, Critic, Generator
from .fclswgan import Params as WGANParams


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


class ZSWGAN(WGAN):
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
        # Thesis settings: 50 epochs / nz 100 / syn_num 2500 on AWA, 100 / 300 / 500 on CUB; lr 1e-5.
        dataset_defaults={
            # The built-in synthetic demo set (zsl-search data synth): ~45 images per class, so fewer
            # synthetic features, a faster rate and a smaller network than the ImageNet-scale sets.
            "DEMO": dict(lr_g=1e-3, lr_d=1e-3, syn_num=100, hidden=512, epochs=15),
            # PF60 (real, 73-d features, ~12 images per class): few synthetic features per class (as
            # many as a seen class has real ones, ~10-30) so the final softmax is not swamped by them.
            "PF60": dict(lr_g=1e-4, lr_d=1e-4, cls_weight=0.1, syn_num=24, batch_size=32, hidden=512, epochs=20, nz=32),
            "AWA1": dict(lr_g=1e-5, lr_d=1e-5, syn_num=2500, epochs=50),
            "AWA2": dict(lr_g=1e-5, lr_d=1e-5, syn_num=2500, epochs=50),
            "CUB": dict(lr_g=1e-5, lr_d=1e-5, syn_num=500, nz=300, epochs=100),
        },
        space={**WGAN_SPACE, "hidden": Categorical((256, 512, 1100, 2200, 4400)), "project_att": Categorical((False, True))},
    )
)
