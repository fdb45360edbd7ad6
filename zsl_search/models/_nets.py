"""Building blocks and loss families shared by the variants; `base` re-exports them, and a
variant imports them from there."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

__all__ = ["init_normal", "Generator", "Critic", "FiLM", "LeakyReLU", "leaky_relu", "wgan_gp_critic_loss", "lsgan_loss",
           "bce_loss"]


def init_normal(module: nn.Module, std: float = 0.02) -> None:
    """N(0, std) weights and zero biases for every Linear, as all the reference codebases do.

    A parametrized weight (spectral norm) is a recomputed tensor: the stored parameter is
    ``parametrizations.weight.original``, so that is what gets initialised, and the power
    iteration is rerun so the spectral-norm estimate belongs to the new weight."""
    for m in module.modules():
        if not isinstance(m, nn.Linear):
            continue
        with torch.no_grad():
            if parametrize.is_parametrized(m, "weight"):
                weight = m.parametrizations.weight
                nn.init.normal_(weight.original, 0.0, std)
                for p in weight:
                    if hasattr(p, "_power_method"):  # torch's _SpectralNorm: 15 iterations, as at construction
                        p._power_method(p._reshape_weight_to_matrix(weight.original), 15)
            else:
                nn.init.normal_(m.weight, 0.0, std)
            nn.init.zeros_(m.bias)


class _LeakyReLU(torch.autograd.Function):
    # The gradient penalty differentiates the critic's input gradient once more. Through
    # F.leaky_relu, autograd then also builds the second derivative (zeros) and carries them
    # back through the layer below: a full weight-gradient matmul and sum of zeros per layer
    # and critic step. Here the backward's slope mask is a constant, so that branch never exists.
    @staticmethod
    def forward(ctx, x: torch.Tensor, slope: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.slope = slope
        return F.leaky_relu(x, slope)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (x,) = ctx.saved_tensors
        return torch.ops.aten.leaky_relu_backward(grad, x.detach(), ctx.slope, False), None


def leaky_relu(x: torch.Tensor, slope: float = 0.2) -> torch.Tensor:
    """``F.leaky_relu`` with the same values and gradients, whose (zero) second derivative
    costs nothing: use it in critics that a gradient penalty differentiates twice."""
    return _LeakyReLU.apply(x, slope)


class LeakyReLU(nn.Module):
    """`leaky_relu` as a module (no parameters: a drop-in for ``nn.LeakyReLU``)."""

    def __init__(self, slope: float = 0.2) -> None:
        super().__init__()
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return leaky_relu(x, self.slope)


class Generator(nn.Module):
    """The f-CLSWGAN generator: an MLP on concat(z, a) with one hidden LeakyReLU(0.2) layer and a
    ReLU output."""

    def __init__(self, nz: int, att_dim: int, hidden: int, feat_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(nz + att_dim, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, feat_dim), nn.ReLU()
        )

    def forward(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, a], dim=1))  # (B, D), non-negative like ResNet features


class Critic(nn.Module):
    """The f-CLSWGAN critic: an MLP on concat(x, a) with one hidden LeakyReLU(0.2) layer and an
    unbounded score."""

    def __init__(self, feat_dim: int, att_dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(feat_dim + att_dim, hidden), LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, a], dim=1))  # (B, 1) unbounded score (Wasserstein, or a logit)


class FiLM(nn.Module):
    """Feature-wise linear modulation ``gamma(a) * h + beta(a)``; gamma and beta are each one
    Linear layer followed by LeakyReLU(0.01), as in the FiLM-WGAN thesis."""

    def __init__(self, att_dim: int, width: int) -> None:
        super().__init__()
        self.gamma = nn.Linear(att_dim, width)
        self.beta = nn.Linear(att_dim, width)

    def forward(self, h: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.gamma(a), 0.01) * h + F.leaky_relu(self.beta(a), 0.01)


def wgan_gp_critic_loss(
    critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, a: torch.Tensor, *, gp_lambda: float,
    rng: torch.Generator,
) -> torch.Tensor:
    """WGAN-GP critic loss: E[D(fake)] - E[D(real)] + lambda * E[(|grad D(x_hat)| - 1)^2].

    Fake and real rows go through the critic in one call: for a critic that scores each row on
    its own (every critic here) that is the two calls' math, but the backward then makes one
    weight gradient per layer where it made two and summed them (at AWA2 sizes each is a
    memory-bound pass over 8.7M weights). x_hat keeps its own call: its double backward would
    otherwise run over all the rows."""
    b = real.shape[0]
    alpha = torch.rand(b, 1, generator=rng, device=rng.device).to(real.device)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat, a).sum(), x_hat, create_graph=True)
    penalty = ((grad.norm(2, dim=1) - 1) ** 2).mean()
    score = critic(torch.cat([fake, real]), a.repeat(2, 1))
    return score[:b].mean() - score[b:].mean() + gp_lambda * penalty


def lsgan_loss(score: torch.Tensor, target: torch.Tensor | float) -> torch.Tensor:
    """Least-squares GAN loss against a (possibly soft, per-sample) target."""
    if not isinstance(target, torch.Tensor):
        target = torch.full_like(score, target)
    return ((score - target) ** 2).mean()


def bce_loss(logit: torch.Tensor, target: float) -> torch.Tensor:
    """Binary cross-entropy of a raw score (the logit of "real") against a constant target."""
    return F.binary_cross_entropy_with_logits(logit, torch.full_like(logit, target))
