"""Fused trial arrays: every member of a `FusedTrainer` is its solo `Trainer` run.

On the CPU (float32, as the product trains) a member starts from its solo run's weights, draws
the same batches and noise and takes the same Adam steps (PyTorch's fused kernel, per member),
but its batched matmuls may round a gradient differently from the solo run's single ones
(1 ulp in the critic's output layer at the first step), and GAN training then carries such
ulps along: a few first-layer critic weights whose gradients are near zero take Adam's
normalised steps in another direction. Measured on these settings (2-3 epochs): weights <=
9.5e-4 apart relative to the tensor's norm (critic first layer; <= 3e-6 for every other
tensor), epoch losses <= 1.5e-4 relative, H/U/S/zsl_acc equal. The tolerances below are 3-5x
those, and below what one epoch on another random stream does (every tensor 0.03-0.47 apart,
losses 1e-2 relative).
"""

from __future__ import annotations

import pytest
import torch

from zsl_search.errors import ConfigError
from zsl_search.models import get_variant
from zsl_search.train import FusedTrainer, Trainer, can_fuse, pack_key
from zsl_search.train._fused import _FusedAdam

EPOCHS = 2
# Small enough to be cheap, big enough (syn_num, cls_epochs, rates) that H is not 0.
BASE = {"hidden": 64, "epochs": EPOCHS, "syn_num": 100, "cls_epochs": 5, "cls_pretrain_epochs": 2}
WGAN_MEMBERS = [  # member 1 has no classifier; members 0 and 2 share a seed and so one classifier
    dict(lr_g=3e-3, lr_d=3e-3, beta1=0.5, cls_weight=0.3, gp_lambda=10.0),
    dict(lr_g=1e-3, lr_d=2e-3, beta1=0.0, cls_weight=0.0, gp_lambda=1.0),
    dict(lr_g=2e-3, lr_d=1e-3, beta1=0.9, beta2=0.99, cls_weight=1.0, gp_lambda=5.0),
]
WGAN_SEEDS = [3, 7, 3]
CGAN_MEMBERS = [dict(lr_g=2e-3, lr_d=2e-3, cls_weight=0.3), dict(lr_g=1e-3, lr_d=3e-3, beta1=0.0, cls_weight=0.0)]
CGAN_SEEDS = [1, 2]
LOSS_TOL = dict(rel=5e-4, abs=1e-5)
WEIGHT_RTOL = 5e-3  # |member - solo| / |solo| per tensor


def _params(variant: str, members: list[dict], **over) -> list:
    v = get_variant(variant)
    return [v.make_params({**BASE, **m, **over}) for m in members]


def _solo(split, variant: str, params, seed: int) -> dict:
    t = Trainer(split, variant=variant, params=params, seed=seed, device="cpu")
    losses = [t.train_epoch() for _ in range(params.epochs)]
    return {"losses": losses, "weights": t.gan.state_dict(), "metrics": t.evaluate().as_dict()}


@pytest.fixture(scope="module")
def wgan_solo(demo_split) -> list[dict]:
    return [_solo(demo_split, "fclswgan", p, s) for p, s in zip(_params("fclswgan", WGAN_MEMBERS), WGAN_SEEDS)]


def _assert_weights_close(got: dict, want: dict) -> None:
    for key, w in want.items():
        gap = float((got[key] - w).norm() / w.norm().clamp_min(1e-12))  # relative, over the whole tensor
        assert gap <= WEIGHT_RTOL, (key, gap)


def _assert_member_is_solo(fused: FusedTrainer, k: int, losses: list[list[dict]], solo: dict) -> None:
    for epoch, row in enumerate(solo["losses"]):
        got = losses[epoch][k]
        assert got["step"] == row["step"] and "diverged" not in got
        assert got["loss_d"] == pytest.approx(row["loss_d"], **LOSS_TOL), (k, epoch)
        assert got["loss_g"] == pytest.approx(row["loss_g"], **LOSS_TOL), (k, epoch)
    state = fused.member_state(k)
    assert state.keys() == solo["weights"].keys()
    _assert_weights_close(state, solo["weights"])
    metrics = fused.evaluate(k).as_dict()
    for key in ("H", "U", "S", "zsl_acc"):  # accuracies: any difference would be a flipped prediction
        assert metrics[key] == pytest.approx(solo["metrics"][key], abs=1e-6), (k, key)


def test_fclswgan_members_are_their_solo_runs(demo_split, wgan_solo) -> None:
    fused = FusedTrainer(demo_split, variant="fclswgan", params=_params("fclswgan", WGAN_MEMBERS), seeds=WGAN_SEEDS,
                         device="cpu")
    assert fused.classifiers[1] is None and fused.classifiers[0] is fused.classifiers[2]  # one per seed
    losses = [fused.train_epoch() for _ in range(EPOCHS)]
    for k, solo in enumerate(wgan_solo):
        _assert_member_is_solo(fused, k, losses, solo)
    assert max(s["metrics"]["H"] for s in wgan_solo) > 0  # the metric comparison compares something


def test_cgan_members_are_their_solo_runs(demo_split) -> None:
    params = _params("cgan", CGAN_MEMBERS, epochs=3)
    fused = FusedTrainer(demo_split, variant="cgan", params=params, seeds=CGAN_SEEDS, device="cpu")
    losses = [fused.train_epoch() for _ in range(3)]
    solos = [_solo(demo_split, "cgan", p, s) for p, s in zip(params, CGAN_SEEDS)]
    for k, solo in enumerate(solos):
        _assert_member_is_solo(fused, k, losses, solo)


def test_linear_decay_and_given_classifiers(demo_split) -> None:
    """Per-member rates decay on the solo schedule; a classifier handed in (as a search's store
    would) is used as the solo run uses its own."""
    params = _params("fclswgan", WGAN_MEMBERS[:2], lr_decay="linear")
    solos = [Trainer(demo_split, variant="fclswgan", params=p, seed=s, device="cpu") for p, s in zip(params, [5, 6])]
    fused = FusedTrainer(demo_split, variant="fclswgan", params=params, seeds=[5, 6], device="cpu",
                         classifiers=[solos[0].classifier, None])
    assert fused.classifiers[0] is solos[0].classifier
    losses = [fused.train_epoch() for _ in range(EPOCHS)]
    for k, solo in enumerate(solos):
        rows = [solo.train_epoch() for _ in range(EPOCHS)]
        for epoch, row in enumerate(rows):
            assert losses[epoch][k]["loss_g"] == pytest.approx(row["loss_g"], **LOSS_TOL)
        _assert_weights_close(fused.member_state(k), solo.gan.state_dict())


def test_zswgan_without_projection_fuses(demo_split) -> None:
    params = _params("zswgan", WGAN_MEMBERS[:2], epochs=1)
    fused = FusedTrainer(demo_split, variant="zswgan", params=params, seeds=[0, 1], device="cpu")
    (losses,) = [fused.train_epoch()]
    for k, (p, s) in enumerate(zip(params, [0, 1])):
        solo = Trainer(demo_split, variant="zswgan", params=p, seed=s, device="cpu").train_epoch()
        assert losses[k]["loss_d"] == pytest.approx(solo["loss_d"], **LOSS_TOL)
        assert losses[k]["loss_g"] == pytest.approx(solo["loss_g"], **LOSS_TOL)


def test_dropping_a_member_leaves_the_others_unchanged(demo_split, wgan_solo) -> None:
    fused = FusedTrainer(demo_split, variant="fclswgan", params=_params("fclswgan", WGAN_MEMBERS), seeds=WGAN_SEEDS,
                         device="cpu")
    first = fused.train_epoch()
    fused.drop(1)
    assert len(fused) == 2 and fused.ids == [0, 2] and fused.seeds == [3, 3]
    assert fused.g[0].shape[0] == 2 and fused.opt_d.exp_avg_sq[0].shape[0] == 2 and fused.cls_w.shape[0] == 2
    second = fused.train_epoch()
    losses = [[first[0], first[2]], second]
    for k, solo in enumerate([wgan_solo[0], wgan_solo[2]]):
        _assert_member_is_solo(fused, k, losses, solo)
    fused.keep([])  # the last members stopped: nothing left to train
    assert fused.train_epoch() == []


def test_a_pack_resumes_from_its_checkpoint_exactly(demo_split) -> None:
    """state_dict after a member was dropped, loaded into a freshly built pack: the next epoch
    is the uninterrupted pack's, bit for bit."""
    params = _params("fclswgan", WGAN_MEMBERS, epochs=3)
    first = FusedTrainer(demo_split, variant="fclswgan", params=params, seeds=WGAN_SEEDS, device="cpu")
    first.train_epoch()
    first.drop(1)
    state = first.state_dict()
    again = FusedTrainer(demo_split, variant="fclswgan", params=params, seeds=WGAN_SEEDS, device="cpu")
    again.load_state_dict(state)
    assert again.ids == [0, 2] and again.epoch == 1
    assert again.train_epoch() == first.train_epoch()
    with pytest.raises(ConfigError, match=r"another run, with member 0 \w+=.* \(this run: member 0 \w+="):
        FusedTrainer(demo_split, variant="fclswgan", params=_params("fclswgan", WGAN_MEMBERS[::-1], epochs=3),
                     seeds=WGAN_SEEDS, device="cpu").load_state_dict(state)


def test_a_pack_refuses_a_checkpoint_of_other_data(demo_split, demo_dir) -> None:
    """Another --preprocess (same sizes, other values) or another feature size: one clear error
    before any weight is copied, not a size-mismatch traceback."""
    import dataclasses

    from zsl_search.data import load_xlsa, make_split

    params = _params("cgan", CGAN_MEMBERS, epochs=1)
    state = FusedTrainer(demo_split, variant="cgan", params=params, seeds=CGAN_SEEDS, device="cpu").state_dict()
    l2 = make_split(load_xlsa(demo_dir), "validation", seed=0, preprocess="l2")
    narrow = dataclasses.replace(demo_split, **{k: getattr(demo_split, k)[:, :100]
                                                for k in ("train_x", "seen_x", "unseen_x")})
    for split, message in ((l2, "checkpoint was trained on other data"),
                           (narrow, "checkpoint was written for another dataset")):
        pack = FusedTrainer(split, variant="cgan", params=params, seeds=CGAN_SEEDS, device="cpu")
        with pytest.raises(ConfigError, match=message):
            pack.load_state_dict(state)
        assert pack.ids == [0, 1] and pack.epoch == 0


def test_fused_adam_is_torch_adam_bit_for_bit() -> None:
    """Per-member rates and betas, a decaying rate, beta1 0 included: exactly torch's Adam."""
    gen = torch.Generator().manual_seed(0)
    betas, lrs = [(0.5, 0.999), (0.0, 0.99), (0.9, 0.9)], [1e-3, 3e-4, 2e-2]
    stacked = [torch.randn(3, 5, 7, generator=gen), torch.randn(3, 1, 7, generator=gen)]
    solo = [[t[k].clone().requires_grad_(True) for t in stacked] for k in range(3)]
    opts = [torch.optim.Adam(ps, lr=lr, betas=b, fused=True) for ps, lr, b in zip(solo, lrs, betas)]  # as Trainer
    fused = _FusedAdam([t.clone().requires_grad_(True) for t in stacked], betas)
    for step in range(6):
        factor = 1.0 - step / 6
        grads = [torch.randn(t.shape, generator=gen) for t in stacked]
        fused.step(grads, [lr * factor for lr in lrs])
        for k, opt in enumerate(opts):
            for p, g in zip(solo[k], grads):
                p.grad = g[k].clone()
            for group in opt.param_groups:
                group["lr"] = lrs[k] * factor
            opt.step()
    for k in range(3):
        for p, f in zip(solo[k], fused.params):
            assert torch.equal(p.detach(), f[k]), k


def test_members_must_share_shapes_and_schedule(demo_split) -> None:
    v = get_variant("fclswgan")
    a, b = v.make_params({**BASE, "lr_g": 1e-3}), v.make_params({**BASE, "lr_g": 2e-3, "gp_lambda": 3.0})
    wide = v.make_params({**BASE, "hidden": 128})
    assert pack_key("fclswgan", a) == pack_key("fclswgan", b)
    assert pack_key("fclswgan", a) != pack_key("fclswgan", wide)
    assert pack_key("fclswgan", a) != pack_key("zswgan", get_variant("zswgan").make_params(BASE))
    assert pack_key("fclswgan", a) != pack_key("fclswgan", v.make_params({**BASE, "n_critic": 3}))
    with pytest.raises(ConfigError, match="'hidden'"):
        FusedTrainer(demo_split, variant="fclswgan", params=[a, wide], seeds=[0, 1], device="cpu")
    with pytest.raises(ConfigError, match="'epochs'"):
        FusedTrainer(demo_split, variant="fclswgan", params=[a, v.make_params({**BASE, "epochs": 3})], seeds=[0, 1],
                     device="cpu")
    assert can_fuse("zswgan", get_variant("zswgan").make_params({"project_att": False}))
    assert not can_fuse("zswgan", get_variant("zswgan").make_params({"project_att": True}))
    assert not can_fuse("cosgan", get_variant("cosgan").make_params())
    with pytest.raises(ConfigError, match="cannot be fused"):
        FusedTrainer(demo_split, variant="cosgan", params=[get_variant("cosgan").make_params(BASE)], seeds=[0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_members_are_their_solo_runs_on_cuda(demo_split) -> None:
    params = _params("fclswgan", WGAN_MEMBERS, epochs=1)
    fused = FusedTrainer(demo_split, variant="fclswgan", params=params, seeds=WGAN_SEEDS, device="cuda")
    losses = fused.train_epoch()
    for k, (p, s) in enumerate(zip(params, WGAN_SEEDS)):
        solo = Trainer(demo_split, variant="fclswgan", params=p, seed=s, device="cuda").train_epoch()
        # cuBLAS batched and single GEMMs (and TF32 if enabled) round differently: looser.
        assert losses[k]["loss_d"] == pytest.approx(solo["loss_d"], rel=1e-3, abs=1e-4)
        assert losses[k]["loss_g"] == pytest.approx(solo["loss_g"], rel=1e-3, abs=1e-4)
