"""Data layer: load xlsa17 datasets, build protocol splits, synthesize datasets, and make
datasets from images (`extract` features with a torchvision backbone on Ray, `build_semantics`)."""

from __future__ import annotations

from ._extract import ExtractSettings, extract
from ._images import ImageList, list_images
from ._mat import MAT_FORMATS, read_mat, write_mat
from ._protocol import PREPROCESSING, PROTOCOLS, Split, make_split, max_folds, validation_rows
from ._semantics import build_semantics
from ._synth import KNOWN_DATASETS, PRESETS, synthesize
from ._xlsa import IDENTITY_FILE, XlsaDataset, describe_dataset, load_xlsa, read_identity, write_identity

__all__ = [
    "XlsaDataset", "load_xlsa", "describe_dataset", "read_identity", "write_identity", "IDENTITY_FILE",
    "Split", "make_split", "max_folds", "PROTOCOLS", "PREPROCESSING", "validation_rows",
    "synthesize", "PRESETS", "KNOWN_DATASETS", "read_mat", "write_mat", "MAT_FORMATS",
    "extract", "ExtractSettings", "list_images", "ImageList", "build_semantics",
]
