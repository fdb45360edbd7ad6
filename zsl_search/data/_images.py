"""Images in, features out: listing an image set, decoding, the xlsa17 preprocessing and a
torchvision backbone cut before its classifier. `zsl_search.data.extract` runs these on Ray."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import ConfigError, DataError

# ImageNet statistics, which torchvision's pretrained weights (and the xlsa17 features) expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ImageList:
    """Every image of a dataset in its final order, with its class.

    Attributes:
        paths: absolute paths, class by class (classes sorted by name, files by name) for a folder
            tree; the table's row order for a CSV/TSV.
        labels: 0-based class index of each path.
        classes: class names; ``labels`` index into it.
        names: the path recorded in ``image_files`` (relative to the folder or as the table wrote it).
    """

    paths: list[Path]
    labels: list[int]
    classes: list[str]
    names: list[str]


def list_images(source: str | Path) -> ImageList:
    """List an image set: class folders (``SOURCE/<class>/<image>``) or a CSV/TSV of ``path,class``.

    Every regular, non-hidden file in a class folder counts as an image: one that does not decode
    is skipped at extraction and reported, never silently ignored. Table paths are relative to
    the table's folder unless absolute; an optional header row (``path,class``) is recognised.

    Raises:
        DataError: one line, before any work: the source is missing or empty, a class folder is
            empty, a file sits outside the class folders, or a table row is malformed or names a
            missing file.
    """
    source = Path(source)
    if not source.exists():
        raise DataError(f"{source}: not found; pass a folder of class folders or a CSV/TSV of path,class")
    if source.is_file():
        return _from_table(source)
    classes = sorted(p.name for p in source.iterdir() if p.is_dir() and not p.name.startswith("."))
    strays = sorted(p.name for p in source.iterdir() if p.is_file() and not p.name.startswith("."))
    if strays:
        raise DataError(f"{source / strays[0]}: images must sit in class folders ({source}/<class>/<image>); "
                        f"move the {len(strays)} loose file(s) into one")
    if not classes:
        raise DataError(f"{source}: no class folders; expected {source}/<class>/<image> or a CSV/TSV of path,class")
    paths, labels, names = [], [], []
    for label, name in enumerate(classes):
        files = sorted(p for p in (source / name).iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise DataError(f"{source / name}: class folder has no files; add images or remove the folder")
        paths += [p.resolve() for p in files]
        labels += [label] * len(files)
        names += [f"{name}/{p.name}" for p in files]
    return ImageList(paths=paths, labels=labels, classes=classes, names=names)


def read_table(path: Path, hint: str) -> list[tuple[int, list[str]]]:
    """The non-empty rows of a CSV, or of a TSV when the name ends in .tsv/.tab (UTF-8, BOM or
    not), each with its line in the file (what an error about the row should name).

    Raises:
        DataError: the file cannot be read or parsed; ``hint`` says what it should hold.
    """
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    try:
        reader = csv.reader(path.read_text(encoding="utf-8-sig").splitlines(), delimiter=delimiter)
        return [(reader.line_num, r) for r in reader if any(cell.strip() for cell in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: not a readable CSV/TSV ({e}); {hint}") from None


def _from_table(table: Path) -> ImageList:
    rows = read_table(table, "write one path,class row per image")
    if rows and [c.strip().lower() for c in rows[0][1][:2]] == ["path", "class"]:
        rows = rows[1:]
    if not rows:
        raise DataError(f"{table}: no rows; write one path,class row per image")
    pairs, first = [], {}  # path -> (line, class) of its first row
    for line, row in rows:
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise DataError(f"{table}: line {line} has {len(row)} field(s) {row!r}; expected path,class")
        path, label = row[0].strip(), row[1].strip()
        if path in first:  # twice in the features, or under two labels: which was meant is the user's call
            raise DataError(f"{table}: line {line} lists {path} again (line {first[path][0]}, class "
                            f"{first[path][1]!r}); keep one row per image")
        first[path] = (line, label)
        pairs.append((path, label))
    missing = [p for p, _ in pairs if not (table.parent / p).is_file()]
    if missing:
        raise DataError(f"{table}: {len(missing)} listed file(s) not found, e.g. {table.parent / missing[0]}; "
                        f"paths are relative to the table's folder")
    classes = sorted({c for _, c in pairs})
    index = {c: i for i, c in enumerate(classes)}
    return ImageList(paths=[(table.parent / p).resolve() for p, _ in pairs], labels=[index[c] for _, c in pairs],
                     classes=classes, names=[p for p, _ in pairs])


def decode(data: bytes) -> Tensor:
    """RGB uint8 (3, H, W) image from encoded bytes: torchvision's decoder for JPEG, PNG, WebP and
    GIF, Pillow for the rest.

    Raises:
        ValueError: the bytes are empty, truncated or not an image; the message says which.
    """
    if not data:
        raise ValueError("empty file")
    try:  # deprecated in torchvision 0.29 in favour of TorchCodec: Pillow takes over once it is gone
        from torchvision.io import ImageReadMode, decode_image
    except ImportError:
        decode_image = None
    if decode_image is not None:
        try:
            image = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
            return image[0] if image.ndim == 4 else image  # an animated GIF: its first frame
        except RuntimeError as e:
            # torchvision prefixes "<function>, <source file>:<line>, " to its messages.
            reason = re.sub(r"^[^,]*, \S+:\d+, ", "", str(e)).strip()
            if not reason.startswith("Unsupported image file"):
                raise ValueError(f"unreadable image data ({reason.split('. ')[0]})") from None
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            rgb = im.convert("RGB")
    except UnidentifiedImageError:
        raise ValueError("not an image torchvision or Pillow can read") from None
    except (OSError, ValueError, SyntaxError) as e:  # Pillow's truncated/corrupt-file errors
        raise ValueError(str(e) or type(e).__name__) from None
    return torch.from_numpy(np.array(rgb)).permute(2, 0, 1).contiguous()


def preprocess(image: Tensor, *, resize: int = 256, crop: int = 224) -> Tensor:
    """The xlsa17 preprocessing: shorter side to ``resize`` (bilinear, antialiased), centre
    ``crop`` x ``crop``, scaled to [0, 1] and normalised with the ImageNet mean and std.

    Args:
        image: uint8 (3, H, W).
    Returns:
        float32 (3, crop, crop).
    """
    from torchvision.transforms.v2 import functional as TF

    out = TF.center_crop(TF.resize(image, [resize], antialias=True), [crop, crop])
    return TF.normalize(out.float().div_(255), list(IMAGENET_MEAN), list(IMAGENET_STD))


def backbone(model: str, weights: str = "DEFAULT", *, seed: int = 0) -> nn.Module:
    """A torchvision classification model with its last ``nn.Linear`` replaced by identity, in eval mode.

    Its output is the penultimate representation: ResNet-101's 2048-d pool5 (the xlsa17
    features), an EfficientNet's pooled features, a ViT's class token, VGG's fc7.

    Args:
        model: a torchvision classification model name (``torchvision.models.list_models``).
        weights: "DEFAULT" (torchvision's ImageNet weights, downloaded once into torch's cache),
            a local state-dict file (works offline), or "none" (random, seeded with ``seed``: for tests).
    Raises:
        ConfigError: unknown model, a model without a final linear layer, weights that cannot be
            downloaded or do not fit the model.
    """
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)
    if model not in names:
        raise ConfigError(f"--model {model!r} is not a torchvision classification model; "
                          f"try resnet101, resnet50, efficientnet_b0, vit_b_16 (all: torchvision.models.list_models())")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # "none": the same random network in every process
        if weights == "DEFAULT":
            try:
                net = torchvision.models.get_model(model, weights="DEFAULT")
            except Exception as e:  # noqa: BLE001 - urllib, hash and OS errors alike mean "no weights"
                raise ConfigError(f"--weights DEFAULT: could not get torchvision's weights for {model} "
                                  f"({str(e).splitlines()[0] if str(e) else type(e).__name__}); without internet, "
                                  f"pass a state-dict file: --weights resnet101.pth") from None
        else:
            net = torchvision.models.get_model(model, weights=None)
            if weights != "none":
                _load_weights(net, Path(weights), model)
    last = [name for name, m in net.named_modules() if isinstance(m, nn.Linear)]
    if not last:
        raise ConfigError(f"--model {model!r} has no final linear layer to cut; use a resnet, efficientnet or vit")
    parent_name, _, child = last[-1].rpartition(".")
    setattr(net.get_submodule(parent_name) if parent_name else net, child, nn.Identity())
    return net.eval().requires_grad_(False)


def _load_weights(net: nn.Module, path: Path, model: str) -> None:
    if not path.is_file():
        raise ConfigError(f"--weights {path}: file not found; pass DEFAULT, none or a state-dict file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - pickle, zip and OS errors alike
        raise ConfigError(f"--weights {path}: not a readable PyTorch state dict ({type(e).__name__})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    try:
        net.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as e:
        first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise ConfigError(f"--weights {path}: does not fit {model} ({first})") from None
