"""Building blocks and loss families shared by the variants; `base` re-exports them, and a
variant imports them from there."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

__all__ = ["init_normal", "Generator", "Critic", "FiLM", "LeakyReLU", "leaky_relu", "wgan_gp_critic_loss",
           "mlp_wgan_gp_loss", "lsgan_loss", "bce_loss"]


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

    For the f-CLSWGAN `Critic` the loss and its weight gradients are written out
    (`mlp_wgan_gp_loss`), and so for a critic with a method ``wgan_gp_loss(real, fake, a, alpha,
    gp_lambda=...)`` (FiLM-WGAN's). Any other critic goes through autograd: fake and real rows in one
    call (for a critic that scores each row on its own, every critic here, that is the two
    calls' math with one weight gradient per layer instead of two summed), x_hat in its own,
    since its double backward would otherwise run over all the rows."""
    b = real.shape[0]
    alpha = torch.rand(b, 1, generator=rng, device=rng.device).to(real.device)
    if type(critic) is Critic:
        first, last = critic.net[0], critic.net[2]
        return mlp_wgan_gp_loss(first.weight, first.bias, last.weight, last.bias, real, fake, a, alpha,
                                gp_lambda=gp_lambda)
    if hasattr(critic, "wgan_gp_loss"):
        return critic.wgan_gp_loss(real, fake, a, alpha, gp_lambda=gp_lambda)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat, a).sum(), x_hat, create_graph=True)
    penalty = ((grad.norm(2, dim=1) - 1) ** 2).mean()
    score = critic(torch.cat([fake, real]), a.repeat(2, 1))
    return score[:b].mean() - score[b:].mean() + gp_lambda * penalty


def mlp_wgan_gp_loss(w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor, real: torch.Tensor,
                     fake: torch.Tensor, a: torch.Tensor, alpha: torch.Tensor, *,
                     gp_lambda: float | torch.Tensor) -> torch.Tensor:
    """`wgan_gp_critic_loss` of the `Critic` MLP (concat(x, a) -> Linear -> LeakyReLU(0.2) ->
    Linear), its backward written out.

    Solo: nn.Linear's weights (out, in), 2-D rows, a 0-dim loss. Stacked (`FusedTrainer`): a
    leading member dim on everything, weights (K, in, out), biases (K, 1, out), ``gp_lambda``
    (K,), a (K,) loss. Through autograd the first layer's weight gradient is two matmuls, over
    the fake + real rows and over the penalty's rows, and a sum: at AWA2 sizes three passes
    over 8.7M weights. Written out it is one matmul over all the rows (and the first layer's
    forward one over fake, real and x_hat rows), the same gradient to float rounding."""
    b, d = real.shape[-2], real.shape[-1]
    # The rows every first-layer matmul reads, built in place: fake, real, x_hat, each with a.
    xa = real.new_empty(*real.shape[:-2], 3 * b, d + a.shape[-1])
    xa[..., :b, :d] = fake
    xa[..., b : 2 * b, :d] = real
    torch.add(alpha * real, (1 - alpha) * fake, out=xa[..., 2 * b :, :d])  # x_hat
    xa[..., d:].unflatten(-2, (3, b)).copy_(a.unsqueeze(-3))
    return _MLPGradientPenalty.apply(w1, b1, w2, b2, xa, d, gp_lambda)


def _in_out(w: torch.Tensor) -> torch.Tensor:
    """A weight as (.., in, out): stacked weights are stored so, nn.Linear's are (out, in)."""
    return w if w.dim() == 3 else w.t()


class _MLPGradientPenalty(torch.autograd.Function):
    # Layouts: solo weights are (out, in) and multiply as x @ w.T; stacked ones are (K, in, out)
    # and multiply as x @ w (bmm): each side makes the calls autograd made for it before, so a
    # pack member's numbers stay its solo run's (bit for bit where the BLAS rounds a bmm as the
    # mm, as MKL does on the Intel Xeons here; an ulp apart elsewhere). Rows: fake, real (the
    # score's 2B), x_hat (B).
    # The two (.., 3B, .) buffers are reused rather than concatenated: ``xa`` (the inputs) holds
    # the weight gradient's columns in backward, ``rows`` the hidden-layer gradients, then w2's.
    # Both belong to this call alone, so backward may overwrite them (a second backward through
    # the same graph fails autograd's saved-tensor version check instead of reading them).
    @staticmethod
    def forward(ctx, w1, b1, w2, b2, xa, d, gp_lambda):
        stacked = w1.dim() == 3
        b = xa.shape[-2] // 3
        pre = torch.baddbmm(b1, xa, w1) if stacked else torch.addmm(b1, xa, w1.t())
        pre_s, pre_h = pre[..., : 2 * b, :], pre[..., 2 * b :, :]
        h_s = F.leaky_relu(pre_s, 0.2)
        score = torch.baddbmm(b2, h_s, w2) if stacked else torch.addmm(b2, h_s, w2.t())  # (.., 2B, 1)
        # The score's gradient at x_hat: leaky ReLU's slope mask times w2, back through the x columns of w1.
        slope = torch.ops.aten.leaky_relu_backward(torch.ones_like(pre_h), pre_h, 0.2, False)  # 1 or 0.2, as autograd's
        rows = pre.new_empty(pre.shape)
        gp_pre = torch.mul(slope, _in_out(w2).mT, out=rows[..., 2 * b :, :])  # (.., B, H)
        g = gp_pre @ _in_out(w1)[..., :d, :].mT  # (.., B, D)
        n = g.norm(2, dim=-1)
        gp = torch.as_tensor(gp_lambda, dtype=n.dtype, device=n.device)
        penalty = ((n - 1) ** 2).mean(dim=-1)
        loss = score[..., :b, 0].mean(dim=-1) - score[..., b:, 0].mean(dim=-1) + gp * penalty
        ctx.save_for_backward(w1, w2, xa, pre_s, h_s, slope, rows, g, n, gp)
        return loss

    @staticmethod
    def backward(ctx, grad):
        w1, w2, xa, pre_s, h_s, slope, rows, g, n, gp = ctx.saved_tensors
        stacked = w1.dim() == 3
        b, d = g.shape[-2], g.shape[-1]
        go = grad.reshape(*grad.shape, 1, 1)  # (.., 1, 1)
        # The score rows: +1/B for fake, -1/B for real, as the two means' backward.
        dscore = torch.cat([(go / b).expand(*go.shape[:-2], b, 1), (-go / b).expand(*go.shape[:-2], b, 1)], dim=-2)
        dpre_s = torch.ops.aten.leaky_relu_backward.grad_input(dscore @ _in_out(w2).mT, pre_s, 0.2, False,
                                                               grad_input=rows[..., : 2 * b, :])
        # The penalty: d/dg of lambda * mean((|g| - 1)^2), zero where |g| = 0 (as norm's backward).
        dn = (gp * grad).reshape(*grad.shape, 1) * 2 * (n - 1) / b
        dg = torch.where(n > 0, dn / n, 0.0).unsqueeze(-1) * g
        dgp_pre = dg @ _in_out(w1)[..., :d, :]  # (.., B, H)
        # The weight gradients, each in one matmul: w1 over the score's rows and the penalty's
        # (whose rows touch the x columns only: x_hat's inputs give way to dg and zeros), w2
        # from the score and from the slope mask's path.
        cols = xa  # its x_hat rows were read in forward only
        cols[..., 2 * b :, :d] = dg
        cols[..., 2 * b :, d:] = 0
        dw1 = cols.mT @ rows if stacked else rows.t() @ cols
        # Stacked, the biases' gradients keep the member dim's (K, 1, out) layout.
        db1, db2 = dpre_s.sum(dim=-2, keepdim=stacked), dscore.sum(dim=-2, keepdim=stacked)
        # w2's as a sum over rows, not a matrix-vector product, which mm and bmm round further
        # apart. Its rows go where dw1's were, now read.
        torch.mul(h_s, dscore, out=rows[..., : 2 * b, :])
        torch.mul(dgp_pre, slope, out=rows[..., 2 * b :, :])
        dw2 = rows.sum(dim=-2, keepdim=True)  # (.., 1, H)
        return dw1, db1, dw2.mT if stacked else dw2, db2, None, None, None


def lsgan_loss(score: torch.Tensor, target: torch.Tensor | float) -> torch.Tensor:
    """Least-squares GAN loss against a (possibly soft, per-sample) target."""
    if not isinstance(target, torch.Tensor):
        target = torch.full_like(score, target)
    return ((score - target) ** 2).mean()


def bce_loss(logit: torch.Tensor, target: float) -> torch.Tensor:
    """Binary cross-entropy of a raw score (the logit of "real") against a constant target."""
    return F.binary_cross_entropy_with_logits(logit, torch.full_like(logit, target))
