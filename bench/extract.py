"""Images per second of `zsl-search data extract` on this machine vs. a plain single-process
torchvision loop over the same images: same model, same preprocessing sizes, same total threads.

The naive loop is what a researcher writes first: Pillow opens each file, torchvision's
transforms resize, crop and normalise it, and every 64 images go through the model. `extract`
runs Ray actors (one per CPU by default, one thread each, the network in channels-last layout)
that decode on their own and write resumable shards. Both are timed end to end, model
construction included. `extract` runs twice: first starting local Ray (a few seconds, whatever
the image count), then again on the Ray it started, as it runs on a cluster brought up with
`ray up` (its actors still start each time). The images are JPEGs made here (smooth random
textures at a camera-like 4:3 size), so decoding costs what it costs on photos of that size.

    python -m bench.extract [--images 1024] [--model resnet18] [--threads 2] [--size 320]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


def _make_images(root: Path, n: int, size: int, classes: int = 8) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root / f"class{i % classes:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        # Smooth random texture: compresses like a photo rather than like noise.
        small = rng.integers(0, 256, (size * 3 // 32, size // 8, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((size, size * 3 // 4), Image.Resampling.BICUBIC)
        img.save(folder / f"{i:05d}.jpg", quality=90)


def naive_loop(root: Path, model: str, *, resize: int, crop: int, batch_size: int) -> tuple[int, float]:
    """(images, seconds) of the plain loop."""
    import torch
    from PIL import Image
    from torchvision import transforms

    from zsl_search.data._images import IMAGENET_MEAN, IMAGENET_STD, backbone

    start = time.perf_counter()
    net = backbone(model, "none")
    tf = transforms.Compose([transforms.Resize(resize), transforms.CenterCrop(crop), transforms.ToTensor(),
                             transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    paths = sorted(root.glob("*/*.jpg"))
    feats = []
    with torch.inference_mode():
        for i in range(0, len(paths), batch_size):
            batch = torch.stack([tf(Image.open(p).convert("RGB")) for p in paths[i : i + batch_size]])
            feats.append(net(batch))
    return len(torch.cat(feats)), time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    import torch

    from zsl_search.data import ExtractSettings, extract

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1024)
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--threads", type=int, default=2, help="total threads: the naive loop's torch threads; "
                                                           "extract's actors x threads per actor")
    ap.add_argument("--actors", type=int, default=None, help="extract actors (default: --threads, one thread each)")
    ap.add_argument("--size", type=int, default=320, help="image width in pixels (height 3/4 of it)")
    args = ap.parse_args(argv)
    actors = args.actors or args.threads
    per_actor = max(1, args.threads // actors)
    settings = ExtractSettings(model=args.model, weights="none")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "images"
        _make_images(root, args.images, args.size)
        torch.set_num_threads(args.threads)
        n, t_naive = naive_loop(root, args.model, resize=settings.resize, crop=settings.crop,
                                batch_size=settings.batch_size)
        torch.set_num_threads(1)  # the driver only reads files and writes shards
        t0 = time.perf_counter()
        report = extract(root, Path(tmp) / "cold", settings=settings, actors=actors, threads=per_actor)
        t_cold = time.perf_counter() - t0
        t0 = time.perf_counter()  # Ray is up now, as on a cluster started with `ray up`
        extract(root, Path(tmp) / "warm", settings=settings, actors=actors, threads=per_actor)
        t_warm = time.perf_counter() - t0
    print(f"{args.images} JPEGs of {args.size}x{args.size * 3 // 4}, {args.model}, resize {settings.resize} / "
          f"crop {settings.crop}, batch {settings.batch_size}, {args.threads} threads in all")
    print(f"naive single-process loop: {n / t_naive:7.2f} images/s ({t_naive:.1f} s)")
    good = report["extracted"]
    print(f"data extract, {actors} actor(s) x {per_actor} thread(s), starting local Ray: {good / t_cold:7.2f} images/s "
          f"({t_cold:.1f} s)")
    print(f"data extract, the same on a running Ray:            {good / t_warm:7.2f} images/s ({t_warm:.1f} s)")
    print(f"extract / naive: {t_naive / t_cold:.2f}x starting Ray, {t_naive / t_warm:.2f}x on a running Ray")
    return 0


if __name__ == "__main__":
    sys.exit(main())
