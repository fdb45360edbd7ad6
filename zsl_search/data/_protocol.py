"""Turn an XlsaDataset into a train/evaluation Split under the validation or test protocol."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ._xlsa import XlsaDataset

PROTOCOLS = ("validation", "test")
PREPROCESSING = ("minmax", "l2", "none")
# Share of each train class's trainval images held out as validation-seen (at least one, and
# never all): xlsa17's test_seen is about a fifth of the seen images, so validation matches it.
VAL_SEEN_FRACTION = 0.2
_TENSORS = ("train_x", "train_y", "seen_x", "seen_y", "unseen_x", "unseen_y", "att", "seen_classes", "unseen_classes")


@dataclass(frozen=True, eq=False)
class Split:
    """Preprocessed tensors for one protocol. Local labels: seen 0..n_seen-1, then unseen.

    Attributes:
        dataset, protocol: where it came from; defaults: which per-dataset defaults apply.
        train_x: (N_tr, D) float32 training features; train_y: (N_tr,) int64 local labels in [0, n_seen).
        seen_x, seen_y: evaluation seen images (validation-seen or test_seen).
        unseen_x, unseen_y: evaluation unseen images, labels in [n_seen, n_classes).
        att: (n_classes, A) float32, seen rows first then unseen rows.
        seen_classes, unseen_classes: original 0-based class ids, sorted.
    """

    dataset: str
    protocol: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    seen_x: torch.Tensor
    seen_y: torch.Tensor
    unseen_x: torch.Tensor
    unseen_y: torch.Tensor
    att: torch.Tensor
    seen_classes: torch.Tensor
    unseen_classes: torch.Tensor
    defaults: str = ""  # which per-dataset hyperparameter defaults apply (XlsaDataset.defaults)

    @property
    def defaults_name(self) -> str:
        return self.defaults or self.dataset

    @property
    def n_seen(self) -> int:
        return int(self.seen_classes.numel())

    @property
    def n_unseen(self) -> int:
        return int(self.unseen_classes.numel())

    @property
    def n_classes(self) -> int:
        return self.n_seen + self.n_unseen

    @property
    def feat_dim(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def att_dim(self) -> int:
        return int(self.att.shape[1])

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Return (meta, arrays): plain metadata and numpy views of every tensor (no copy)."""
        meta = {"dataset": self.dataset, "protocol": self.protocol, "defaults": self.defaults_name}
        return meta, {name: getattr(self, name).numpy() for name in _TENSORS}

    @classmethod
    def from_arrays(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Split:
        """Rebuild a Split from `to_arrays` output with torch.from_numpy (no copy).

        Raises:
            DataError: an array is missing.
        """
        missing = [n for n in _TENSORS if n not in arrays]
        if missing:
            raise DataError(f"Split.from_arrays: key '{missing[0]}' missing; pass the dict from Split.to_arrays()")
        with warnings.catch_warnings():
            # arrays from Ray's object store are read-only; the split is never written in place
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            tensors = {n: torch.from_numpy(arrays[n]) for n in _TENSORS}
        return cls(dataset=str(meta["dataset"]), protocol=str(meta["protocol"]),
                   defaults=str(meta.get("defaults") or meta["dataset"]), **tensors)

    def summary(self) -> dict[str, Any]:
        """Sizes, class counts and dims, for `data info` and logs."""
        return {
            "dataset": self.dataset, "protocol": self.protocol,
            "n_train": int(self.train_x.shape[0]), "n_seen_eval": int(self.seen_x.shape[0]),
            "n_unseen_eval": int(self.unseen_x.shape[0]), "n_seen": self.n_seen, "n_unseen": self.n_unseen,
            "n_classes": self.n_classes, "feat_dim": self.feat_dim, "att_dim": self.att_dim,
        }


def make_split(ds: XlsaDataset, protocol: str = "validation", *, seed: int = 0, preprocess: str = "minmax",
               fold: int = 0) -> Split:
    """Build the train/evaluation split.

    "test": train on trainval, evaluate on test_seen and test_unseen.
    "validation": uses only trainval images. Train classes are those of train_loc ∩ trainval, val classes
    those of val_loc ∩ trainval; a seeded `VAL_SEEN_FRACTION` of each train class's trainval images is held out
    as validation-seen, the val classes' trainval images are validation-unseen. No test row is read.

    Args:
        ds: the loaded dataset.
        protocol: "validation" or "test".
        seed: seeds the validation-seen hold-out (np.random.default_rng).
        preprocess: "minmax" (fitted on train_x only, as sklearn MinMaxScaler), "l2" (rows) or "none".
        fold: "validation" only. 0 is the dataset's own train/val classes; fold k >= 1 holds out
            the k-th seeded group of as many train classes instead (the val classes train), so
            several folds give several disjoint sets of validation-unseen classes (`max_folds`).
    Returns:
        The Split.
    Raises:
        ConfigError: unknown protocol or preprocess, or a fold the dataset cannot make.
        DataError: the dataset cannot support the protocol (no train/val locs, overlapping classes).
    """
    if protocol not in PROTOCOLS:
        raise ConfigError(f"protocol={protocol!r} is unknown; use one of {PROTOCOLS}")
    if preprocess not in PREPROCESSING:
        raise ConfigError(f"preprocess={preprocess!r} is unknown; use one of {PREPROCESSING}")
    src = f"{ds.root}/{ds.semantics}"
    if protocol == "test":
        train_idx, seen_idx, unseen_idx = ds.locs["trainval"], ds.locs["test_seen"], ds.locs["test_unseen"]
        seen_cls = np.unique(ds.labels[train_idx])
        unseen_cls = np.unique(ds.labels[unseen_idx])
        if np.intersect1d(seen_cls, unseen_cls).size:
            raise DataError(f"{src}: keys 'trainval_loc' and 'test_unseen_loc' share classes; "
                            f"unseen classes must have no trainval image")
        stray = np.setdiff1d(np.unique(ds.labels[seen_idx]), seen_cls)
        if stray.size:
            raise DataError(f"{src}: key 'test_seen_loc' has {stray.size} classes with no trainval image; "
                            f"test_seen must only hold seen classes")
    else:
        train_idx, seen_idx, unseen_idx, seen_cls, unseen_cls = _validation_rows(ds, seed, src, fold)

    lut = np.full(ds.n_classes, -1, dtype=np.int64)
    lut[seen_cls] = np.arange(seen_cls.size)
    lut[unseen_cls] = seen_cls.size + np.arange(unseen_cls.size)
    # only the rows in train_idx/seen_idx/unseen_idx are ever indexed
    train_x, seen_x, unseen_x = (ds.features[i] for i in (train_idx, seen_idx, unseen_idx))  # (n, D) copies
    train_x, seen_x, unseen_x = _preprocess(train_x, seen_x, unseen_x, preprocess)
    att = ds.att[np.concatenate([seen_cls, unseen_cls])].astype(np.float32)  # (n_classes, A)
    t = torch.from_numpy
    return Split(
        dataset=ds.name, protocol=protocol, defaults=ds.defaults or ds.name,
        train_x=t(train_x), train_y=t(lut[ds.labels[train_idx]]),
        seen_x=t(seen_x), seen_y=t(lut[ds.labels[seen_idx]]),
        unseen_x=t(unseen_x), unseen_y=t(lut[ds.labels[unseen_idx]]),
        att=t(np.ascontiguousarray(att, dtype=np.float32)),
        seen_classes=t(seen_cls.astype(np.int64)), unseen_classes=t(unseen_cls.astype(np.int64)),
    )


def validation_rows(ds: XlsaDataset, *, seed: int = 0) -> dict[str, np.ndarray]:
    """The 0-based image rows the validation protocol reads: train, seen (held out) and unseen."""
    src = f"{ds.root}/{ds.semantics}"
    tr, se, un, _, _ = _validation_rows(ds, seed, src)
    return {"train": tr, "seen": se, "unseen": un}


def max_folds(ds: XlsaDataset) -> int:
    """How many class folds the validation protocol can make: the dataset's own val classes,
    plus one per whole group of as many train classes."""
    train_cls, val_cls = _train_val_classes(ds, f"{ds.root}/{ds.semantics}")
    return 1 + train_cls.size // val_cls.size


def _train_val_classes(ds: XlsaDataset, src: str) -> tuple[np.ndarray, np.ndarray]:
    if "train" not in ds.locs or "val" not in ds.locs:
        raise DataError(f"{src}: keys 'train_loc'/'val_loc' missing, so protocol 'validation' is impossible; "
                        f"use protocol='test' or add train_loc and val_loc")
    trainval = np.sort(ds.locs["trainval"])
    # train_loc/val_loc also cover test_seen images in the release: keep only their trainval part
    train_cls = np.unique(ds.labels[np.intersect1d(ds.locs["train"], trainval)])
    val_cls = np.unique(ds.labels[np.intersect1d(ds.locs["val"], trainval)])
    if train_cls.size == 0 or val_cls.size == 0:
        raise DataError(f"{src}: keys 'train_loc'/'val_loc' select no trainval image; "
                        f"they must overlap trainval_loc, or use protocol='test'")
    if np.intersect1d(train_cls, val_cls).size:
        raise DataError(f"{src}: keys 'train_loc' and 'val_loc' share classes inside trainval; "
                        f"val classes must be disjoint from train classes, or use protocol='test'")
    return train_cls, val_cls


def _validation_rows(ds: XlsaDataset, seed: int, src: str, fold: int = 0) -> tuple[np.ndarray, ...]:
    train_cls, val_cls = _train_val_classes(ds, src)
    if fold:
        groups = train_cls.size // val_cls.size
        if not 0 < fold <= groups:
            raise ConfigError(f"fold={fold}: {src} has {train_cls.size} train and {val_cls.size} val classes, so "
                              f"folds 0..{groups} only; use at most {groups + 1} folds")
        # Seeded by the dataset's classes only, so every trial and seed sees the same folds.
        order = np.random.default_rng(int(train_cls.sum()) * 1_000_003 + train_cls.size).permutation(train_cls)
        held = np.sort(order[(fold - 1) * val_cls.size: fold * val_cls.size])
        train_cls, val_cls = np.sort(np.concatenate([np.setdiff1d(train_cls, held), val_cls])), held
    trainval = np.sort(ds.locs["trainval"])
    tv_labels = ds.labels[trainval]
    rng = np.random.default_rng(seed)
    train_parts, held_parts = [], []
    for c in train_cls:
        rows = trainval[tv_labels == c]
        if rows.size < 2:
            # Held out nothing, the class would silently drop out of S (and H).
            raise DataError(f"{src}: train class {int(c) + 1} has {rows.size} trainval image(s), so none can be held "
                            f"out as validation-seen; every train class needs at least 2 (move it to val_loc or "
                            f"add images)")
        n_held = min(max(int(round(VAL_SEEN_FRACTION * rows.size)), 1), rows.size - 1)
        perm = rng.permutation(rows.size)
        held_parts.append(np.sort(rows[perm[:n_held]]))
        train_parts.append(np.sort(rows[perm[n_held:]]))
    unseen_rows = trainval[np.isin(tv_labels, val_cls)]
    return (np.concatenate(train_parts), np.concatenate(held_parts), unseen_rows, train_cls, val_cls)


def _preprocess(train_x: np.ndarray, seen_x: np.ndarray, unseen_x: np.ndarray, how: str):
    if how == "none":
        return train_x, seen_x, unseen_x
    if how == "l2":
        xs = (train_x, seen_x, unseen_x)
        return tuple(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12) for x in xs)
    lo = train_x.min(axis=0)  # (D,)
    rng = train_x.max(axis=0) - lo
    rng[rng == 0] = 1.0  # as sklearn: constant dims map to x - min
    out = []
    for x in (train_x, seen_x, unseen_x):
        x -= lo
        x /= rng
        out.append(x)
    return tuple(out)
