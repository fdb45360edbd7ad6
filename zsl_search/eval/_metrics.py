"""Accuracy and retrieval metrics. Every function returns a Python float in [0, 1]."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from ..errors import ConfigError

# Bound on query x gallery distance entries held at once (float64: 128 MiB).
_MAX_DIST_ENTRIES = 1 << 24


def per_class_accuracy(pred: Tensor, target: Tensor) -> float:
    """Mean over the classes present in ``target`` of each class's top-1 accuracy.

    This is the zero-shot "average per-class accuracy": every class counts once, however many
    samples it has, so it differs from per-sample accuracy on imbalanced sets. Classes that
    occur only in ``pred`` do not count.

    Args:
        pred: predicted labels, shape (N,), any integer (or integer-valued) dtype.
        target: true labels, shape (N,), same device as ``pred``.

    Returns:
        The accuracy as a float; 0.0 when ``target`` is empty.

    Raises:
        ValueError: ``pred`` and ``target`` differ in shape.
    """
    if pred.shape != target.shape:
        raise ValueError(
            f"per_class_accuracy: pred shape {tuple(pred.shape)} != target shape {tuple(target.shape)}"
        )
    return _PerClass(target)(pred)


class _PerClass:
    """`per_class_accuracy` against one fixed target, with the class bookkeeping done once: the
    GZSL classifiers score the same evaluation sets after every epoch."""

    def __init__(self, target: Tensor) -> None:
        self.target = target.reshape(-1).long()  # (N,)
        _, self.inv = torch.unique(self.target, return_inverse=True)  # (N,)
        self.counts = torch.bincount(self.inv).double()  # (C,) present classes only, all >= 1

    def __call__(self, pred: Tensor) -> float:
        if self.target.numel() == 0:
            return 0.0
        correct = (pred.reshape(-1).long() == self.target).double()  # (N,)
        hits = torch.zeros(len(self.counts), dtype=torch.float64, device=correct.device)
        return float((hits.index_add_(0, self.inv, correct) / self.counts).mean().item())


def harmonic_mean(u: float, s: float) -> float:
    """GZSL harmonic mean ``2us / (u + s)`` of unseen and seen accuracy; 0.0 when ``u + s == 0``."""
    u, s = float(u), float(s)
    if u + s == 0.0:
        return 0.0
    return 2.0 * u * s / (u + s)


def _ranked_relevance(
    queries: Tensor, query_labels: Tensor, gallery_x: Tensor, gallery_y: Tensor
) -> Iterator[Tensor]:
    """Yield, per chunk of queries, a bool (q, G) matrix: gallery sorted by distance, True where relevant."""
    g = gallery_x.reshape(len(gallery_x), -1).double()  # (G, D)
    gy = gallery_y.reshape(-1).to(g.device)
    q_all = queries.reshape(len(queries), -1).to(g.device).double()  # (Q, D)
    ql_all = query_labels.reshape(-1).to(g.device)
    step = max(1, _MAX_DIST_ENTRIES // max(1, len(g)))
    for i in range(0, len(q_all), step):
        dist = torch.cdist(q_all[i : i + step], g)  # (q, G)
        # Stable sort: equal distances keep gallery order, so the ranking is reproducible.
        order = torch.sort(dist, dim=1, stable=True).indices
        yield gy[order] == ql_all[i : i + step, None]  # (q, G)


def _check_retrieval_inputs(
    name: str, queries: Tensor, query_labels: Tensor, gallery_x: Tensor, gallery_y: Tensor
) -> None:
    if len(queries) != len(query_labels):
        raise ValueError(f"{name}: {len(queries)} queries but {len(query_labels)} query labels")
    if len(gallery_x) != len(gallery_y):
        raise ValueError(f"{name}: {len(gallery_x)} gallery items but {len(gallery_y)} gallery labels")


def retrieval_map(queries: Tensor, query_labels: Tensor, gallery_x: Tensor, gallery_y: Tensor) -> float:
    """Mean average precision of ranking the gallery by Euclidean distance to each query.

    For each query the gallery is sorted by ascending distance (ties keep gallery order); AP is
    the mean of the precision at the rank of each relevant item (same label as the query), 0.0
    for a query without relevant items. The result is the mean AP over queries.

    Args:
        queries: (Q, D) query features.
        query_labels: (Q,) query labels.
        gallery_x: (G, D) gallery features; the computation runs on this tensor's device.
        gallery_y: (G,) gallery labels.

    Returns:
        mAP as a float; 0.0 when there are no queries or the gallery is empty.

    Raises:
        ValueError: a feature tensor and its labels differ in length.
    """
    _check_retrieval_inputs("retrieval_map", queries, query_labels, gallery_x, gallery_y)
    if len(queries) == 0 or len(gallery_x) == 0:
        return 0.0
    total = 0.0
    for rel in _ranked_relevance(queries, query_labels, gallery_x, gallery_y):
        rel = rel.double()  # (q, G)
        ranks = torch.arange(1, rel.shape[1] + 1, dtype=torch.float64, device=rel.device)  # (G,)
        precision = rel.cumsum(dim=1) / ranks  # (q, G) precision at every cut-off
        n_rel = rel.sum(dim=1)  # (q,)
        ap = (precision * rel).sum(dim=1) / n_rel.clamp(min=1)  # 0 when no relevant item
        total += float(ap.sum().item())
    return total / len(queries)


def precision_at_k(
    queries: Tensor, query_labels: Tensor, gallery_x: Tensor, gallery_y: Tensor, *, k: int
) -> float:
    """Mean over queries of the fraction of the ``k`` nearest gallery items sharing the query's label.

    Args:
        queries: (Q, D) query features.
        query_labels: (Q,) query labels.
        gallery_x: (G, D) gallery features; nearest by Euclidean distance, ties keep gallery order.
        gallery_y: (G,) gallery labels.
        k: cut-off; capped at the gallery size.

    Returns:
        Precision@k as a float; 0.0 when there are no queries or the gallery is empty.

    Raises:
        ConfigError: ``k`` is not a positive integer.
        ValueError: a feature tensor and its labels differ in length.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"precision_at_k: k={k!r}; set the eval k to a positive integer such as 50")
    _check_retrieval_inputs("precision_at_k", queries, query_labels, gallery_x, gallery_y)
    if len(queries) == 0 or len(gallery_x) == 0:
        return 0.0
    k = min(k, len(gallery_x))
    total = 0.0
    for rel in _ranked_relevance(queries, query_labels, gallery_x, gallery_y):
        total += float(rel[:, :k].double().mean(dim=1).sum().item())
    return total / len(queries)
