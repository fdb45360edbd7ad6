"""Vanilla conditional GAN: the f-CLSWGAN networks with a sigmoid discriminator trained by BCE,
one D step per G step, plus the frozen-classifier loss."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._nets import bce_loss
from ._registry import Batch, CommonParams, Variant, register
from ._space import Categorical, Float, Int
from .fclswgan import WGAN


@dataclass(frozen=True)
class Params(CommonParams):
    n_critic: int = 1


class CGAN(WGAN):
    def critic_loss(self, batch: Batch, fake: torch.Tensor) -> torch.Tensor:
        # The critic's raw score is the logit of "real"; BCE-with-logits is the stable sigmoid + BCE.
        return bce_loss(self.critic(batch.real, batch.a), 1.0) + bce_loss(self.critic(fake, batch.a), 0.0)

    def generator_loss(self, batch: Batch, fake: torch.Tensor) -> torch.Tensor:
        return bce_loss(self.critic(fake, batch.a), 1.0)  # non-saturating G loss


register(
    Variant(
        name="cgan",
        description="Conditional GAN: sigmoid discriminator with BCE, 1 D step per G step, + cls loss",
        params_cls=Params,
        build=CGAN,
        dataset_defaults={
            # The built-in synthetic demo set (zsl-search data synth): ~45 images per class, so fewer
            # synthetic features, a faster rate and a smaller network than the ImageNet-scale sets.
            "DEMO": dict(lr_g=1e-3, lr_d=1e-3, syn_num=100, hidden=512, epochs=15),
            # PF60 (real, 73-d features, ~12 images per class): few synthetic features per class (as
            # many as a seen class has real ones, ~10-30) so the final softmax is not swamped by them.
            "PF60": dict(lr_g=1e-4, lr_d=1e-4, cls_weight=0.1, syn_num=24, batch_size=32, hidden=512, epochs=20),
        },
        space={
            "lr_g": Float(1e-5, 1e-3, log=True),
            "lr_d": Float(1e-5, 1e-3, log=True),
            "beta1": Categorical((0.0, 0.5, 0.9)),
            "cls_weight": Float(1e-3, 1.0, log=True),
            "n_critic": Int(1, 3),
            "syn_num": Int(8, 3000, log=True),
            "batch_size": Categorical((32, 64, 128, 256)),
            "hidden": Categorical((256, 512, 1024, 2048, 4096)),
            "nz": Categorical((0, 32, 100, 300)),
        },
    )
)
