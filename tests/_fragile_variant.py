"""A GAN variant that lives outside the package, loaded through ``ZSL_SEARCH_PLUGINS``: the
f-CLSWGAN networks and losses (`zsl_search.models.base.WGANGP`) with fault knobs, so a test can
make a trial raise, diverge or stall on cue. With its defaults it is an ordinary variant."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from zsl_search.models.base import WGANGP, Batch, Variant, WGANParams, register


@dataclass(frozen=True)
class Params(WGANParams):
    hidden: int = 64
    syn_num: int = 20
    cls_epochs: int = 3
    cls_pretrain_epochs: int = 2
    fail_at_epoch: int = 0  # raise in this epoch (1-based; 0: never)
    nan_at_epoch: int = 0  # the generator loss is NaN from this epoch on (0: never)
    stall_s: float = 0.0  # sleep this long before the first epoch


class Fragile(WGANGP):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        time.sleep(self.params.stall_s)

    def _epoch(self, batch: Batch) -> int:
        return int(batch.progress * self.params.epochs + 1e-9) + 1  # progress counts generator steps

    def critic_loss(self, batch: Batch, fake: torch.Tensor) -> torch.Tensor:
        epoch = self._epoch(batch)
        if self.params.fail_at_epoch and epoch >= self.params.fail_at_epoch:
            raise RuntimeError(f"injected failure in epoch {epoch}")
        return super().critic_loss(batch, fake)

    def generator_loss(self, batch: Batch, fake: torch.Tensor) -> torch.Tensor:
        loss = super().generator_loss(batch, fake)
        if self.params.nan_at_epoch and self._epoch(batch) >= self.params.nan_at_epoch:
            loss = loss * float("nan")
        return loss


register(Variant(name="fragile", description="test-only: f-CLSWGAN with fault knobs (raise, NaN, stall)",
                 params_cls=Params, build=Fragile))
