"""Tests for zsl_search.eval: hand-computed metrics, the softmax classifier, the GZSL protocol."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from zsl_search.errors import ConfigError
from zsl_search.eval import (
    EvalResult,
    evaluate_gzsl,
    fit_softmax,
    harmonic_mean,
    per_class_accuracy,
    precision_at_k,
    retrieval_map,
)

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- toy data


@dataclass(frozen=True)
class ToySplit:
    """Stand-in for zsl_search.data.Split: the same tensors and size attributes, nothing else."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    seen_x: torch.Tensor
    seen_y: torch.Tensor
    unseen_x: torch.Tensor
    unseen_y: torch.Tensor
    att: torch.Tensor
    n_seen: int
    n_unseen: int

    @property
    def n_classes(self) -> int:
        return self.n_seen + self.n_unseen

    @property
    def feat_dim(self) -> int:
        return self.train_x.shape[1]

    @property
    def att_dim(self) -> int:
        return self.att.shape[1]


class Recorder:
    """Wraps a split and records every attribute evaluate_gzsl reads from it."""

    def __init__(self, inner: ToySplit) -> None:
        self._inner = inner
        self.read: set[str] = set()

    def __getattr__(self, name: str):
        self.read.add(name)
        return getattr(self._inner, name)


def toy_split(
    *, n_seen: int = 5, n_unseen: int = 10, dim: int = 32, per: int = 20, seed: int = 1000
) -> ToySplit:
    """Well-separated Gaussian clusters; the class attribute IS the class mean (so a perfect
    generator can return it). Seed kept away from the classifier seeds used below."""
    g = torch.Generator().manual_seed(seed)
    n_classes = n_seen + n_unseen
    means = 6 * torch.randn(n_classes, dim, generator=g)  # (C, D)

    def draw(classes: range, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.tensor(list(classes)).repeat_interleave(n)
        return means[y] + torch.randn(len(y), dim, generator=g), y

    train_x, train_y = draw(range(n_seen), per)
    seen_x, seen_y = draw(range(n_seen), per // 2)
    unseen_x, unseen_y = draw(range(n_seen, n_classes), per // 2)
    return ToySplit(train_x, train_y, seen_x, seen_y, unseen_x, unseen_y, means.clone(), n_seen, n_unseen)


def perfect_generator(att: torch.Tensor, n: int) -> torch.Tensor:
    return att.repeat_interleave(n, dim=0)  # (K * n, D): the true class mean n times, class-major


def noise_generator(att: torch.Tensor, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(77)
    return torch.randn(len(att) * n, att.shape[1], generator=g)


# ---------------------------------------------------------------- per-class accuracy / H


def test_per_class_accuracy_averages_classes_not_samples() -> None:
    # class A: 9 of 10 right; class B: 0 of 1 right
    target = torch.tensor([0] * 10 + [1])
    pred = torch.tensor([0] * 9 + [1] + [0])
    acc = per_class_accuracy(pred, target)
    assert isinstance(acc, float)
    assert acc == pytest.approx((0.9 + 0.0) / 2)
    assert acc != pytest.approx(9 / 11)  # per-sample accuracy


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.float32])
def test_per_class_accuracy_integer_like_tensors_use_float_division(dtype: torch.dtype) -> None:
    target = torch.tensor([2, 2, 2, 5, 5], dtype=dtype)
    pred = torch.tensor([2, 2, 5, 5, 2], dtype=dtype)
    assert per_class_accuracy(pred, target) == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_per_class_accuracy_edges() -> None:
    assert per_class_accuracy(torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long)) == 0.0
    # class 7 only predicted, never a target: it does not count
    assert per_class_accuracy(torch.tensor([7, 1]), torch.tensor([0, 1])) == pytest.approx(0.5)
    assert per_class_accuracy(torch.tensor([3, 3]), torch.tensor([3, 3])) == 1.0
    with pytest.raises(ValueError):
        per_class_accuracy(torch.tensor([0, 1]), torch.tensor([0]))


def test_harmonic_mean() -> None:
    assert harmonic_mean(0.0, 0.8) == 0.0
    assert harmonic_mean(0.8, 0.0) == 0.0
    assert harmonic_mean(0.0, 0.0) == 0.0
    assert harmonic_mean(0.5, 0.5) == pytest.approx(0.5)
    assert harmonic_mean(1.0, 0.5) == pytest.approx(2 / 3)
    assert isinstance(harmonic_mean(1, 1), float)


# ---------------------------------------------------------------- retrieval


def _gallery() -> tuple[torch.Tensor, torch.Tensor]:
    # 1-D gallery at positions 1..4, labels 1 0 1 0, stored out of order to exercise the sort
    x = torch.tensor([[3.0], [1.0], [4.0], [2.0]])
    y = torch.tensor([1, 1, 0, 0])
    return x, y


def test_retrieval_map_hand_computed() -> None:
    gx, gy = _gallery()
    # query at 0, label 1: ranking 1(1) 2(0) 3(1) 4(0) -> relevant at ranks 1 and 3
    ap1 = (1 / 1 + 2 / 3) / 2
    assert retrieval_map(torch.tensor([[0.0]]), torch.tensor([1]), gx, gy) == pytest.approx(ap1)
    # query at 2.6, label 0: ranking 3(1) 2(0) 4(0) 1(1) -> relevant at ranks 2 and 3
    ap2 = (1 / 2 + 2 / 3) / 2
    q = torch.tensor([[0.0], [2.6]])
    assert retrieval_map(q, torch.tensor([1, 0]), gx, gy) == pytest.approx((ap1 + ap2) / 2)
    # a query whose label has no gallery item contributes AP 0
    assert retrieval_map(torch.tensor([[0.0], [0.0]]), torch.tensor([1, 9]), gx, gy) == pytest.approx(ap1 / 2)
    assert retrieval_map(q[:0], torch.tensor([], dtype=torch.long), gx, gy) == 0.0


def test_retrieval_map_matches_brute_force() -> None:
    g = torch.Generator().manual_seed(5)
    q, ql = torch.randn(7, 6, generator=g), torch.randint(0, 3, (7,), generator=g)
    gx, gy = torch.randn(40, 6, generator=g), torch.randint(0, 3, (40,), generator=g)
    aps = []
    for i in range(len(q)):
        order = sorted(range(len(gx)), key=lambda j: float(((q[i] - gx[j]) ** 2).sum()))
        hits, precs = 0, []
        for rank, j in enumerate(order, start=1):
            if int(gy[j]) == int(ql[i]):
                hits += 1
                precs.append(hits / rank)
        aps.append(sum(precs) / len(precs) if precs else 0.0)
    assert retrieval_map(q, ql, gx, gy) == pytest.approx(sum(aps) / len(aps))


def test_precision_at_k_hand_computed() -> None:
    gx, gy = _gallery()
    q, ql = torch.tensor([[0.0], [2.6]]), torch.tensor([1, 0])
    one = (q[:1], ql[:1], gx, gy)
    assert precision_at_k(*one, k=1) == pytest.approx(1.0)
    assert precision_at_k(*one, k=2) == pytest.approx(0.5)
    assert precision_at_k(*one, k=3) == pytest.approx(2 / 3)
    assert precision_at_k(*one, k=100) == pytest.approx(2 / 4)  # k capped at the gallery size
    assert precision_at_k(q, ql, gx, gy, k=1) == pytest.approx((1 + 0) / 2)
    assert precision_at_k(q, ql, gx, gy, k=3) == pytest.approx(2 / 3)
    with pytest.raises(ConfigError):
        precision_at_k(q, ql, gx, gy, k=0)


# ---------------------------------------------------------------- softmax classifier


def _blobs(seed: int = 11) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    means = 4 * torch.randn(4, 20, generator=g)  # (4, 20)
    y = torch.arange(4).repeat_interleave(100)  # (400,)
    return means[y] + torch.randn(400, 20, generator=g), y


def test_fit_softmax_learns_separable_data() -> None:
    x, y = _blobs()
    epochs_seen: list[int] = []
    layer = fit_softmax(x, y, 4, epochs=20, batch_size=32, seed=0, on_epoch=lambda e, _: epochs_seen.append(e))
    with torch.no_grad():
        acc = (layer(x).argmax(1) == y).float().mean().item()
    assert acc > 0.95
    assert epochs_seen == list(range(20))
    assert tuple(layer.weight.shape) == (4, 20)


def test_fit_softmax_is_seed_deterministic_and_leaves_global_rng_alone() -> None:
    x, y = _blobs()
    state = torch.get_rng_state()
    a = fit_softmax(x, y, 4, epochs=3, batch_size=50, seed=3)
    b = fit_softmax(x, y, 4, epochs=3, batch_size=50, seed=3)
    c = fit_softmax(x, y, 4, epochs=3, batch_size=50, seed=4)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    assert not torch.equal(a.weight, c.weight)


@pytest.mark.parametrize("max_steps", [None, 23])
def test_fit_softmax_is_the_autograd_adam_loop_written_out(monkeypatch: pytest.MonkeyPatch, max_steps) -> None:
    # batch 48 leaves a short last batch (400 = 8 * 48 + 16); max_steps stops inside an epoch.
    from zsl_search.eval import _classifier

    x, y = _blobs()
    seen: dict[str, list] = {"fast": [], "autograd": []}

    def run(name: str):
        return fit_softmax(x, y, 4, epochs=4, batch_size=48, lr=3e-3, beta1=0.5, seed=2, max_steps=max_steps,
                           on_epoch=lambda e, layer: seen[name].append((e, layer.weight.clone())))

    fast = run("fast")
    monkeypatch.setattr(_classifier, "_train", _classifier._train_autograd)
    ref = run("autograd")
    assert [e for e, _ in seen["fast"]] == [e for e, _ in seen["autograd"]]
    for (_, a), (_, b) in zip(seen["fast"], seen["autograd"]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(fast.bias, ref.bias, rtol=1e-4, atol=1e-6)
    assert fast.weight.requires_grad and ref.weight.requires_grad
    assert not torch.equal(fast.weight, _classifier.fit_softmax(x, y, 4, epochs=0, batch_size=48, seed=2).weight)


def test_fit_softmax_rejects_bad_arguments() -> None:
    x, y = _blobs()
    with pytest.raises(ConfigError):
        fit_softmax(x, y, 4, epochs=1, batch_size=0)
    with pytest.raises(ValueError):
        fit_softmax(x, y, 3, epochs=1, batch_size=10)  # label 3 outside [0, 3)
    with pytest.raises(ValueError):
        fit_softmax(x, y[:-1], 4, epochs=1, batch_size=10)


# ---------------------------------------------------------------- GZSL protocol


def test_evaluate_gzsl_perfect_generator_beats_noise() -> None:
    split = toy_split()
    good = evaluate_gzsl(split, perfect_generator, syn_num=20, cls_epochs=10, seed=0)
    bad = evaluate_gzsl(split, noise_generator, syn_num=20, cls_epochs=10, seed=0)
    assert good.H > 0.95 and good.U > 0.95 and good.S > 0.95
    assert good.zsl_acc > 0.95 and good.retrieval_map > 0.95
    assert good.precision_at_k == pytest.approx(10 / 50)  # 10 images per unseen class, k=50 default
    assert bad.H < 0.4 and bad.U < 0.4
    assert good.H - bad.H > 0.5
    for r in (good, bad):
        assert 0 <= r.cls_epoch < 10
        for name, value in r.as_dict().items():
            if name not in ("cls_epoch", "cls_steps"):
                assert 0.0 <= value <= 1.0, name
        assert r.cls_steps >= r.cls_epoch + 1
        assert r.H == pytest.approx(harmonic_mean(r.U, r.S))


def test_evaluate_gzsl_keeps_the_earliest_best_epoch() -> None:
    split = toy_split()
    result = evaluate_gzsl(split, perfect_generator, syn_num=20, cls_epochs=10, seed=0)
    # Replay the GZSL classifier (same inputs, same seed) and record H after every epoch.
    syn_y = torch.arange(split.n_seen, split.n_classes).repeat_interleave(20)
    x = torch.cat([split.train_x, perfect_generator(split.att[split.n_seen :], 20)])
    history: list[float] = []

    def record(epoch: int, layer: torch.nn.Linear) -> None:
        with torch.no_grad():
            u = per_class_accuracy(layer(split.unseen_x).argmax(1), split.unseen_y)
            s = per_class_accuracy(layer(split.seen_x).argmax(1), split.seen_y)
        history.append(harmonic_mean(u, s))

    fit_softmax(x, torch.cat([split.train_y, syn_y]), split.n_classes, epochs=10, batch_size=20, seed=0,
                on_epoch=record)
    assert history.count(max(history)) > 1  # the case under test: several epochs share the best H
    assert result.cls_epoch == history.index(max(history))
    assert result.H == pytest.approx(max(history))


def test_evaluate_gzsl_without_selection_reports_the_last_epoch() -> None:
    """For a final report on test nothing may be chosen on the evaluation sets: the last epoch."""
    split = toy_split(n_unseen=4)
    history: list[float] = []
    syn = noise_generator(split.att[split.n_seen :], 15)

    def record(epoch: int, layer: torch.nn.Linear) -> None:
        with torch.no_grad():
            u = per_class_accuracy(layer(split.unseen_x).argmax(1), split.unseen_y)
            s = per_class_accuracy(layer(split.seen_x).argmax(1), split.seen_y)
        history.append(harmonic_mean(u, s))

    syn_y = torch.arange(split.n_seen, split.n_classes).repeat_interleave(15)
    fit_softmax(torch.cat([split.train_x, syn]), torch.cat([split.train_y, syn_y]), split.n_classes, epochs=6,
                batch_size=15, seed=2, on_epoch=record)
    last = evaluate_gzsl(split, lambda att, n: syn, syn_num=15, cls_epochs=6, seed=2, select_epoch=False)
    best = evaluate_gzsl(split, lambda att, n: syn, syn_num=15, cls_epochs=6, seed=2)
    assert last.cls_epoch == 5 and last.H == pytest.approx(history[-1])
    assert best.H == pytest.approx(max(history)) and best.H >= last.H


def test_evaluate_gzsl_is_deterministic() -> None:
    split = toy_split(n_unseen=4)
    state = torch.get_rng_state()
    a = evaluate_gzsl(split, noise_generator, syn_num=15, cls_epochs=4, seed=2, k=5)
    b = evaluate_gzsl(split, noise_generator, syn_num=15, cls_epochs=4, seed=2, k=5)
    assert a == b
    assert torch.equal(torch.get_rng_state(), state)
    assert isinstance(a, EvalResult)
    assert set(a.as_dict()) == {"U", "S", "H", "zsl_acc", "retrieval_map", "precision_at_k", "cls_epoch", "cls_steps"}


def test_evaluate_gzsl_reads_only_the_split() -> None:
    split = Recorder(toy_split(n_unseen=3))
    calls: list[tuple[torch.Tensor, int]] = []

    def generate(att: torch.Tensor, n: int) -> torch.Tensor:
        calls.append((att.clone(), n))
        assert not torch.is_grad_enabled()
        return perfect_generator(att, n)

    evaluate_gzsl(split, generate, syn_num=8, cls_epochs=2, device=torch.device("cpu"))
    allowed = {"train_x", "train_y", "seen_x", "seen_y", "unseen_x", "unseen_y", "att",
               "n_seen", "n_unseen", "n_classes", "feat_dim", "att_dim"}
    assert split.read and split.read <= allowed
    # one call, with exactly the unseen block of the class attributes
    assert len(calls) == 1 and calls[0][1] == 8
    assert torch.equal(calls[0][0], split._inner.att[split._inner.n_seen :])


def test_evaluate_gzsl_scores_a_diverged_generator_zero() -> None:
    def nan_generator(att: torch.Tensor, n: int) -> torch.Tensor:
        return torch.full((len(att) * n, att.shape[1]), float("nan"))

    r = evaluate_gzsl(toy_split(n_unseen=3), nan_generator, syn_num=5, cls_epochs=2)
    assert r == EvalResult(U=0.0, S=0.0, H=0.0, zsl_acc=0.0, retrieval_map=0.0, precision_at_k=0.0, cls_epoch=0)


def test_evaluate_gzsl_rejects_bad_arguments() -> None:
    split = toy_split(n_unseen=3)
    with pytest.raises(ConfigError):
        evaluate_gzsl(split, perfect_generator, syn_num=0)
    with pytest.raises(ConfigError):
        evaluate_gzsl(split, perfect_generator, syn_num=5, cls_epochs=0)
    with pytest.raises(ValueError, match="generate returned shape"):
        evaluate_gzsl(split, lambda a, n: perfect_generator(a, n)[:-1], syn_num=5, cls_epochs=1)
    with pytest.raises(ConfigError, match="cls_batch=0"):
        evaluate_gzsl(split, perfect_generator, syn_num=5, cls_batch=0)


def test_a_cheaper_evaluation_changes_only_the_gzsl_classifier_and_can_skip_zsl() -> None:
    """The knobs bench/evaluator.py tries: the GZSL classifier's batch and rate, and no ZSL classifier."""
    split = toy_split(n_unseen=3)
    reference = evaluate_gzsl(split, noise_generator, syn_num=10, cls_epochs=3)
    cheap = evaluate_gzsl(split, noise_generator, syn_num=10, cls_epochs=3, cls_batch=10_000, cls_lr=1e-2, zsl=False)
    assert cheap.zsl_acc == 0.0 and reference.zsl_acc > 0.0
    assert cheap.cls_steps == cheap.cls_epoch + 1  # full batch: one Adam step per epoch
    assert (cheap.U, cheap.S) != (reference.U, reference.S)
    assert cheap.retrieval_map == reference.retrieval_map  # same synthetic features, same queries
    same = evaluate_gzsl(split, noise_generator, syn_num=10, cls_epochs=3, cls_batch=10, zsl=True)
    assert same == reference  # cls_batch = syn_num is the reference


def test_extras_above_skips_zsl_and_retrieval_exactly_at_or_below_it() -> None:
    """A search scores ZSL and retrieval only for an epoch that beats its trial's best H; the
    GZSL scores never change, and above the bar the result is the full protocol's."""
    import math

    split = toy_split(n_unseen=3)
    full = evaluate_gzsl(split, noise_generator, syn_num=10, cls_epochs=3)
    assert full.zsl_acc > 0.0 and full.retrieval_map > 0.0
    assert evaluate_gzsl(split, noise_generator, syn_num=10, cls_epochs=3, extras_above=full.H - 1e-9) == full
    for bar in (full.H, full.H + 0.1):
        lazy = evaluate_gzsl(split, noise_generator, syn_num=10, cls_epochs=3, extras_above=bar)
        assert (lazy.U, lazy.S, lazy.H, lazy.cls_epoch, lazy.cls_steps) == (full.U, full.S, full.H, full.cls_epoch,
                                                                            full.cls_steps)
        assert all(math.isnan(v) for v in (lazy.zsl_acc, lazy.retrieval_map, lazy.precision_at_k))


def test_eval_does_not_import_the_data_layer() -> None:
    code = "import sys, zsl_search.eval; assert 'zsl_search.data' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_the_classifier_length_can_be_given_in_steps() -> None:
    """cls_steps trains the GZSL softmax exactly that many Adam steps (a partial last epoch):
    the same as the full run stopped there, and the result records it."""
    split = toy_split(n_unseen=3)
    syn = noise_generator(split.att[split.n_seen:], 15)
    n = split.train_x.shape[0] + syn.shape[0]
    steps_per_epoch = -(-n // 15)
    whole = evaluate_gzsl(split, lambda att, k: syn, syn_num=15, cls_epochs=3, seed=1, select_epoch=False)
    assert whole.cls_steps == 3 * steps_per_epoch
    stepped = evaluate_gzsl(split, lambda att, k: syn, syn_num=15, cls_epochs=99, seed=1, select_epoch=False,
                            cls_steps=3 * steps_per_epoch)
    assert (stepped.U, stepped.S, stepped.H, stepped.cls_steps) == (whole.U, whole.S, whole.H, whole.cls_steps)
    partial = evaluate_gzsl(split, lambda att, k: syn, syn_num=15, seed=1, select_epoch=False,
                            cls_steps=2 * steps_per_epoch + 1)
    assert partial.cls_steps == 2 * steps_per_epoch + 1 and partial.cls_epoch == 2
