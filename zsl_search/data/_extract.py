"""``extract``: a folder of images -> ``res101.mat`` in the xlsa17 layout, on Ray.

The driver lists the images, builds the backbone once (so weights are downloaded or loaded in
one place, and a random ``none`` network is the same everywhere) and puts its state in Ray's
object store. Extraction actors (one per GPU, else one per CPU) load it, then take shards of
the image list: the driver reads each shard's files and ships the bytes, so the nodes need no
shared filesystem; an actor decodes them on a thread pool, runs the network in fixed batches
and returns the features. Every finished shard is written to ``OUT/.extract/`` at once, which
is what makes a killed run resumable: shard boundaries and batches depend only on the image
list and the settings, so a resumed run computes exactly what an uninterrupted one would have.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._files import atomic_write
from .._seed import check_seed
from ..errors import ConfigError, DataError, warn
from ._images import ImageList, backbone, decode, list_images, preprocess
from ._mat import MAT_FORMATS, write_mat
from ._paths import check_output_dir

REPORT_FILE = "extract-report.json"
CLASSES_FILE = "classes.txt"
_WORK_DIR = ".extract"  # shards and the manifest of an unfinished run
_VERSION = 1  # bump when a change alters what a shard holds


@dataclass(frozen=True)
class ExtractSettings:
    """What decides the features (and so the shards). Everything else (actors, threads,
    device, address) only decides how fast they are computed."""

    model: str = "resnet101"
    weights: str = "DEFAULT"
    resize: int = 256
    crop: int = 224
    batch_size: int = 64
    shard_size: int = 256
    seed: int = 0

    def check(self) -> None:
        for name in ("resize", "crop", "batch_size", "shard_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be a positive integer")
        if self.crop > self.resize:
            raise ConfigError(f"--crop {self.crop} is larger than --resize {self.resize}; "
                              f"crop at most the resized side")
        if self.shard_size % self.batch_size:
            raise ConfigError(f"--shard-size {self.shard_size} must be a multiple of --batch-size {self.batch_size}")
        check_seed(self.seed)


def extract(
    images: str | Path, out: str | Path, *, settings: ExtractSettings | None = None, actors: int | None = None,
    threads: int = 1, address: str | None = None, mat_format: str = "v5", restart: bool = False,
    progress: Callable[[int, int, float], None] | None = None,
) -> dict[str, Any]:
    """Extract features of every image under ``images`` into ``out/res101.mat``.

    Args:
        images: class folders (``images/<class>/<file>``) or a CSV/TSV of ``path,class``.
        out: output folder: ``res101.mat`` (``features`` D x N float32, 1-based ``labels``,
            ``image_files``), ``classes.txt`` (label order) and ``extract-report.json``.
        settings: model, weights, preprocessing and batching (`ExtractSettings`).
        actors: extraction actors; default one per GPU of the cluster, else one per CPU.
        threads: torch threads (and decoding threads) per CPU actor.
        address: a Ray cluster to run on; default ``RAY_ADDRESS`` or a private local Ray.
        mat_format: "v5" or "v7.3" (for feature files over 2 GiB).
        restart: discard an unfinished run's shards (or a finished run's output) made with other
            inputs or settings, instead of refusing.
        progress: called as ``progress(images_done, images_total, seconds)`` after every shard.
    Returns:
        The report also written to ``extract-report.json``.
    Raises:
        DataError: a bad image source or an ``out`` that is a file (before any work), or ``out``
            holds files of another extraction (pass ``restart``) or a ``res101.mat`` this command
            did not write.
        ConfigError: bad settings, model or weights.
    """
    import ray

    from .._ray import init_ray

    settings = settings or ExtractSettings()
    settings.check()
    if mat_format not in MAT_FORMATS:
        raise ConfigError(f"--format {mat_format!r}: use one of {', '.join(MAT_FORMATS)}")
    if threads < 1 or (actors is not None and actors < 1):
        raise ConfigError("--actors and --threads must be positive integers")
    out = Path(out)
    check_output_dir(out)
    listing = list_images(images)
    manifest = _manifest(listing, settings)
    work = out / _WORK_DIR
    if _finished(out, manifest) and not restart:
        report = json.loads((out / REPORT_FILE).read_text())  # done before: nothing left to do
        report.update(resumed_shards=report["shards"], actors=0, nodes=0, seconds=0.0, images_per_s=None)
        return report
    net = backbone(settings.model, settings.weights, seed=settings.seed)  # fails fast on bad model/weights
    _claim(out, manifest, restart)

    total, size = len(listing.paths), settings.shard_size
    n_shards = -(-total // size)
    todo = [i for i in range(n_shards) if not (work / _shard_name(i)).is_file()]
    images_todo = sum(min(size, total - i * size) for i in todo)
    start = time.perf_counter()

    def advance(images: int) -> None:
        if progress is not None:
            progress(total - images_todo + images, total, time.perf_counter() - start)

    n_actors, nodes = 0, set()
    if todo:
        init_ray(address)
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        # More actors than the cluster can place would hold their shards forever.
        capacity = gpus or max(1, int(resources.get("CPU", 1)) // threads)
        if actors and actors > capacity:
            room = "one per GPU" if gpus else f"its CPUs / {threads} thread(s) each"
            warn(f"--actors {actors}: the cluster has room for {capacity} ({room}); using {capacity}")
        n_actors = min(actors or capacity, capacity, len(todo))
        state = ray.put({k: v.cpu() for k, v in net.state_dict().items()})
        worker = ray.remote(_Extractor).options(num_cpus=1 if gpus else threads, num_gpus=1 if gpus else 0)
        pool = [worker.remote(settings, state, threads) for _ in range(n_actors)]
        try:
            _run_shards(pool, listing, settings, todo, work, advance, nodes)
        finally:
            for actor in pool:
                ray.kill(actor)
    return _assemble(out, listing, settings, manifest, n_shards, resumed=n_shards - len(todo), actors=n_actors,
                     nodes=len(nodes), images_done=images_todo, seconds=time.perf_counter() - start,
                     mat_format=mat_format)


class _Extractor:
    """One Ray actor: the backbone on its device, decoding on a thread pool."""

    def __init__(self, settings: ExtractSettings, state: dict, threads: int) -> None:
        import torch

        from .._memory import reuse_freed_memory

        torch.set_num_threads(threads)
        # A batch's activations are hundreds of MiB: without this every batch maps and faults
        # them in anew (about 1.2x more images/s with it, bench/extract.py).
        reuse_freed_memory()
        self.settings = settings
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        net = backbone(settings.model, "none", seed=settings.seed)
        net.load_state_dict(state)
        # channels_last: oneDNN's fast convolution layout on CPU (about 1.25x for ResNets), fine on GPUs too.
        self.net = net.to(self.device, memory_format=torch.channels_last)
        self.decoders = ThreadPoolExecutor(max(1, threads))

    def _load(self, blob: bytes | str):
        if isinstance(blob, str):
            return blob  # the driver could not read the file: its reason
        try:
            return preprocess(decode(blob), resize=self.settings.resize, crop=self.settings.crop)
        except ValueError as e:  # what `decode` says of a bad file
            return str(e)
        except Exception as e:  # noqa: BLE001 - anything else one file does (e.g. a decompression bomb) skips it too
            return f"{type(e).__name__}: {e}"

    def run(self, shard: int, blobs: list[bytes | str]) -> tuple[str, int, bytes]:
        """(node id, images, the bytes of the shard's .npz file): features of the decodable
        images, their positions in the shard, and why the others were skipped."""
        import ray
        import torch

        loaded = list(self.decoders.map(self._load, blobs))
        ok = [i for i, item in enumerate(loaded) if not isinstance(item, str)]
        errors = {i: item for i, item in enumerate(loaded) if isinstance(item, str)}
        feats = []
        with torch.inference_mode():
            for i in range(0, len(ok), self.settings.batch_size):
                x = torch.stack([loaded[j] for j in ok[i : i + self.settings.batch_size]])
                x = x.to(self.device, memory_format=torch.channels_last)
                feats.append(self.net(x).flatten(1).float().cpu().numpy())
        dim = feats[0].shape[1] if feats else 0
        buf = io.BytesIO()
        np.savez(buf, features=np.concatenate(feats) if feats else np.zeros((0, dim), np.float32),
                 ok=np.asarray(ok, dtype=np.int64), errors=json.dumps({str(k): v for k, v in errors.items()}))
        return ray.get_runtime_context().get_node_id(), len(blobs), buf.getvalue()


def _run_shards(pool: list, listing: ImageList, settings: ExtractSettings, todo: list[int], work: Path,
                advance: Callable[[int], None], nodes: set[str]) -> None:
    """Keep two shards queued per actor and write each result as it lands; ``nodes`` collects
    where they ran. A shard whose actor died (its node lost) goes back in the queue for the others."""
    import ray

    pending: dict[Any, tuple[Any, int]] = {}
    queue, alive = list(todo), list(pool)
    images = 0

    def submit(actor) -> None:
        shard = queue.pop(0)
        lo = shard * settings.shard_size
        blobs = [_read(p) for p in listing.paths[lo : lo + settings.shard_size]]
        pending[actor.run.remote(shard, blobs)] = (actor, shard)

    for actor in alive * 2:
        if queue:
            submit(actor)
    while pending:
        (ref,), _ = ray.wait(list(pending), num_returns=1)
        actor, shard = pending.pop(ref)
        try:
            node, n, data = ray.get(ref)
        except ray.exceptions.RayActorError:
            queue.insert(0, shard)
            if actor in alive:
                alive.remove(actor)
            if not alive:
                raise DataError(f"every extraction actor died; the finished shards are kept in {work}: "
                                f"run the same command again to continue") from None
            if len(pending) < 2 * len(alive):  # so work is pending while the queue holds any
                submit(alive[0])
            continue
        except ray.exceptions.RayError as e:
            cause = str(getattr(e, "cause", None) or e).strip().splitlines()[-1]
            raise DataError(f"extraction failed ({cause}); the finished shards are kept in {work}: "
                            f"run the same command again to continue") from None
        atomic_write(work / _shard_name(shard), lambda p, data=data: p.write_bytes(data))
        images += n
        nodes.add(node)
        advance(images)
        if queue and actor in alive:
            submit(actor)


def _read(path: Path) -> bytes | str:
    try:
        return path.read_bytes()
    except OSError as e:
        return f"unreadable ({e.strerror or type(e).__name__})"


def _assemble(out: Path, listing: ImageList, settings: ExtractSettings, manifest: dict, n_shards: int, *,
              resumed: int, actors: int, nodes: int, images_done: int, seconds: float,
              mat_format: str) -> dict[str, Any]:
    """Shards -> res101.mat, classes.txt and the report; then the shards go."""
    work = out / _WORK_DIR
    feats, kept, skipped = [], [], []
    for shard in range(n_shards):
        with np.load(work / _shard_name(shard)) as z:
            lo = shard * settings.shard_size
            feats.append(z["features"])
            kept += [lo + int(i) for i in z["ok"]]
            skipped += [{"path": listing.names[lo + int(i)], "reason": r}
                        for i, r in sorted(json.loads(str(z["errors"])).items(), key=lambda kv: int(kv[0]))]
    if not kept:
        raise DataError(f"{listing.paths[0].parent}: none of the {len(listing.paths)} images could be decoded; "
                        f"see the reasons in {work}")
    features = np.concatenate(feats)  # (N_ok, D)
    # Classes left without a readable image are dropped; the others keep their order.
    present = sorted({listing.labels[i] for i in kept})
    new_label = {old: new for new, old in enumerate(present)}
    classes = [listing.classes[c] for c in present]
    dropped = [c for i, c in enumerate(listing.classes) if i not in new_label]
    res = {"features": np.ascontiguousarray(features.T),  # (D, N)
           "labels": np.asarray([new_label[listing.labels[i]] + 1 for i in kept], dtype=np.float64)[:, None],
           "image_files": [listing.names[i] for i in kept]}
    atomic_write(out / "res101.mat", lambda p: write_mat(p, res, mat_format=mat_format))
    atomic_write(out / CLASSES_FILE, lambda p: p.write_text("".join(f"{c}\n" for c in classes)))
    report = {
        "images": len(listing.paths), "extracted": len(kept), "skipped": skipped, "classes": len(classes),
        "dropped_classes": dropped, "feature_dim": int(features.shape[1]), **asdict(settings),
        "shards": n_shards, "resumed_shards": resumed, "actors": actors, "nodes": nodes, "seconds": round(seconds, 3),
        "images_per_s": round(images_done / seconds, 2) if images_done and seconds else None,
        "manifest": manifest,
    }
    atomic_write(out / REPORT_FILE, lambda p: p.write_text(json.dumps(report, indent=1) + "\n"))
    shutil.rmtree(work, ignore_errors=True)
    return report


def _manifest(listing: ImageList, settings: ExtractSettings) -> dict[str, Any]:
    """What the shards depend on: the image list (names, classes, sizes, times) and the settings.
    A weights file counts by its content."""
    h = hashlib.sha256()
    for path, name, label in zip(listing.paths, listing.names, listing.labels, strict=True):
        st = path.stat()
        h.update(f"{name}\0{listing.classes[label]}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    weights = settings.weights
    if weights not in ("DEFAULT", "none") and Path(weights).is_file():
        weights = "sha256:" + hashlib.sha256(Path(weights).read_bytes()).hexdigest()
    return {"version": _VERSION, "images": h.hexdigest(), **asdict(settings), "weights": weights}


def _finished(out: Path, manifest: dict) -> bool:
    try:
        return (out / "res101.mat").is_file() and json.loads((out / REPORT_FILE).read_text())["manifest"] == manifest
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _claim(out: Path, manifest: dict, restart: bool) -> None:
    """Make ``out`` ours for this manifest, refusing to overwrite what another run or another tool wrote."""
    work = out / _WORK_DIR
    if (out / "res101.mat").exists() and not (out / REPORT_FILE).is_file():
        raise DataError(f"{out / 'res101.mat'}: exists and was not written by `zsl-search data extract`; "
                        f"choose another output folder")
    if (out / "res101.mat").exists() and not restart:
        raise DataError(f"{out}: holds an extraction of other images or settings; pass --restart to replace it, "
                        f"or choose another output folder")
    if restart and (out / "att_splits.mat").is_file():
        warn(f"{out / 'att_splits.mat'} indexes the features being replaced; run `zsl-search data semantics` again")
    saved = work / "manifest.json"
    if saved.is_file():
        try:
            same = json.loads(saved.read_text()) == manifest
        except ValueError:
            same = False
        if not same and not restart:
            raise DataError(f"{work}: an unfinished extraction of other images or settings; pass --restart to "
                            f"discard it, or choose another output folder")
        if not same:
            shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    atomic_write(saved, lambda p: p.write_text(json.dumps(manifest, indent=1) + "\n"))


def _shard_name(shard: int) -> str:
    return f"shard-{shard:06d}.npz"
