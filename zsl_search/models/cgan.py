"""Vanilla conditional GAN: the f-CLSWGAN networks with a sigmoid discriminator trained by BCE,
one D step per G step, plus the frozen-classifier loss."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import (
    COMMON_SPACE, SMALL_DATA_RATES, SMALL_DATA_SIZES, Batch, CommonParams, ConcatGAN, Int, Variant, bce_loss,
    extend_space, merge_defaults, register,
)


@dataclass(frozen=True)
class Params(CommonParams):
    n_critic: int = 1


class CGAN(ConcatGAN):
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
        dataset_defaults=merge_defaults(SMALL_DATA_RATES, SMALL_DATA_SIZES),
        space=extend_space(COMMON_SPACE, {"n_critic": Int(1, 3)}, after="cls_weight"),
    )
)
