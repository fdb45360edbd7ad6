"""Cosine-embedding LSGAN (the second seed report), adapted from images to features.

The critic is a spectrally normalised trunk with four heads: a real/fake score (LSGAN loss), a
visual embedding phi(x), a seen-class softmax (real samples only) and an attribute regressor.
A semantic encoder psi(a) trains with the critic. Conditioning is by cosine agreement between
phi(x) and psi(a): real pairs are pulled to 1, fakes and other-class pairs pushed to 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from .base import (
    COMMON_SPACE, GAN, SMALL_DATA_SIZES, Batch, Categorical, CommonParams, Float, Generator, Variant, check,
    extend_space, init_normal, lsgan_loss, merge_defaults, register,
)


@dataclass(frozen=True)
class Params(CommonParams):
    lr_g: float = 5e-5  # TTUR as in the report
    lr_d: float = 2e-4
    lr_decay: str = "linear"
    n_critic: int = 1
    cls_weight: float = 0.0  # the critic's own class head replaces the frozen classifier
    hidden: int = 2048
    emb_dim: int = 512
    lambda1: float = 1.0  # other-class cosine penalty
    lambda2: float = 1.0  # softmax regulariser on real samples
    attr_weight: float = 1.0  # attribute-regression head
    spectral_norm: bool = True
    soft_labels: bool = True  # real in [0.7, 1.2], fake in [0, 0.3]
    instance_noise: float = 0.2  # sigma at the start, decayed linearly to 0

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("lambda1", "lambda2", "attr_weight", "instance_noise"):
            check(name, getattr(self, name) >= 0, ">= 0")
        check("emb_dim", self.emb_dim >= 1, ">= 1")


class Critic(nn.Module):
    def __init__(self, feat_dim: int, att_dim: int, n_seen: int, p: Params) -> None:
        super().__init__()
        sn = spectral_norm if p.spectral_norm else (lambda m: m)
        h2 = max(p.hidden // 2, 1)
        self.trunk = nn.Sequential(sn(nn.Linear(feat_dim, p.hidden)), nn.LeakyReLU(0.2), sn(nn.Linear(p.hidden, h2)), nn.LeakyReLU(0.2))
        self.score = sn(nn.Linear(h2, 1))
        self.phi = sn(nn.Linear(h2, p.emb_dim))
        self.classify = sn(nn.Linear(h2, n_seen))
        self.regress = sn(nn.Linear(h2, att_dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        h = self.trunk(x)
        return self.score(h), self.phi(h), self.classify(h), self.regress(h)


class CosGAN(GAN):
    def __init__(self, *, feat_dim: int, att_dim: int, n_seen: int, params: Params) -> None:
        super().__init__(feat_dim=feat_dim, att_dim=att_dim, n_seen=n_seen, params=params)
        self.generator = Generator(self.nz, att_dim, params.hidden, feat_dim)  # f-CLSWGAN's concat(z, a) MLP
        self.critic = Critic(feat_dim, att_dim, n_seen, params)
        self.psi = nn.Sequential(nn.Linear(att_dim, max(params.hidden // 2, 1)), nn.LeakyReLU(0.2), nn.Linear(max(params.hidden // 2, 1), params.emb_dim))
        init_normal(self)

    def critic_parameters(self) -> list[nn.Parameter]:
        return [*self.critic.parameters(), *self.psi.parameters()]

    def _noisy(self, x: torch.Tensor, batch: Batch) -> torch.Tensor:
        sigma = self.params.instance_noise * (1.0 - batch.progress)
        if sigma <= 0:
            return x
        return x + sigma * torch.randn(x.shape, generator=batch.rng, device=batch.rng.device).to(x.device)

    def _labels(self, batch: Batch, low: float, high: float, hard: float) -> torch.Tensor | float:
        if not self.params.soft_labels:
            return hard
        u = torch.rand(batch.real.shape[0], 1, generator=batch.rng, device=batch.rng.device).to(batch.real.device)
        return low + (high - low) * u

    def critic_loss(self, batch: Batch, fake: torch.Tensor) -> torch.Tensor:
        p = self.params
        # Real and fake through the critic in one pass: every spectrally normalised weight is
        # then computed (a power iteration and a division, and their backward) once per step
        # instead of once per batch, and each layer is one matmul of twice the rows.
        real, fake = self._noisy(batch.real, batch), self._noisy(fake, batch)
        score, phi, logits, reg = self.critic(torch.cat([real, fake]))
        n = real.shape[0]
        score_r, phi_r, logits_r, reg_r, score_f, phi_f = score[:n], phi[:n], logits[:n], reg[:n], score[n:], phi[n:]
        psi_a = self.psi(batch.a)
        # Another seen class for every sample: y + k (mod n_seen), k in [1, n_seen).
        shift = torch.randint(1, max(self.n_seen, 2), batch.y.shape, generator=batch.rng, device=batch.rng.device)
        psi_other = self.psi(batch.att[(batch.y + shift.to(batch.y.device)) % self.n_seen])
        loss = lsgan_loss(score_r, self._labels(batch, 0.7, 1.2, 1.0)) + lsgan_loss(score_f, self._labels(batch, 0.0, 0.3, 0.0))
        loss = loss + ((1 - F.cosine_similarity(phi_r, psi_a)) ** 2).mean()
        if self.n_seen > 1:
            loss = loss + p.lambda1 * (F.cosine_similarity(phi_r, psi_other) ** 2).mean()
        loss = loss + (F.cosine_similarity(phi_f, psi_a) ** 2).mean()
        loss = loss + p.lambda2 * F.cross_entropy(logits_r, batch.y)
        return loss + p.attr_weight * ((reg_r - batch.a) ** 2).sum(1).mean()

    def generator_loss(self, batch: Batch, fake: torch.Tensor) -> torch.Tensor:
        score_f, phi_f, _, reg_f = self.critic(fake)
        loss = lsgan_loss(score_f, 1.0) + ((1 - F.cosine_similarity(phi_f, self.psi(batch.a))) ** 2).mean()
        return loss + self.params.attr_weight * ((reg_f - batch.a) ** 2).sum(1).mean()


register(
    Variant(
        name="cosgan",
        description="Cosine-embedding LSGAN: semantic encoder, spectral-norm multi-head critic, TTUR",
        params_cls=Params,
        build=CosGAN,
        # Faster TTUR rates on the demo set; elsewhere, PF60 included, the report's rates (Params).
        dataset_defaults=merge_defaults({"DEMO": dict(lr_g=2.5e-4, lr_d=1e-3)}, SMALL_DATA_SIZES),
        space=extend_space(COMMON_SPACE, {
            "lambda1": Float(0.01, 10.0, log=True),
            "lambda2": Float(0.01, 10.0, log=True),
            "attr_weight": Float(0.01, 10.0, log=True),
            "cls_weight": Categorical((0.0, 0.01, 0.1)),
        }, after="beta1"),
    )
)
