"""Synthesize an xlsa17-format dataset: a tiny demo, or one shaped like a real dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from .._files import atomic_write
from ._paths import check_output_dir
from ._mat import MAT_FORMATS, cellstr_to_list, read_mat, write_mat
from .._seed import check_seed
from ._xlsa import write_identity

PRESETS = ("demo", "like")
# published class counts: seen/unseen of the GZSL split, train/val inside seen (0/0: no train/val)
KNOWN_DATASETS: dict[str, dict[str, int]] = {
    "AWA1": {"seen": 40, "unseen": 10, "train": 27, "val": 13},
    "AWA2": {"seen": 40, "unseen": 10, "train": 27, "val": 13},
    "CUB": {"seen": 150, "unseen": 50, "train": 100, "val": 50},
    "SUN": {"seen": 645, "unseen": 72, "train": 580, "val": 65},
    "FLO": {"seen": 82, "unseen": 20, "train": 62, "val": 20},
    "APY": {"seen": 20, "unseen": 12, "train": 0, "val": 0},
}
_MARKER = "synth.json"
_DEMO = {"classes": 40, "train": 22, "val": 8, "unseen": 10, "att_dim": 16, "feat_dim": 128, "per_class": (60, 80)}
_TARGET_NCM = 0.85  # nearest-class-mean accuracy on seen classes the noise scale is tuned to
_ISO = 0.3  # isotropic share of the within-class noise (per-dim std relative to the low-rank part)


def synthesize(out_dir: str | Path, *, preset: str = "demo", like: str | None = None, att_file: Path | None = None,
               scale: float = 1.0, feat_dim: int | None = None, seed: int = 0, mat_format: str = "v5") -> Path:
    """Write a synthetic dataset (res101.mat + att_splits.mat) in the xlsa17 format.

    Features are relu(f(a_c) + within-class noise): f is one shared random 2-layer tanh MLP of the class
    attribute, so unseen classes are predictable from attributes; the noise (class-independent low-rank
    Gaussian + small isotropic) is scaled so nearest-class-mean on the seen classes, with means estimated from
    a train-split-sized sample, gets about 70% (true means: higher).

    Args:
        out_dir: destination directory (created). Files are written under temporary names and renamed.
        preset: "demo" (24 classes, 24-d attributes, tiny) or "like" (real attributes and split sizes).
        like: dataset name for "like", e.g. "AWA2"; picks the published class counts (KNOWN_DATASETS).
        att_file: a real att_splits.mat, required for "like".
        scale: image-count multiplier (for "like" in (0, 1]; each class keeps at least 1 image per split).
        feat_dim: feature dimension; default 128 for "demo", 2048 for "like".
        seed: everything derives from np.random.default_rng(seed): same seed, same arrays.
        mat_format: "v5" or "v7.3".
    Returns:
        out_dir as a Path.
    Raises:
        ConfigError: bad preset/arguments, an unknown ``like``, a seed outside 0 .. 2**32 - 1.
        DataError: unreadable att_file, out_dir (or a folder above it) is a file, or it holds a
            res101.mat or att_splits.mat that this function did not write.
    """
    out = Path(out_dir)
    if preset not in PRESETS:
        raise ConfigError(f"preset={preset!r} is unknown; use one of {PRESETS}")
    if mat_format not in MAT_FORMATS:
        raise ConfigError(f"mat_format={mat_format!r} is unknown; use one of {MAT_FORMATS}")
    if not scale > 0 or (preset == "like" and scale > 1):
        raise ConfigError(f"scale={scale!r} must be > 0 (and <= 1 for preset 'like')")
    if feat_dim is not None and feat_dim < 1:
        raise ConfigError(f"feat_dim={feat_dim!r} must be a positive integer")
    check_seed(seed)
    defaults = "DEMO" if preset == "demo" else _like_defaults(like)
    check_output_dir(out)
    for name in ("res101.mat", "att_splits.mat"):  # a real xlsa17 set may hold att_splits.mat alone
        if (out / name).exists() and not (out / _MARKER).exists():
            raise DataError(f"{out / name}: exists and is not a zsl-search synthetic file; "
                            f"choose another output directory or remove it yourself")
    rng = np.random.default_rng(seed)
    if preset == "demo":
        att, names, labels, locs = _demo_layout(rng, scale)
        dim = feat_dim or _DEMO["feat_dim"]
    else:
        if not like or att_file is None:
            raise ConfigError("preset 'like' needs like=<dataset name> and att_file=<real att_splits.mat>")
        att, names, labels, locs = _like_layout(rng, like.upper(), Path(att_file), scale)
        dim = feat_dim or 2048
    seen = np.unique(labels[np.concatenate([locs["trainval_loc"], locs["test_seen_loc"]])])
    per_class = np.bincount(labels[locs["trainval_loc"]], minlength=len(names))[seen]
    feats = _features(rng, att, labels, seen, dim, int(np.median(per_class)))  # (N, D) float32
    n_img = labels.size
    counters = np.zeros(len(names), dtype=np.int64)
    files = []
    for y in labels:
        counters[y] += 1
        files.append(f"synth/{names[y]}/img_{counters[y]:05d}.jpg")
    loc_dtype = np.uint16 if n_img < 2**16 else np.float64  # as the release: uint16 indices
    att_vars: dict[str, object] = {"att": att.T.astype(np.float64)}  # (A, C)
    for k, v in locs.items():
        att_vars[k] = (np.sort(v) + 1).astype(loc_dtype)[:, None]  # (n, 1), 1-based
    att_vars["allclasses_names"] = list(names)
    res_vars = {"features": np.ascontiguousarray(feats.T),  # (D, N)
                "labels": (labels + 1).astype(np.float64)[:, None],  # (N, 1), 1-based
                "image_files": files}
    out.mkdir(parents=True, exist_ok=True)
    meta = {"preset": preset, "like": like, "att_file": str(att_file) if att_file else None, "scale": scale,
            "feat_dim": dim, "seed": seed, "mat_format": mat_format, "n_images": int(n_img),
            "n_classes": len(names)}
    atomic_write(out / _MARKER, lambda p: p.write_text(json.dumps(meta, indent=1) + "\n"))
    atomic_write(out / "att_splits.mat", lambda p: write_mat(p, att_vars, mat_format=mat_format))
    atomic_write(out / "res101.mat", lambda p: write_mat(p, res_vars, mat_format=mat_format))
    # The set keeps its identity under any directory name: a demo set trains with the demo
    # defaults, a CUB-like one with CUB's.
    write_identity(out, name=out.resolve().name, defaults=defaults)
    return out


def _like_defaults(like: str | None) -> str | None:
    """The defaults a set shaped like ``like`` trains with: its own where a variant has them,
    else the reference ones (APY). A name zsl-search knows neither way is a typo (``CUBB``): it
    would get invented split sizes and the reference defaults without a word."""
    from ..models import defaults_names  # the variants' registry: imported only when needed

    if like is None:
        return None  # refused below: preset 'like' needs it
    if like.upper() in defaults_names():
        return like.upper()
    if like.upper() in KNOWN_DATASETS:
        return "REFERENCE"
    known = sorted({*KNOWN_DATASETS, *defaults_names()})
    raise ConfigError(f"--like {like!r}: not a dataset zsl-search knows; use one of {', '.join(known)}")


def _demo_layout(rng: np.random.Generator, scale: float):
    c, a_dim = _DEMO["classes"], _DEMO["att_dim"]
    att = (rng.random((c, a_dim)) < 0.3) * rng.uniform(0.5, 1.0, (c, a_dim))  # sparse-ish (C, A)
    att[np.arange(c), rng.integers(0, a_dim, c)] += 1.0  # no all-zero class
    att /= np.linalg.norm(att, axis=1, keepdims=True)
    order = rng.permutation(c)
    n_tr, n_val = _DEMO["train"], _DEMO["val"]
    val_cls, unseen_cls = order[n_tr:n_tr + n_val], order[n_tr + n_val:]  # the rest are train classes
    lo, hi = _DEMO["per_class"]
    counts = np.maximum(np.round(rng.integers(lo, hi + 1, c) * scale).astype(np.int64), 2)
    labels = np.repeat(np.arange(c), counts)
    keys = ("trainval_loc", "test_seen_loc", "test_unseen_loc", "train_loc", "val_loc")
    locs: dict[str, list] = {k: [] for k in keys}
    for k in range(c):
        rows = rng.permutation(np.nonzero(labels == k)[0])
        if k in unseen_cls:
            locs["test_unseen_loc"].append(rows)
            continue
        n_ts = max(1, int(round(0.2 * rows.size)))
        locs["test_seen_loc"].append(rows[:n_ts])
        locs["trainval_loc"].append(rows[n_ts:])
        # as the release: train_loc/val_loc cover trainval and test_seen images of their classes
        locs["val_loc" if k in val_cls else "train_loc"].append(rows)
    locs_np = {k: np.sort(np.concatenate(v)) for k, v in locs.items()}
    names = [f"class_{k:02d}" for k in range(c)]
    return att.astype(np.float32), names, labels, locs_np


def _like_layout(rng: np.random.Generator, like: str, att_file: Path, scale: float):
    mat = read_mat(att_file)
    if "att" not in mat:
        raise DataError(f"{att_file}: key 'att' missing; pass a real xlsa17 att_splits.mat")
    att = np.ascontiguousarray(np.asarray(mat["att"], dtype=np.float64).T)  # (C, A)
    c = att.shape[0]
    raw: dict[str, np.ndarray] = {}
    for k in ("trainval_loc", "test_seen_loc", "test_unseen_loc", "train_loc", "val_loc"):
        if k in mat:
            raw[k] = np.asarray(mat[k]).ravel().astype(np.int64) - 1
        elif k in ("trainval_loc", "test_seen_loc", "test_unseen_loc"):
            raise DataError(f"{att_file}: key '{k}' missing; pass a real xlsa17 att_splits.mat")
    has_val = "train_loc" in raw and "val_loc" in raw
    counts = KNOWN_DATASETS.get(like)
    if counts is None:
        n_unseen = max(1, int(round(0.2 * c)))
        n_val = max(1, int(round(0.25 * (c - n_unseen)))) if has_val else 0
    else:
        if counts["seen"] + counts["unseen"] != c:
            raise ConfigError(f"like={like!r}: {att_file} has {c} classes, not the published "
                              f"{counts['seen'] + counts['unseen']}; pass the matching att_splits.mat")
        n_unseen, n_val = counts["unseen"], (counts["val"] if has_val else 0)
    order = rng.permutation(c)
    unseen_cls, val_cls, train_cls = order[:n_unseen], order[n_unseen:n_unseen + n_val], order[n_unseen + n_val:]
    n_img = int(max(v.max() for v in raw.values())) + 1
    labels = np.full(n_img, -1, dtype=np.int64)
    in_val = np.zeros(n_img, dtype=bool)
    if has_val:
        in_val[raw["val_loc"]] = True
    # labels invented per (split, class group) cell so every class has images where the release has them
    cells = [(raw["test_unseen_loc"], unseen_cls)]
    for k in ("trainval_loc", "test_seen_loc"):
        cells.append((raw[k][~in_val[raw[k]]], train_cls))
        if n_val:
            cells.append((raw[k][in_val[raw[k]]], val_cls))
    for rows, classes in cells:
        labels[rows] = _assign(rng, rows.size, classes)
    # subsample each (split, class) cell, keep >= 1 image, then re-index the kept images 1..N'
    keep = np.zeros(n_img, dtype=bool)
    for k in ("trainval_loc", "test_seen_loc", "test_unseen_loc"):
        rows = raw[k]
        if scale >= 1.0:
            keep[rows] = True
            continue
        for cls in np.unique(labels[rows]):
            r = rows[labels[rows] == cls]
            n_keep = max(1, int(round(scale * r.size)))
            keep[rng.choice(r, n_keep, replace=False)] = True
    new_index = np.cumsum(keep) - 1
    locs = {k: np.sort(new_index[v[keep[v]]]) for k, v in raw.items()}
    names = cellstr_to_list(mat.get("allclasses_names"))
    if names is None or len(names) != c:
        names = [f"class_{k:03d}" for k in range(c)]
    names = [n.replace("/", "_") for n in names]
    return att.astype(np.float32), names, labels[keep], locs


def _assign(rng: np.random.Generator, n: int, classes: np.ndarray) -> np.ndarray:
    """n labels over `classes`: each class at least once (when n allows), the rest Dirichlet-weighted."""
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    first = rng.permutation(classes)[:n]
    rest = rng.choice(classes, n - first.size, p=rng.dirichlet(np.full(classes.size, 5.0)))
    return rng.permutation(np.concatenate([first, rest])).astype(np.int64)


def _features(rng: np.random.Generator, att: np.ndarray, labels: np.ndarray, seen: np.ndarray, dim: int,
              n_est: int) -> np.ndarray:
    a_dim = att.shape[1]
    hidden, rank = 256, 24
    sd = att.std(axis=0)
    a = (att - att.mean(axis=0)) / np.where(sd > 0, sd, 1.0)  # (C, A) standardised attributes
    w1 = rng.standard_normal((a_dim, hidden)) * (1.0 / np.sqrt(a_dim))
    b1 = rng.standard_normal(hidden) * 0.5
    w2 = rng.standard_normal((hidden, dim)) / np.sqrt(hidden)
    b2 = rng.normal(0.2, 0.3, dim)
    mu = np.tanh(a @ w1 + b1) @ w2 + b2  # (C, D) class centres before the relu
    u = rng.standard_normal((dim, rank)) / np.sqrt(rank)  # (D, r) shared low-rank within-class directions
    sigma = _calibrate(rng, mu, u, seen, n_est)
    n = labels.size
    feats = np.empty((n, dim), dtype=np.float32)
    step = 4096
    for s in range(0, n, step):
        y = labels[s:s + step]
        feats[s:s + step] = np.maximum(mu[y] + sigma * _noise(rng, y.size, u), 0.0)
    return feats


def _noise(rng: np.random.Generator, n: int, u: np.ndarray) -> np.ndarray:
    # mostly low-rank (like real CNN features), plus a small isotropic part; (n, D)
    return rng.standard_normal((n, u.shape[1])) @ u.T + _ISO * rng.standard_normal((n, u.shape[0]))


def _calibrate(rng: np.random.Generator, mu: np.ndarray, u: np.ndarray, seen: np.ndarray, n_est: int) -> float:
    """Noise scale at which nearest-class-mean on seen classes gets about _TARGET_NCM, the class means
    estimated from n_est images per class (as many as a train split has, capped) and scored on fresh ones."""
    s = seen.size
    n_est = int(np.clip(n_est, 2, max(2, 12000 // s)))
    n_test = int(np.clip(3000 // s, 2, 20))
    e_est = _noise(rng, s * n_est, u).reshape(s, n_est, -1)  # (S, n_est, D)
    y_test = np.repeat(np.arange(s), n_test)
    e_test = _noise(rng, y_test.size, u)  # (S * n_test, D)
    m = mu[seen]  # (S, D)

    def accuracy(sigma: float) -> float:
        means = np.maximum(m[:, None, :] + sigma * e_est, 0.0).mean(axis=1)  # (S, D)
        x = np.maximum(m[y_test] + sigma * e_test, 0.0)
        d = (means ** 2).sum(axis=1)[None, :] - 2 * x @ means.T  # (n, S) up to a per-row constant
        return float((d.argmin(axis=1) == y_test).mean())

    lo, hi = -3.0, 2.0  # log10 sigma bracket: accuracy falls as sigma grows
    for _ in range(13):
        mid = 0.5 * (lo + hi)
        if accuracy(10 ** mid) > _TARGET_NCM:
            lo = mid
        else:
            hi = mid
    return float(10 ** (0.5 * (lo + hi)))
