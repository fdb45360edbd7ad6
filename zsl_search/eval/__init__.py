"""Evaluation: per-class accuracy, GZSL harmonic mean, retrieval metrics and the reference
softmax-classifier protocol that scores a feature generator on a split."""

from __future__ import annotations

from ._classifier import fit_softmax
from ._gzsl import EvalResult, evaluate_gzsl
from ._metrics import harmonic_mean, per_class_accuracy, precision_at_k, retrieval_map

__all__ = [
    "EvalResult",
    "evaluate_gzsl",
    "fit_softmax",
    "harmonic_mean",
    "per_class_accuracy",
    "precision_at_k",
    "retrieval_map",
]
