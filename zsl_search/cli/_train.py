"""``zsl-search train``: train one variant on one dataset and report U, S, H per epoch."""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .._seed import MAX_SEED, check_seed
from .._files import nearest_existing
from ..errors import ConfigError
from ._args import path_arg, place_arg


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one GAN variant and evaluate it (GZSL U/S/H)")
    p.add_argument("--data", required=True, type=place_arg, help="xlsa17 dataset directory (res101.mat + att_splits.mat), "
                   "s3://bucket/prefix, or demo (the built-in synthetic set), as a spec's dataset.path")
    p.add_argument("--variant", required=True, help="GAN variant (see `zsl-search variants`)")
    p.add_argument("--protocol", default="validation", choices=["validation", "test"],
                   help="validation: train classes vs val classes, never reads test (default); test: published protocol")
    p.add_argument("--epochs", type=int, help="training epochs (default: the variant's reference value)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a hyperparameter, e.g. --set lr_g=1e-4 (repeatable)")
    p.add_argument("--seed", type=int, default=0, help=f"random seed, 0 .. {MAX_SEED} (default 0)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    p.add_argument("--semantics", default="att_splits.mat", help="class-semantics file in the dataset directory")
    p.add_argument("--preprocess", default="minmax", choices=["minmax", "l2", "none"])
    p.add_argument("--defaults", metavar="DATASET",
                   help="which per-dataset defaults apply, e.g. PF60 or DEMO (default: the dataset's zsl-dataset.json, "
                        "else its directory name)")
    p.add_argument("--eval-every", type=int, default=1, help="evaluate every N epochs (and after the last)")
    p.add_argument("--logdir", type=path_arg, help="write TensorBoard event files here")
    p.add_argument("--checkpoint", type=path_arg, help="save state here after every epoch; resume from it if present")
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last line of stdout")
    p.set_defaults(run=run)


def parse_overrides(items: list[str]) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``; raises `ConfigError` on a malformed item."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set lr_g=1e-4")
        out[key.strip()] = value.strip()
    return out


def check_checkpoint_path(path: Path) -> None:
    """Raise `ConfigError` unless a checkpoint can be written at ``path``: checked before
    training, where the first save would otherwise fail only after an epoch's work."""
    if path.is_dir():
        raise ConfigError(f"--checkpoint {path}: is a directory; name a file, e.g. {path / 'run.pt'}")
    # The nearest existing ancestor is where `Trainer.save` creates the missing directories.
    parent = nearest_existing(path.parent)
    if not parent.is_dir():
        raise ConfigError(f"--checkpoint {path}: {parent} is a file, not a directory; name a checkpoint in a directory")
    if not _writable(parent):
        raise ConfigError(f"--checkpoint {path}: directory {parent} is not writable; name a checkpoint in one that is")


def _writable(directory: Path) -> bool:
    """Whether a file can be created in ``directory``: tried, since permission bits do not tell
    (root passes every ``os.access`` check, a read-only mount refuses it anyway)."""
    import tempfile

    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".zsl-probe-"):
            return True
    except OSError:
        return False


def run(args: argparse.Namespace) -> int:
    from .._device import resolve_device
    from .._memory import reuse_freed_memory
    from .. import settings
    from ..data import load_xlsa, make_split
    from ..store import resolve_dataset_dir
    from ..models import check_defaults_name, get_variant
    from ..train import check_checkpoint, train

    reuse_freed_memory()

    variant = get_variant(args.variant)
    overrides: dict[str, Any] = parse_overrides(args.overrides)
    if args.epochs is not None:
        if args.epochs < 0:
            raise ConfigError("--epochs must be >= 0")
        if "epochs" in overrides:  # one of the two would be dropped unseen
            raise ConfigError("--epochs and --set epochs=... both given; keep one")
        overrides["epochs"] = args.epochs
    if args.eval_every < 1:
        raise ConfigError("--eval-every must be >= 1")
    check_seed(args.seed)
    # Validate the hyperparameters and paths before touching the data: a typo fails in milliseconds.
    variant.make_params(overrides)
    check_defaults_name(args.defaults, where="--defaults")
    resolve_device(args.device, flag="--device")  # cuda where there is none: before any output
    if args.checkpoint is not None:
        check_checkpoint_path(args.checkpoint)
        check_checkpoint(args.checkpoint)  # one that is not: refused before any output
    if args.logdir is not None and args.logdir.exists() and not args.logdir.is_dir():
        raise ConfigError(f"--logdir {args.logdir}: is a file; TensorBoard writes a directory of event files")
    if args.logdir is not None and not _writable(existing := nearest_existing(args.logdir)):
        raise ConfigError(f"--logdir {args.logdir}: {existing} is not writable; name a directory that is")
    # The places a spec's dataset.path can name, resolved the same way.
    root = resolve_dataset_dir(args.data, semantics=args.semantics, cache_dir=settings.cache_dir())
    ds = load_xlsa(root, semantics=args.semantics, defaults=args.defaults)
    params = variant.make_params(overrides, dataset=ds.defaults)
    split = make_split(ds, args.protocol, seed=args.seed, preprocess=args.preprocess)
    out = sys.stderr if args.json else sys.stdout
    print(f"{variant.name} on {ds.name} ({args.protocol}): {split.n_seen} seen / {split.n_unseen} unseen classes, "
          f"{split.train_x.shape[0]} training features, {params.epochs} epoch{'s' * (params.epochs != 1)}; defaults: "
          f"{variant.defaults_source(ds.defaults)}", file=out, flush=True)
    if args.checkpoint is not None and args.checkpoint.exists():
        print(f"resuming from {args.checkpoint} (the epochs below are the ones still to train)", file=out, flush=True)

    writer = None
    if args.logdir is not None:
        from tensorboardX import SummaryWriter

        writer = SummaryWriter(str(args.logdir))

    def on_epoch(trainer: Any, row: dict[str, float]) -> None:
        shown = " ".join(f"{k}={row[k]:.4f}" for k in ("loss_d", "loss_g", "U", "S", "H") if k in row)
        print(f"epoch {int(row['epoch'])}/{params.epochs} {shown}", file=out, flush=True)
        if writer is not None:
            for key, value in row.items():
                if key != "epoch":
                    writer.add_scalar(key, value, int(row["epoch"]))
        if args.checkpoint is not None:
            trainer.save(args.checkpoint)

    try:
        result = train(split, variant=variant.name, params=params, seed=args.seed, device=args.device,
                       eval_every=args.eval_every, on_epoch=on_epoch, resume=args.checkpoint)
    except (MemoryError, RuntimeError) as e:  # a network or sample count too large for this machine
        if not isinstance(e, MemoryError) and "alloc" not in str(e):
            raise
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"out of memory ({first[:160]}); lower hidden, nz, syn_num or batch_size "
                          f"(--set NAME=VALUE; now hidden={params.hidden}, nz={params.nz}, syn_num={params.syn_num}, "
                          f"batch_size={params.batch_size})") from None
    finally:
        if writer is not None:
            writer.close()
    m = result.metrics
    print(f"final: U={m['U']:.4f} S={m['S']:.4f} H={m['H']:.4f} zsl_acc={m['zsl_acc']:.4f} "
          f"retrieval_map={m['retrieval_map']:.4f} ({result.seconds:.1f}s)", file=out, flush=True)
    if args.json:
        summary = {"variant": variant.name, "dataset": ds.name, "protocol": args.protocol, "epochs": result.epochs,
                   "seed": args.seed, **m, "seconds": round(result.seconds, 3), "params": asdict(params)}
        # NaN (a metric not computed, a diverged run) is not JSON: null, as the leaderboard writes it.
        print(json.dumps({k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in summary.items()},
                         allow_nan=False))
    return 0

