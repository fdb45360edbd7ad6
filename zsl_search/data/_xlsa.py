"""Load and validate a dataset in the xlsa17 layout (res101.mat + att_splits.mat)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._files import atomic_write
from ..errors import DataError
from ._mat import cellstr_to_list, read_mat

REQUIRED_LOCS = ("trainval", "test_seen", "test_unseen")
OPTIONAL_LOCS = ("train", "val")
_ATT_SPLITS = "att_splits.mat"
# A dataset's identity, beside its .mat files: {"name": "MYDATA", "defaults": "DEMO"}. ``defaults``
# names the per-dataset hyperparameter defaults that fit it (`zsl-search data synth` writes it).
IDENTITY_FILE = "zsl-dataset.json"


@dataclass(frozen=True, eq=False)
class XlsaDataset:
    """A validated xlsa17 dataset held in memory.

    Attributes:
        name: upper-cased; from ``zsl-dataset.json`` or the directory name, e.g. "AWA2".
        defaults: which per-dataset hyperparameter defaults apply (e.g. "PF60", "DEMO"); from
            ``zsl-dataset.json``, else the name.
        root: the dataset directory.
        features: (N, D) float32 image features.
        labels: (N,) int64 0-based class ids.
        att: (C, A) float32 class semantics, one row per class.
        locs: 0-based int64 image indices: trainval, test_seen, test_unseen, and train, val when present.
        class_names: class names when the file has them.
        semantics: file name the class semantics came from.
    """

    name: str
    root: Path
    features: np.ndarray
    labels: np.ndarray
    att: np.ndarray
    locs: dict[str, np.ndarray]
    class_names: list[str] | None
    semantics: str
    defaults: str = ""

    @property
    def n_classes(self) -> int:
        return int(self.att.shape[0])


def load_xlsa(root: str | Path, *, semantics: str = _ATT_SPLITS, features: str = "res101.mat",
              name: str | None = None, defaults: str | None = None) -> XlsaDataset:
    """Load an xlsa17 dataset directory and check it thoroughly.

    Args:
        root: directory holding the feature file and att_splits.mat.
        semantics: file with the class semantics `att` (A, C), e.g. "sent_splits.mat" for CUB
            sentence embeddings. Its split locs are used when it has them, else att_splits.mat's.
        features: file with `features` (D, N) and `labels` (N, 1), 1-based.
        name, defaults: override the dataset's identity (see `XlsaDataset`).
    Returns:
        The validated dataset, indices converted to 0-based.
    Raises:
        DataError: one line naming the file and key: missing directory/file/key, unreadable file,
            inconsistent shapes, indices or labels out of range, non-finite features, overlapping splits.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset directory not found; pass the folder holding res101.mat and att_splits.mat")
    feat_path = root / features
    sem_path = root / semantics
    for p in (feat_path, sem_path):
        _require_file(p, "put the xlsa17 file there or run `zsl-search data synth`")
    fmat = read_mat(feat_path, keys=("features", "labels"))  # not image_files: one string per image
    smat = read_mat(sem_path)
    # locs come from the semantics file when it has all of them, else from att_splits.mat
    split_path, split_mat = sem_path, smat
    if not all(f"{k}_loc" in smat for k in REQUIRED_LOCS) and sem_path.name != _ATT_SPLITS:
        split_path = root / _ATT_SPLITS
        _require_file(split_path, f"{semantics} has no split locs, so att_splits.mat is needed")
        split_mat = read_mat(split_path)

    feats = _require(fmat, "features", feat_path)
    if not isinstance(feats, np.ndarray) or feats.ndim != 2 or not np.issubdtype(feats.dtype, np.number):
        raise DataError(f"{feat_path}: key 'features' must be a numeric (D, N) matrix; regenerate the file")
    raw_labels = _vector(_require(fmat, "labels", feat_path), "labels", feat_path)
    n = raw_labels.size
    if feats.shape[1] != n:
        raise DataError(f"{feat_path}: key 'features' has shape {feats.shape} but 'labels' has {n} entries; "
                        f"features must be (D, N) with one column per label")
    att = _require(smat, "att", sem_path)
    if not isinstance(att, np.ndarray) or att.ndim != 2 or not np.issubdtype(att.dtype, np.number):
        raise DataError(f"{sem_path}: key 'att' must be a numeric (A, C) matrix; regenerate the file")
    att = np.ascontiguousarray(att.T, dtype=np.float32)  # (C, A)
    n_classes = att.shape[0]
    if not np.isfinite(att).all():
        raise DataError(f"{sem_path}: key 'att' has NaN/inf values; fix or regenerate the file")

    labels = _int_vector(raw_labels, "labels", feat_path)
    if labels.size and (labels.min() < 1 or labels.max() > n_classes):
        raise DataError(f"{feat_path}: key 'labels' has values in [{labels.min()}, {labels.max()}] but {sem_path.name} "
                        f"'att' has {n_classes} classes; labels must be 1-based in 1..{n_classes}")
    features_nd = np.ascontiguousarray(feats.T, dtype=np.float32)  # (N, D)
    if not np.isfinite(features_nd).all():
        bad = int(np.nonzero(~np.isfinite(features_nd).all(axis=1))[0][0])
        raise DataError(f"{feat_path}: key 'features' has NaN/inf values (first in image {bad + 1}); "
                        f"fix or regenerate the file")

    locs: dict[str, np.ndarray] = {}
    for loc_name in REQUIRED_LOCS + OPTIONAL_LOCS:
        key = f"{loc_name}_loc"
        if key not in split_mat:
            if loc_name in REQUIRED_LOCS:
                _require(split_mat, key, split_path)
            continue
        loc = _int_vector(_vector(split_mat[key], key, split_path), key, split_path)
        if loc.size == 0:
            raise DataError(f"{split_path}: key '{key}' is empty; regenerate the split file")
        if loc.min() < 1 or loc.max() > n:
            raise DataError(f"{split_path}: key '{key}' has indices in [{loc.min()}, {loc.max()}] but {feat_path.name} "
                            f"has {n} images; indices must be 1-based in 1..{n}")
        if np.unique(loc).size != loc.size:
            raise DataError(f"{split_path}: key '{key}' lists some images twice; remove the duplicates")
        locs[loc_name] = loc - 1
    if ("train" in locs) != ("val" in locs):
        missing = "val_loc" if "train" in locs else "train_loc"
        raise DataError(f"{split_path}: key '{missing}' missing while its partner is present; provide both or neither")
    for i, a in enumerate(REQUIRED_LOCS):
        for b in REQUIRED_LOCS[i + 1:]:
            common = np.intersect1d(locs[a], locs[b])
            if common.size:
                raise DataError(f"{split_path}: keys '{a}_loc' and '{b}_loc' share {common.size} images "
                                f"(e.g. {common[0] + 1}); the standard splits must be disjoint")

    names = cellstr_to_list(smat.get("allclasses_names", split_mat.get("allclasses_names")))
    if names is not None and len(names) != n_classes:
        names = None  # a names list that does not match the classes is useless, not fatal
    ident = read_identity(root)
    ds_name = (name or ident.get("name") or root.resolve().name).upper()
    return XlsaDataset(name=ds_name, root=root, features=features_nd, labels=labels - 1, att=att, locs=locs,
                       class_names=names, semantics=sem_path.name,
                       defaults=(defaults or ident.get("defaults") or ds_name).upper())


def read_identity(root: str | Path) -> dict[str, str]:
    """``{"name": ..., "defaults": ...}`` from the dataset's ``zsl-dataset.json`` ({} without one).

    Raises:
        DataError: the file is not a JSON object of non-empty strings, or its ``defaults`` is a
            name no variant has defaults by.
    """
    path = Path(root) / IDENTITY_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))  # a BOM, as Windows editors write it
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not valid JSON ({str(e).splitlines()[0]}); "
                        'write {"name": "MYDATA", "defaults": "PF60"} or delete the file') from None
    if not isinstance(data, dict) or any(k not in ("name", "defaults") or not isinstance(v, str) or not v.strip()
                                         for k, v in data.items()):
        raise DataError(f'{path}: expected {{"name": "...", "defaults": "..."}} with non-empty strings')
    ident = {k: v.strip() for k, v in data.items()}
    _check_defaults(path, ident)
    return ident


def _check_defaults(path: Path, ident: dict[str, str]) -> None:
    """An unknown ``defaults`` would train silently with the reference defaults while `data info`
    shows the name: refuse it. ``defaults`` equal to ``name`` is the by-name fallback (what an
    earlier `data semantics` wrote without --defaults), fine whether or not it has defaults."""
    from ..errors import ConfigError
    from ..models import check_defaults_name

    defaults = ident.get("defaults")
    if defaults is None or defaults.upper() == ident.get("name", "").upper():
        return
    try:
        check_defaults_name(defaults, where=f"{path}: field 'defaults'")
    except ConfigError as e:
        raise DataError(f"{e}; fix the file or delete the field") from None


def write_identity(root: str | Path, *, name: str, defaults: str | None = None) -> Path:
    """Write ``zsl-dataset.json`` (atomically) so the dataset keeps its name and defaults
    wherever it is copied (another directory name, an s3:// prefix). Without ``defaults`` the
    file has no such field: the defaults follow the name.

    Raises:
        ConfigError: ``defaults`` is a name no variant has defaults by.
    """
    from ..models import check_defaults_name

    check_defaults_name(defaults, where="defaults")
    path = Path(root) / IDENTITY_FILE
    ident = {"name": name.upper()} | ({} if defaults is None else {"defaults": defaults.upper()})
    text = json.dumps(ident, indent=1) + "\n"
    atomic_write(path, lambda p: p.write_text(text))
    return path


def _require_file(path: Path, fix: str) -> None:
    if path.is_dir():  # "not found" would send the user looking for something that is there
        raise DataError(f"{path}: is a directory, not a file; {fix}")
    if not path.is_file():
        raise DataError(f"{path}: file not found; {fix}")


def _require(mat: dict[str, Any], key: str, path: Path) -> Any:
    if key not in mat or mat[key] is None:
        raise DataError(f"{path}: key '{key}' missing; use the official xlsa17 file or regenerate it")
    return mat[key]


def _vector(value: Any, key: str, path: Path) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim == 2 and 1 in arr.shape:
        return arr.ravel()
    if arr.ndim == 1:
        return arr
    raise DataError(f"{path}: key '{key}' has shape {arr.shape}; expected an (n, 1) or (1, n) vector")


def _int_vector(arr: np.ndarray, key: str, path: Path) -> np.ndarray:
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise DataError(f"{path}: key '{key}' is not numeric ({arr.dtype}); expected integer indices")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all() or (arr != np.round(arr)).any():
            raise DataError(f"{path}: key '{key}' has non-integer values; expected whole 1-based numbers")
    return arr.astype(np.int64)


def describe_dataset(ds: XlsaDataset) -> dict[str, Any]:
    """What ``zsl-search data info`` prints: sizes, dims, split counts and the split summary of
    each protocol (or why it is unavailable). Building the splits is part of the check.

    Raises:
        DataError: a protocol's split cannot be built from the dataset's locations.
    """
    from ._protocol import PROTOCOLS, make_split

    info: dict[str, Any] = {
        "name": ds.name,
        "defaults": ds.defaults,
        "root": str(ds.root),
        "images": int(ds.features.shape[0]),
        "feature_dim": int(ds.features.shape[1]),
        "classes": int(ds.att.shape[0]),
        "semantics": ds.semantics,
        "semantic_dim": int(ds.att.shape[1]),
        "locs": {k: int(v.shape[0]) for k, v in ds.locs.items()},
        "protocols": {},
    }
    for protocol in PROTOCOLS:
        if protocol == "validation" and not {"train", "val"} <= set(ds.locs):
            info["protocols"][protocol] = "unavailable (no train_loc/val_loc)"
            continue
        info["protocols"][protocol] = make_split(ds, protocol).summary()
    return info
