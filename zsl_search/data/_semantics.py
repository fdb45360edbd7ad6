"""``semantics``: class semantics and the xlsa17 splits for a dataset made by ``extract``.

Writes ``att_splits.mat`` beside ``res101.mat``: ``att`` (A x C, every class column of unit L2
norm, as in xlsa17), ``allclasses_names``, and 1-based ``trainval_loc``, ``test_seen_loc``,
``test_unseen_loc``, ``train_loc``, ``val_loc`` made with the xlsa17 rules:

* unseen classes (given, or a seeded fraction): all their images are ``test_unseen``;
* of the seen classes, val classes (given, or a seeded fraction) stand in for unseen ones while
  searching; the rest are train classes;
* a seeded 20% of every seen class's images are ``test_seen``; the rest are ``trainval``, which
  ``train_loc`` (train classes) and ``val_loc`` (val classes) partition.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError, warn
from ._extract import CLASSES_FILE
from ._images import read_table
from .._files import atomic_write
from ._mat import MAT_FORMATS, read_mat, write_mat
from .._seed import check_seed
from ._xlsa import write_identity

TEST_SEEN_FRACTION = 0.2
DEFAULT_FRACTION = 0.2  # of all classes unseen, then of the seen ones val, when not named


def build_semantics(
    root: str | Path, *, table: str | Path | None = None, text: str | Path | None = None,
    unseen: Sequence[str] | None = None, unseen_fraction: float | None = None,
    val: Sequence[str] | None = None, val_fraction: float | None = None,
    test_seen_fraction: float = TEST_SEEN_FRACTION, seed: int = 0,
    name: str | None = None, defaults: str | None = None, mat_format: str = "v5",
) -> dict[str, Any]:
    """Write ``root/att_splits.mat`` (and ``zsl-dataset.json``) for the features in ``root/res101.mat``.

    Args:
        root: a folder written by ``extract``: ``res101.mat`` and ``classes.txt``.
        table: a CSV/TSV with a header row: the class name, then one numeric column per attribute.
        text: a YAML or JSON mapping of class name -> description, encoded with TF-IDF
            (scikit-learn; English stop words removed, sublinear term frequency).
        unseen, val: class names; when None, a seeded ``unseen_fraction`` of all classes, then a
            seeded ``val_fraction`` of the seen ones (at least one class each; both default 0.2).
            Give a role its names or its fraction, not both.
        test_seen_fraction: share of each seen class's images held out as ``test_seen``.
        seed: seeds every random choice.
        name, defaults: the dataset's identity (see `XlsaDataset`); default the folder's name.
        mat_format: "v5" or "v7.3".
    Returns:
        A summary: classes per role, images per split, the semantic dimension.
    Raises:
        ConfigError: not exactly one of ``table``/``text``, names and a fraction for one role,
            unknown class names, impossible fractions, a seed outside 0 .. 2**32 - 1, an unknown
            ``defaults`` name.
        DataError: a missing or malformed input file, a class without semantics or with too few images.
    """
    from ..models import check_defaults_name  # the variants' registry: imported only when needed

    root = Path(root)
    if (table is None) == (text is None):
        raise ConfigError("give the class semantics as exactly one of --table CSV or --text YAML/JSON")
    if mat_format not in MAT_FORMATS:
        raise ConfigError(f"--format {mat_format!r}: use one of {', '.join(MAT_FORMATS)}")
    for role, names, fraction in (("unseen", unseen, unseen_fraction), ("val", val, val_fraction)):
        if names is not None and fraction is not None:  # the fraction would be ignored without a word
            raise ConfigError(f"--{role} and --{role}-fraction both given; pass the {role} classes by name "
                              f"or as a fraction, not both")
    unseen_fraction = DEFAULT_FRACTION if unseen_fraction is None else unseen_fraction
    val_fraction = DEFAULT_FRACTION if val_fraction is None else val_fraction
    for flag, value in (("--unseen-fraction", unseen_fraction), ("--val-fraction", val_fraction),
                        ("--test-seen-fraction", test_seen_fraction)):
        if not 0 < value < 1:
            raise ConfigError(f"{flag} {value}: must be between 0 and 1")
    check_seed(seed)
    check_defaults_name(defaults, where="--defaults")  # before anything is written
    classes = _classes(root)
    labels = _labels(root, len(classes))  # (N,) 0-based
    att = _from_table(Path(table), classes) if table is not None else _from_text(Path(text), classes)  # (C, A)
    norms = np.linalg.norm(att, axis=1)
    if (norms == 0).any():
        bad = classes[int(np.flatnonzero(norms == 0)[0])]
        raise DataError(f"{table or text}: class {bad!r} has an all-zero semantic vector; give it some attributes "
                        f"or words")
    att = att / norms[:, None]

    rng = np.random.default_rng(seed)
    unseen_idx = _pick(classes, unseen, unseen_fraction, np.arange(len(classes)), rng, "--unseen")
    seen_idx = np.setdiff1d(np.arange(len(classes)), unseen_idx)
    if seen_idx.size < 2:  # else the val pick below would blame --val for what the unseen choice left
        flag = "--unseen" if unseen is not None else f"--unseen-fraction {unseen_fraction}"
        raise ConfigError(f"{flag} leaves {seen_idx.size} of {len(classes)} classes seen; a split needs at least "
                          f"2 seen classes (train and val): make fewer classes unseen")
    val_idx = _pick(classes, val, val_fraction, seen_idx, rng, "--val")
    train_idx = np.setdiff1d(seen_idx, val_idx)
    if train_idx.size == 0:
        raise ConfigError(f"no train classes are left ({len(classes)} classes: {unseen_idx.size} unseen, "
                          f"{val_idx.size} val); lower the fractions or list fewer classes")
    locs: dict[str, list[np.ndarray]] = {k: [] for k in ("trainval", "test_seen", "train", "val")}
    for c in seen_idx:
        rows = np.flatnonzero(labels == c)
        # Train classes keep 2 trainval images (the validation protocol holds one out), val classes 1.
        keep = 2 if c in train_idx else 1
        if rows.size < keep:
            raise DataError(f"{root / 'res101.mat'}: class {classes[c]!r} has {rows.size} image(s); a seen "
                            f"{'train' if keep == 2 else 'val'} class needs at least {keep}: add images or list it "
                            f"in --unseen")
        n_test = min(int(round(test_seen_fraction * rows.size)), rows.size - keep)
        perm = rng.permutation(rows)
        locs["test_seen"].append(perm[:n_test])
        locs["trainval"].append(perm[n_test:])
        locs["train" if c in train_idx else "val"].append(perm[n_test:])
    out = {k: np.sort(np.concatenate(v)) for k, v in locs.items()}
    out["test_unseen"] = np.flatnonzero(np.isin(labels, unseen_idx))
    if out["test_unseen"].size == 0:
        raise DataError(f"{root / 'res101.mat'}: the unseen classes have no images; choose other --unseen classes")
    n_img = labels.size
    dtype = np.uint16 if n_img < 2**16 else np.float64  # as the xlsa17 release
    _warn_single_classes(train=train_idx.size, val=val_idx.size, unseen=unseen_idx.size)
    variables: dict[str, Any] = {"att": att.T.astype(np.float64), "allclasses_names": list(classes)}
    for key, rows in out.items():
        variables[f"{key}_loc"] = (rows + 1).astype(dtype)[:, None]  # (n, 1), 1-based
    atomic_write(root / "att_splits.mat", lambda p: write_mat(p, variables, mat_format=mat_format))
    # Without --defaults the file names none: the defaults follow the dataset's name, as everywhere.
    write_identity(root, name=name or root.resolve().name, defaults=defaults)
    return {
        "classes": len(classes), "semantic_dim": int(att.shape[1]),
        "unseen": [classes[i] for i in unseen_idx], "val": [classes[i] for i in val_idx],
        "train": [classes[i] for i in train_idx], **{f"{k}_images": int(v.size) for k, v in out.items()},
    }


def _warn_single_classes(*, train: int, val: int, unseen: int) -> None:
    """A role held by one class makes what is scored on it trivial: say so (the split is still
    valid, and a tiny dataset may have no other choice)."""
    single = [role for role, n in (("val", val), ("unseen", unseen)) if n == 1]
    if single:  # ZSL picks among that role's classes alone: one class is always right
        warn(f"one {' and one '.join(single)} class: the {' and '.join(f'{r} ZSL accuracy' for r in single)} "
             f"{'is' if len(single) == 1 else 'are'} trivially 1; hold out at least 2 for a score that means something")
    if train == 1 and val == 1:  # the validation protocol's whole GZSL task: two classes
        warn("one train and one val class: the validation GZSL task tells two classes apart, so validation H "
             "ranks configurations by almost nothing; list more classes in --val or fewer in --unseen")


def _classes(root: Path) -> list[str]:
    path = root / CLASSES_FILE
    if not path.is_file():
        raise DataError(f"{path}: not found; run `zsl-search data extract IMAGES {root}` first "
                        f"(or write the class names, one per line in label order)")
    classes = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(set(classes)) != len(classes) or not classes:
        raise DataError(f"{path}: needs distinct class names, one per line")
    return classes


def _labels(root: Path, n_classes: int) -> np.ndarray:
    path = root / "res101.mat"
    mat = read_mat(path)
    if "labels" not in mat:
        raise DataError(f"{path}: key 'labels' missing; run `zsl-search data extract` again")
    labels = np.asarray(mat["labels"]).ravel().astype(np.int64) - 1
    if labels.size == 0 or labels.min() < 0 or labels.max() >= n_classes:
        raise DataError(f"{path}: labels do not match the {n_classes} classes of {root / CLASSES_FILE}")
    return labels


def _not_a_file(path: Path) -> str:
    return "a directory, not a file" if path.is_dir() else "file not found"


def _from_table(path: Path, classes: list[str]) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path}: {_not_a_file(path)}; pass a CSV with a header: class, then attribute columns")
    rows = read_table(path, "write a header (class, attribute names...) and one row per class")
    if len(rows) < 2 or len(rows[0][1]) < 2:
        raise DataError(f"{path}: expected a header row (class, attribute names...) and one row per class")
    width = len(rows[0][1])
    values: dict[str, list[float]] = {}
    lines: dict[str, int] = {}  # class -> the line of its row
    for line, row in rows[1:]:
        if len(row) != width:
            raise DataError(f"{path}: line {line} has {len(row)} fields, the header {width}")
        name = row[0].strip()
        if name in lines:  # which of the two rows was meant is the user's call, not ours
            raise DataError(f"{path}: class {name!r} has two rows (lines {lines[name]} and {line}); keep one of them")
        lines[name] = line
        try:
            values[name] = [float(v) for v in row[1:]]
        except ValueError:
            raise DataError(f"{path}: line {line} ({name!r}) has a non-numeric attribute value") from None
    missing = [c for c in classes if c not in values]
    if missing:
        raise DataError(f"{path}: no row for {len(missing)} class(es) of the dataset, e.g. {missing[0]!r}")
    att = np.asarray([values[c] for c in classes], dtype=np.float64)
    if not np.isfinite(att).all():
        raise DataError(f"{path}: NaN or infinite attribute values; fill them in")
    return att


def _from_text(path: Path, classes: list[str]) -> np.ndarray:
    import yaml
    from sklearn.feature_extraction.text import TfidfVectorizer

    if not path.is_file():
        raise DataError(f"{path}: {_not_a_file(path)}; pass a YAML/JSON mapping of class name -> description")
    try:
        text = path.read_text(encoding="utf-8-sig")
        docs, node = yaml.safe_load(text), yaml.compose(text)  # JSON is YAML too
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise DataError(f"{path}: not readable YAML/JSON ({str(e).splitlines()[0]})") from None
    if not isinstance(docs, dict):
        raise DataError(f"{path}: expected a mapping of class name -> description")
    lines: dict[str, int] = {}  # YAML keeps the last of two equal keys silently; a table row refuses it
    for key, _ in node.value:
        name, line = str(key.value).strip(), key.start_mark.line + 1
        if name in lines:
            raise DataError(f"{path}: class {name!r} has two descriptions (lines {lines[name]} and {line}); "
                            "keep one of them")
        lines[name] = line
    docs = {str(k).strip(): v for k, v in docs.items()}
    missing = [c for c in classes if c not in docs]
    if missing:
        raise DataError(f"{path}: no description for {len(missing)} class(es), e.g. {missing[0]!r}")
    bad = [c for c in classes if not isinstance(docs[c], str) or not docs[c].strip()]
    if bad:
        raise DataError(f"{path}: the description of {bad[0]!r} is not a non-empty string")
    vectorizer = TfidfVectorizer(stop_words="english", sublinear_tf=True)
    try:
        return vectorizer.fit_transform([docs[c] for c in classes]).toarray()  # (C, V)
    except ValueError as e:  # e.g. every word a stop word
        raise DataError(f"{path}: TF-IDF found no usable words ({e})") from None


def _pick(classes: list[str], names: Sequence[str] | None, fraction: float, pool: np.ndarray,
          rng: np.random.Generator, flag: str) -> np.ndarray:
    """Indices of the named classes (all in ``pool``), else a seeded ``fraction`` of ``pool`` (at least 1)."""
    if names is not None:
        index = {c: i for i, c in enumerate(classes)}
        unknown = [n for n in names if n not in index]
        if unknown:
            raise ConfigError(f"{flag}: {unknown[0]!r} is not a class of this dataset ({json.dumps(classes[:5])[:-1]}"
                              f"{', ...' if len(classes) > 5 else ''}])")
        picked = np.asarray(sorted({index[n] for n in names}), dtype=np.int64)
        outside = np.setdiff1d(picked, pool)
        if outside.size:
            raise ConfigError(f"{flag}: {classes[int(outside[0])]!r} is already unseen; a class has one role")
        if picked.size == 0:
            raise ConfigError(f"{flag}: list at least one class")
        return picked
    n = max(1, int(round(fraction * pool.size)))
    if n >= pool.size:
        raise ConfigError(f"{flag}: {pool.size} classes are too few to hold out {n}; add classes or list them")
    return np.sort(rng.choice(pool, size=n, replace=False))
