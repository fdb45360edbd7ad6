"""Where a search's features come from, and how to turn that into a preprocessed `Split`."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._files import atomic_write
from ..errors import ConfigError, DataError
from ..storage import is_remote

if TYPE_CHECKING:
    from ..search import SearchSpec

__all__ = ["DataSource", "resolve_dataset_dir", "load_dataset", "load_split", "check_source"]

DEMO = "demo"  # the built-in synthetic dataset, generated on first use


@dataclass(frozen=True)
class DataSource:
    """Everything that determines a Split: identical sources share one feature store."""

    path: str  # directory, storage URI (s3://bucket/prefix), or "demo"
    semantics: str = "att_splits.mat"
    protocol: str = "validation"
    preprocess: str = "minmax"
    seed: int = 0  # seeds the validation-seen hold-out
    defaults: str | None = None  # which per-dataset defaults apply; None: the dataset's identity
    fold: int = 0  # validation class fold (zsl_search.data.make_split)

    @classmethod
    def from_spec(cls, spec: SearchSpec, *, protocol: str | None = None, fold: int = 0) -> DataSource:
        """The source a search spec reads: its dataset section, protocol and seed (``protocol``
        replaces the spec's, e.g. ``"test"`` for finalize)."""
        d = spec.dataset
        return cls(path=d.path, semantics=d.semantics, protocol=protocol or spec.protocol, preprocess=d.preprocess,
                   seed=spec.seed, defaults=d.defaults, fold=fold)

    def key(self) -> str:
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


def resolve_dataset_dir(path: str, *, semantics: str, cache_dir: Path) -> Path:
    """A local directory holding the dataset: ``demo`` is synthesised into the cache once, a
    remote storage URI (``s3://``) is downloaded into the cache once, a local path is used as it is."""
    if path == DEMO:
        from ..data import synthesize

        root = cache_dir / "demo"
        if not (root / "res101.mat").exists() or not (root / "att_splits.mat").exists():
            synthesize(root, preset="demo", seed=0)
        return root
    if is_remote(path):
        from ..data import IDENTITY_FILE
        from ..storage import StorageNotFound, open_storage

        storage = open_storage(path)
        root = cache_dir / "remote" / hashlib.sha1(path.encode()).hexdigest()[:16]
        for name in ("res101.mat", semantics, IDENTITY_FILE):
            if not (root / name).exists():
                try:
                    data = storage.read_bytes(name)
                except StorageNotFound:
                    if name == IDENTITY_FILE:  # optional
                        continue
                    raise
                root.mkdir(parents=True, exist_ok=True)
                atomic_write(root / name, lambda p, data=data: p.write_bytes(data))
        return root
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"dataset {path}: not a directory; give an xlsa17 directory, s3://bucket/prefix or 'demo'")
    return root


def check_source(source: DataSource, *, cache_dir: Path, folds: int = 1) -> dict[str, Any]:
    """Pre-flight check, before Ray starts: load and validate the dataset of ``source`` exactly
    as ``zsl-search data info`` does, then build the split the search will use.

    ``demo`` is generated and a remote dataset downloaded into ``cache_dir`` first (the feature stores
    reuse them). With ``folds`` > 1 every validation class fold is built too. Returns the
    `zsl_search.data.describe_dataset` summary.

    Raises:
        DataError: one line naming the file and key (missing, unreadable, NaN features,
            locations out of range, overlapping splits, ...) or the protocol the data cannot serve.
    """
    from ..data import describe_dataset, make_split, max_folds

    ds = load_dataset(source, cache_dir=cache_dir)
    root = ds.root
    info = describe_dataset(ds)
    available = info["protocols"].get(source.protocol)
    if not isinstance(available, dict):
        raise DataError(f"{root / source.semantics}: protocol {source.protocol!r} is {available}; "
                        f"use protocol: test, or add train_loc and val_loc")
    if folds > 1 and source.protocol == "validation" and folds > max_folds(ds):
        raise ConfigError(f"folds: {folds}, but {root / source.semantics} allows at most {max_folds(ds)} (its val "
                          f"classes, then disjoint groups of as many train classes); lower folds")
    for fold in range(folds if source.protocol == "validation" else 1):
        make_split(ds, source.protocol, seed=source.seed, preprocess=source.preprocess, fold=fold)
    return info


def load_split(source: DataSource, *, cache_dir: Path):  # -> Split
    """Load, validate and preprocess the dataset of ``source`` (reads the .mat files)."""
    from ..data import make_split

    ds = load_dataset(source, cache_dir=cache_dir)
    return make_split(ds, source.protocol, seed=source.seed, preprocess=source.preprocess, fold=source.fold)


def load_dataset(source: DataSource, *, cache_dir: Path):  # -> XlsaDataset
    """The validated dataset of ``source``, named as the user knows it: a dataset fetched from
    ``s3://bucket/sets/pf60`` is PF60 (not its cache directory), unless its ``zsl-dataset.json``
    says otherwise; ``source.defaults`` overrides which per-dataset defaults apply."""
    from ..data import load_xlsa, read_identity

    root = resolve_dataset_dir(source.path, semantics=source.semantics, cache_dir=cache_dir)
    name = None
    if is_remote(source.path) and "name" not in read_identity(root):
        name = source.path.rstrip("/").rsplit("/", 1)[-1]
    return load_xlsa(root, semantics=source.semantics, name=name, defaults=source.defaults)
