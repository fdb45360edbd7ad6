"""The variant registry and every variant's networks and losses (a contract suite)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _variants import BUILT_IN, contract_variants

from zsl_search.errors import ConfigError
from zsl_search.models import Batch, Categorical, Float, Int, get_variant, variant_names

VARIANTS = contract_variants()  # at collection: the registry, the sixth (plugin) variant included


def test_registry_lists_the_built_in_variants_and_the_plugin() -> None:
    assert {*BUILT_IN, "hingegan"} <= set(variant_names())


def test_unknown_variant_lists_valid_names() -> None:
    valid = ", ".join(variant_names())
    with pytest.raises(ConfigError, match=re.escape(f"unknown variant 'nope'; valid variants: {valid}")):
        get_variant("nope")


def test_a_plugin_variant_is_listed_by_the_cli() -> None:
    """The sixth variant is one module on the path, named in ZSL_SEARCH_PLUGINS: nothing else."""
    tests = str(Path(__file__).parent)
    env = {**os.environ, "ZSL_SEARCH_PLUGINS": "_sixth_variant",
           "PYTHONPATH": os.pathsep.join(p for p in (tests, os.environ.get("PYTHONPATH")) if p)}
    r = subprocess.run([sys.executable, "-m", "zsl_search.cli", "variants"], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert {*BUILT_IN, "hingegan"} <= {line.split()[0] for line in r.stdout.splitlines()}


def test_params_coerce_strings_and_reject_unknown_names() -> None:
    v = get_variant("filmwgan")
    p = v.make_params({"lr_g": "2e-4", "film_depth": "3", "hidden": 64})
    assert (p.lr_g, p.film_depth, p.hidden) == (2e-4, 3, 64)
    with pytest.raises(ConfigError, match="unknown hyperparameter 'lambda1' for variant 'filmwgan'"):
        v.make_params({"lambda1": 1})
    with pytest.raises(ConfigError, match="'film_depth' must be between 1 and 4"):
        v.make_params({"film_depth": 5})
    with pytest.raises(ConfigError, match="'hidden': 'wide' is not a valid int"):
        v.make_params({"hidden": "wide"})
    with pytest.raises(ConfigError, match="'n_critic': 1.5 is not a valid int"):
        v.make_params({"n_critic": 1.5})


@pytest.mark.parametrize(("key", "raw"), [("hidden", "1.5"), ("n_critic", "2.7"), ("epochs", "1.7"), ("hidden", "inf"),
                                          ("hidden", "nan"), ("hidden", float("inf"))])
def test_int_params_reject_fractions_instead_of_truncating(key: str, raw) -> None:
    with pytest.raises(ConfigError, match=rf"'{key}': {re.escape(repr(raw))} is not a valid int"):
        get_variant("fclswgan").make_params({key: raw})
    p = get_variant("fclswgan").make_params({"hidden": "2.0", "n_critic": "1e1", "epochs": 3.0})
    assert (p.hidden, p.n_critic, p.epochs) == (2, 10, 3)
    assert get_variant("fclswgan").make_params({"syn_num": "123456789012345678901"}).syn_num == 123456789012345678901


@pytest.mark.parametrize("raw", ["inf", "-inf", "nan", "Infinity", float("inf"), float("nan")])
def test_float_params_reject_non_finite_values(raw) -> None:
    with pytest.raises(ConfigError, match=rf"hyperparameter 'lr_g': {re.escape(repr(raw))} is not a finite number"):
        get_variant("fclswgan").make_params({"lr_g": raw})


@pytest.mark.parametrize(("source", "kind", "first"), [
    ("import math\nraise RuntimeError('boom\\nsecond line')\n", "RuntimeError", "boom"),
    ("def broken(:\n", "SyntaxError", "invalid syntax"),
    ("x = {}['missing']\n", "KeyError", "'missing'"),
])
def test_a_plugin_failing_on_import_is_one_line_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          source: str, kind: str, first: str) -> None:
    from zsl_search.models import load_plugins

    name = f"_failing_plugin_{kind.lower()}"
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError) as e:
        load_plugins([name])
    message = str(e.value)
    assert message.startswith(f"variant plugin {name!r} failed while importing ({kind}: {first}")
    assert f'python -c "import {name}"' in message and "\n" not in message and "second line" not in message
    with pytest.raises(ConfigError, match="cannot be imported"):  # a missing module keeps its own message
        load_plugins(["_no_such_plugin_module"])


def test_a_plugin_calling_sys_exit_on_import_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # It would end every command with its exit code and no word of why.
    from zsl_search.models import load_plugins

    (tmp_path / "_exiting_plugin.py").write_text("import sys\nsys.exit(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match=r"variant plugin '_exiting_plugin' called sys.exit\(3\) while importing"):
        load_plugins(["_exiting_plugin"])


def test_per_dataset_reference_defaults() -> None:
    f = get_variant("fclswgan")
    assert f.make_params(dataset="AWA1").lr_g == 1e-5 and f.make_params(dataset="AWA1").syn_num == 1800
    assert f.make_params(dataset="FLO").cls_weight == 0.1
    assert f.make_params(dataset="unknown-set").lr_g == 1e-4  # generic f-CLSWGAN defaults
    z = get_variant("zswgan").make_params(dataset="CUB")
    assert (z.nz, z.hidden, z.syn_num, z.epochs) == (300, 4400, 500, 100)
    c = get_variant("cosgan").make_params()
    assert (c.lr_g, c.lr_d, c.lr_decay, c.spectral_norm) == (5e-5, 2e-4, "linear", True)


@pytest.mark.parametrize("name", VARIANTS)
def test_search_space_is_valid_for_the_defaults(name: str) -> None:
    v = get_variant(name)
    assert v.space, "every variant declares a default search space"
    for key, dist in v.space.items():
        assert isinstance(dist, (Float, Int, Categorical))
        if isinstance(dist, (Float, Int)):
            assert dist.low < dist.high


def _batch(n_seen: int = 4, att_dim: int = 6, feat_dim: int = 10, b: int = 8) -> Batch:
    g = torch.Generator().manual_seed(0)
    att = torch.rand(n_seen, att_dim, generator=g)
    y = torch.arange(b) % n_seen
    return Batch(real=torch.rand(b, feat_dim, generator=g), y=y, a=att[y], att=att, rng=g, progress=0.3)


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_contract(name: str) -> None:
    """Every variant: non-negative (B, D) features, finite scalar losses that reach the right nets."""
    v = get_variant(name)
    gan = v.build(feat_dim=10, att_dim=6, n_seen=4, params=v.make_params({"hidden": 32, "nz": 5}))
    batch = _batch()
    fake = gan.generator(torch.randn(8, gan.nz), batch.a)
    assert fake.shape == (8, 10) and bool((fake >= 0).all())
    d_loss = gan.critic_loss(batch, fake.detach())
    assert d_loss.dim() == 0 and torch.isfinite(d_loss)
    d_loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in gan.critic_parameters())
    assert all(p.grad is None for p in gan.generator.parameters())
    gan.zero_grad()
    g_loss = gan.generator_loss(batch, gan.generator(torch.randn(8, gan.nz), batch.a))
    assert g_loss.dim() == 0 and torch.isfinite(g_loss)
    g_loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in gan.generator.parameters())


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_film_depth_is_the_number_of_modulated_layers(depth: int) -> None:
    v = get_variant("filmwgan")
    gan = v.build(feat_dim=10, att_dim=6, n_seen=4, params=v.make_params({"hidden": 32, "film_depth": depth}))
    assert len(gan.generator.films) == depth and len(gan.critic.films) == depth
    out = gan.critic(torch.rand(3, 10), torch.rand(3, 6))
    assert out.shape == (3, 1)


def test_film_attribute_only_enters_through_film() -> None:
    v = get_variant("filmwgan")
    gan = v.build(feat_dim=10, att_dim=6, n_seen=4, params=v.make_params({"hidden": 32, "nz": 5}))
    assert gan.generator.layers[0].in_features == 5  # noise only, no concat(z, a)
    assert gan.critic.layers[0].in_features == 10


def test_zswgan_projection_maps_attributes_to_nz() -> None:
    v = get_variant("zswgan")
    gan = v.build(feat_dim=10, att_dim=6, n_seen=4, params=v.make_params({"hidden": 32, "nz": 5, "project_att": True}))
    assert gan.generator.proj[0].out_features == 5 and isinstance(gan.generator.proj[1], torch.nn.Tanh)
    assert isinstance(gan.critic.proj[1], torch.nn.LeakyReLU)
    assert gan.generator(torch.randn(2, 5), torch.rand(2, 6)).shape == (2, 10)


def test_cosgan_critic_is_spectrally_normalised() -> None:
    v = get_variant("cosgan")
    gan = v.build(feat_dim=10, att_dim=6, n_seen=4, params=v.make_params({"hidden": 32}))
    assert hasattr(gan.critic.score, "parametrizations")
    plain = v.build(feat_dim=10, att_dim=6, n_seen=4, params=v.make_params({"hidden": 32, "spectral_norm": False}))
    assert not hasattr(plain.critic.score, "parametrizations")


def test_cosgan_initialises_the_weights_spectral_norm_normalises() -> None:
    """init_normal reaches a spectral-norm layer's stored weight (``parametrizations.weight.original``),
    and the spectral-norm estimate belongs to the new weight (largest singular value 1)."""
    v = get_variant("cosgan")
    torch.manual_seed(0)
    gan = v.build(feat_dim=64, att_dim=16, n_seen=8, params=v.make_params({"hidden": 256}))
    layers = [m for m in gan.critic.modules() if hasattr(m, "parametrizations")]
    assert layers
    for layer in layers:
        original = layer.parametrizations.weight.original
        assert abs(float(original.detach().std()) - 0.02) < 0.004  # N(0, 0.02), not nn.Linear's uniform default
        assert float(torch.linalg.matrix_norm(layer.weight.detach(), 2)) == pytest.approx(1.0, abs=0.05)


def test_the_wgan_space_reaches_every_reference_default() -> None:
    """Warm start begins at the reference defaults; one outside the space would be dropped."""
    for name in variant_names():
        v = get_variant(name)
        for dataset in v.dataset_defaults:
            defaults = v.defaults(dataset)
            outside = [k for k, d in v.space.items() if not d.contains(defaults[k])]
            assert not outside, (name, dataset, outside)


def test_leaky_relu_has_autograds_values_and_first_and_second_derivatives() -> None:
    """The critics' leaky ReLU: F.leaky_relu's output and gradient, and a zero second derivative
    that autograd never builds (the gradient penalty differentiates the critic twice)."""
    from torch.autograd import gradcheck, gradgradcheck

    from zsl_search.models.base import leaky_relu

    x = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    assert torch.equal(leaky_relu(x, 0.2), torch.nn.functional.leaky_relu(x, 0.2))
    assert gradcheck(lambda t: leaky_relu(t, 0.2), (x,))
    assert gradgradcheck(lambda t: leaky_relu(t, 0.2), (x,))
    (g,) = torch.autograd.grad(leaky_relu(x, 0.2).sum(), x, create_graph=True)
    (want,) = torch.autograd.grad(torch.nn.functional.leaky_relu(x, 0.2).sum(), x, create_graph=True)
    assert torch.equal(g, want)
    assert want.grad_fn is not None and g.grad_fn is None  # autograd's builds a zero second derivative; ours none


@pytest.mark.parametrize("name", ["fclswgan", "filmwgan"])
def test_wgan_gp_critic_loss_is_the_textbook_loss(name: str) -> None:
    """One critic call on fake + real rows and the cheap leaky ReLU: the textbook WGAN-GP loss
    (three calls, autograd's leaky ReLU) and its weight gradients, to float rounding."""
    from zsl_search.models import _nets, base

    v = get_variant(name)
    torch.manual_seed(0)
    gan = v.build(feat_dim=16, att_dim=6, n_seen=4, params=v.make_params({"hidden": 32, "film_depth": 2}
                                                                           if name == "filmwgan" else {"hidden": 32}))
    real, fake, a = torch.rand(8, 16), torch.rand(8, 16), torch.rand(8, 6)

    def loss_and_grads(loss_fn):
        loss = loss_fn(gan.critic, real, fake, a, gp_lambda=10.0, rng=torch.Generator().manual_seed(1))
        return loss, torch.autograd.grad(loss, list(gan.critic.parameters()))

    def textbook(critic, real, fake, a, *, gp_lambda, rng):
        alpha = torch.rand(real.shape[0], 1, generator=rng)
        x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x_hat, a).sum(), x_hat, create_graph=True)
        penalty = ((grad.norm(2, dim=1) - 1) ** 2).mean()
        return critic(fake, a).mean() - critic(real, a).mean() + gp_lambda * penalty

    loss, grads = loss_and_grads(base.wgan_gp_critic_loss)
    module = sys.modules[type(gan.critic).__module__]
    with pytest.MonkeyPatch.context() as mp:  # autograd's own leaky ReLU wherever the critic calls ours
        mp.setattr(_nets, "leaky_relu", torch.nn.functional.leaky_relu)
        if hasattr(module, "leaky_relu"):
            mp.setattr(module, "leaky_relu", torch.nn.functional.leaky_relu)
        want_loss, want_grads = loss_and_grads(textbook)
    torch.testing.assert_close(loss, want_loss)
    for got, want in zip(grads, want_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


def test_mlp_wgan_gp_loss_is_autograds_double_backward_and_stacks_per_member() -> None:
    """The written-out WGAN-GP loss of the `Critic` MLP: in float64 its value and weight
    gradients are autograd's double backward through the textbook loss to 1e-12, and stacked
    over members (a pack's layout) each member's are its solo values to float64 rounding: bit
    for bit where the BLAS rounds a member's bmm as the solo mm (MKL on the Intel Xeons here),
    an ulp or two apart where it does not (the AMD EPYCs here: 4e-16 and 9e-16 in w1 and w2)."""
    from zsl_search.models import _nets

    torch.manual_seed(0)
    k, b, d, a_dim, h = 3, 8, 16, 6, 32
    critics = [_nets.Critic(d, a_dim, h).double() for _ in range(k)]
    real, fake, a, alpha = (torch.rand(k, b, n, dtype=torch.float64) for n in (d, d, a_dim, 1))

    def textbook(c: torch.nn.Module, i: int) -> torch.Tensor:
        x_hat = (alpha[i] * real[i] + (1 - alpha[i]) * fake[i]).requires_grad_(True)
        (grad,) = torch.autograd.grad(c(x_hat, a[i]).sum(), x_hat, create_graph=True)
        return c(fake[i], a[i]).mean() - c(real[i], a[i]).mean() + 7.0 * ((grad.norm(2, dim=1) - 1) ** 2).mean()

    solo = []
    for i, c in enumerate(critics):
        w1, b1, w2, b2 = c.net[0].weight, c.net[0].bias, c.net[2].weight, c.net[2].bias
        loss = _nets.mlp_wgan_gp_loss(w1, b1, w2, b2, real[i], fake[i], a[i], alpha[i], gp_lambda=7.0)
        grads = torch.autograd.grad(2.5 * loss, [w1, b1, w2, b2])
        want = textbook(c, i)
        want_grads = torch.autograd.grad(2.5 * want, [w1, b1, w2, b2])
        torch.testing.assert_close(loss, want, rtol=1e-12, atol=1e-12)
        for got, exp in zip(grads, want_grads, strict=True):
            torch.testing.assert_close(got, exp, rtol=1e-12, atol=1e-12)
        solo.append((loss, grads))

    stacked = [torch.stack([c.net[0].weight.detach().t() for c in critics]),
               torch.stack([c.net[0].bias.detach() for c in critics]).unsqueeze(1),
               torch.stack([c.net[2].weight.detach().t() for c in critics]),
               torch.stack([c.net[2].bias.detach() for c in critics]).unsqueeze(1)]
    stacked = [t.requires_grad_(True) for t in stacked]
    losses = _nets.mlp_wgan_gp_loss(*stacked, real, fake, a, alpha, gp_lambda=torch.full((k,), 7.0, dtype=torch.float64))
    grads = torch.autograd.grad((2.5 * losses).sum(), stacked)
    close = dict(rtol=1e-12, atol=1e-14)  # members swapped: off by up to 2.5
    for i, (loss, (w1, b1, w2, b2)) in enumerate(solo):
        torch.testing.assert_close(losses[i], loss, **close)
        for got, want in ((grads[0][i].t(), w1), (grads[1][i, 0], b1), (grads[2][i].t(), w2), (grads[3][i, 0], b2)):
            torch.testing.assert_close(got, want, **close)


def test_mlp_wgan_gp_loss_second_backward_fails_instead_of_reading_reused_buffers() -> None:
    """Its backward reuses the forward's buffers for the gradients' rows, so a second backward
    through the same graph must raise (autograd's saved-tensor check), never compute from them."""
    from zsl_search.models import _nets

    torch.manual_seed(0)
    critic = _nets.Critic(8, 4, 16)
    w1, b1, w2, b2 = critic.net[0].weight, critic.net[0].bias, critic.net[2].weight, critic.net[2].bias
    loss = _nets.mlp_wgan_gp_loss(w1, b1, w2, b2, torch.rand(4, 8), torch.rand(4, 8), torch.rand(4, 4),
                                  torch.rand(4, 1), gp_lambda=10.0)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_film_critic_wgan_gp_loss_is_autograds_double_backward(depth: int) -> None:
    """FiLM-WGAN's written-out WGAN-GP loss (every FiLM placement, depths 1-4): in float64 its
    value and every critic weight's gradient are autograd's double backward through the
    textbook loss to 1e-10, and the variant's critic loss takes this path."""
    v = get_variant("filmwgan")
    torch.manual_seed(depth)
    gan = v.build(feat_dim=16, att_dim=6, n_seen=4, params=v.make_params({"hidden": 32, "film_depth": depth}))
    critic = gan.critic.double()
    with torch.no_grad():
        for p in critic.parameters():  # non-zero biases, FiLM slopes on both sides of zero
            p.normal_(0.0, 0.3)
    real, fake, a, alpha = (torch.rand(8, n, dtype=torch.float64) for n in (16, 16, 6, 1))
    params = list(critic.parameters())

    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat, a).sum(), x_hat, create_graph=True)
    want = critic(fake, a).mean() - critic(real, a).mean() + 7.0 * ((grad.norm(2, dim=1) - 1) ** 2).mean()
    got = critic.wgan_gp_loss(real, fake, a, alpha, gp_lambda=7.0)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    for name, g, w in zip([n for n, _ in critic.named_parameters()], torch.autograd.grad(2.5 * got, params),
                          torch.autograd.grad(2.5 * want, params), strict=True):
        # Some gradients are exactly 0: the score's bias (+1/B on fake rows, -1/B on real ones)
        # and a FiLM beta whose shift reaches the score linearly. Every layer's and gamma's
        # weights have one, so the comparison means something.
        assert not (name.endswith("weight") and "beta" not in name and w.abs().sum() == 0), name
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12, msg=name)

    batch = Batch(real=real, y=torch.zeros(8, dtype=torch.long), a=a, att=a[:4], rng=torch.Generator().manual_seed(0),
                  progress=0.0)
    # The variant's own critic loss (through the shared `wgan_gp_critic_loss`) takes this path.
    assert type(gan.double().critic_loss(batch, fake).grad_fn).__name__ == "_FiLMPenaltyBackward"
