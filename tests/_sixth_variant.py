"""A sixth variant in one file, built from `zsl_search.models.base` alone: the acceptance test
of "a GAN variant is one file that registers itself". A conditional GAN with hinge losses on
the f-CLSWGAN networks; loaded as a plugin (``ZSL_SEARCH_PLUGINS=_sixth_variant``), it goes
through the same contract tests as the built-in variants."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from zsl_search.models.base import (
    COMMON_SPACE, SMALL_DATA_RATES, SMALL_DATA_SIZES, Batch, CommonParams, ConcatGAN, Variant, merge_defaults,
    register,
)


@dataclass(frozen=True)
class Params(CommonParams):
    n_critic: int = 1


class HingeGAN(ConcatGAN):
    def critic_loss(self, batch: Batch, fake: torch.Tensor) -> torch.Tensor:
        return F.relu(1 - self.critic(batch.real, batch.a)).mean() + F.relu(1 + self.critic(fake, batch.a)).mean()

    def generator_loss(self, batch: Batch, fake: torch.Tensor) -> torch.Tensor:
        return -self.critic(fake, batch.a).mean()


register(Variant(
    name="hingegan",
    description="test-only: conditional GAN with hinge losses, a plugin built on models.base",
    params_cls=Params,
    build=HingeGAN,
    dataset_defaults=merge_defaults(SMALL_DATA_RATES, SMALL_DATA_SIZES),
    space=COMMON_SPACE,  # one critic step per generator step, not searched
))
