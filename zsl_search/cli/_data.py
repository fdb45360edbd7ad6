"""``zsl-search data synth|extract|semantics|info``: make a synthetic xlsa17 dataset, make one from
your own images (features, then class semantics and splits), or summarise and validate one."""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import ConfigError
from ._args import path_arg, place_arg


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="synthesise or inspect xlsa17-format datasets")
    cmds = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    s = cmds.add_parser("synth", help="write a synthetic dataset (res101.mat + att_splits.mat)")
    s.add_argument("out", type=path_arg, help="output directory")
    s.add_argument("--preset", default="demo", choices=["demo", "like"],
                   help="demo: tiny, trains in seconds; like: the shape of a real dataset (needs --like, --att-file)")
    s.add_argument("--like", help="real dataset to imitate (AWA1, AWA2, CUB, SUN, FLO, APY); implies --preset like")
    s.add_argument("--att-file", type=path_arg, help="the real att_splits.mat to take attributes and split sizes from")
    s.add_argument("--scale", type=float, default=1.0, help="scale every split by this factor (> 0; at most 1 with --like)")
    s.add_argument("--feat-dim", type=int, help="feature dimension (default: 128 for demo, 2048 like ResNet-101)")
    s.add_argument("--format", dest="mat_format", default="v5", choices=["v5", "v7.3"], help="MATLAB file version")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(run=run_synth)

    e = cmds.add_parser("extract", help="image features with a torchvision backbone, on Ray: OUT/res101.mat",
                        description="Extract features of IMAGES (class folders IMAGES/<class>/<image>, or a CSV/TSV "
                                    "of path,class) into OUT/res101.mat in the xlsa17 layout, plus OUT/classes.txt "
                                    "and OUT/extract-report.json. A killed run continues where it stopped.")
    e.add_argument("images", type=path_arg, help="folder of class folders, or a CSV/TSV of path,class")
    e.add_argument("out", type=path_arg, help="output folder")
    e.add_argument("--model", default="resnet101", help="torchvision classification model (default resnet101)")
    e.add_argument("--weights", default="DEFAULT",
                   help="DEFAULT (torchvision's ImageNet weights; needs internet once), a state-dict file, or none "
                        "(random, for tests)")
    e.add_argument("--resize", type=int, default=256, help="shorter side before the centre crop (default 256)")
    e.add_argument("--crop", type=int, default=224, help="centre crop side (default 224, as xlsa17)")
    e.add_argument("--batch-size", type=int, default=64)
    e.add_argument("--shard-size", type=int, default=256, help="images per resumable unit of work")
    e.add_argument("--actors", type=int, help="extraction actors (default: one per GPU, else one per CPU)")
    e.add_argument("--threads", type=int, default=1, help="torch and decoding threads per CPU actor")
    e.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS or a private local Ray)")
    e.add_argument("--format", dest="mat_format", default="v5", choices=["v5", "v7.3"], help="MAT-file version")
    e.add_argument("--seed", type=int, default=0, help="seeds a --weights none network")
    e.add_argument("--restart", action="store_true", help="replace an extraction of other images or settings in OUT")
    e.add_argument("--quiet", action="store_true", help="no progress line")
    e.set_defaults(run=run_extract)

    m = cmds.add_parser("semantics", help="class semantics and xlsa17 splits for an extracted dataset",
                        description="Write ROOT/att_splits.mat for the features in ROOT/res101.mat: class semantics "
                                    "from a CSV table or from per-class text (TF-IDF), and the xlsa17 splits.")
    m.add_argument("root", type=path_arg, help="a folder written by `data extract`")
    src = m.add_mutually_exclusive_group(required=True)
    src.add_argument("--table", type=path_arg, help="CSV/TSV with a header: class, then numeric attribute columns")
    src.add_argument("--text", type=path_arg, help="YAML/JSON mapping class -> description (encoded with TF-IDF)")
    m.add_argument("--unseen", help="comma-separated unseen classes (default: a seeded --unseen-fraction)")
    m.add_argument("--unseen-fraction", type=float,
                   help="share of the classes made unseen (default 0.2; not with --unseen)")
    m.add_argument("--val", help="comma-separated validation classes among the seen (default: a seeded --val-fraction)")
    m.add_argument("--val-fraction", type=float,
                   help="share of the seen classes made val (default 0.2; not with --val)")
    m.add_argument("--test-seen-fraction", type=float, default=0.2, help="share of each seen class held out for test")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--name", help="dataset name (default: the folder's name)")
    m.add_argument("--defaults", help="which per-dataset hyperparameter defaults apply, e.g. CUB (default: the name)")
    m.add_argument("--format", dest="mat_format", default="v5", choices=["v5", "v7.3"], help="MAT-file version")
    m.set_defaults(run=run_semantics)

    i = cmds.add_parser("info", help="validate a dataset directory and print its splits")
    i.add_argument("root", type=place_arg, help="an xlsa17 directory, s3://bucket/prefix, or demo (the built-in synthetic set), "
                                "as a spec's dataset.path")
    i.add_argument("--semantics", default="att_splits.mat",
                   help="the semantics file in it (default att_splits.mat; `data semantics` writes others)")
    i.add_argument("--json", action="store_true")
    i.set_defaults(run=run_info)


def run_synth(args: argparse.Namespace) -> int:
    from ..data import synthesize

    preset = "like" if args.like else args.preset
    # Named as the flags, before anything is written (synthesize names its keyword arguments).
    if args.att_file is not None and not args.like:
        raise ConfigError("--att-file is the real att_splits.mat of the dataset --like names; add --like NAME")
    if preset == "like" and (not args.like or args.att_file is None):
        raise ConfigError("--preset like needs --like NAME and --att-file PATH (that dataset's real att_splits.mat)")
    if not 0 < args.scale <= (1 if preset == "like" else float("inf")):
        raise ConfigError(f"--scale {args.scale:g}: must be > 0" + (" and <= 1 with --like" if preset == "like" else ""))
    if args.feat_dim is not None and args.feat_dim < 1:
        raise ConfigError(f"--feat-dim {args.feat_dim}: must be a positive integer")
    kwargs = {} if args.feat_dim is None else {"feat_dim": args.feat_dim}
    root = synthesize(args.out, preset=preset, like=args.like, att_file=args.att_file, scale=args.scale,
                      seed=args.seed, mat_format=args.mat_format, **kwargs)
    print(f"wrote {root}/: res101.mat and att_splits.mat (the xlsa17 layout), zsl-dataset.json (its name and "
          "defaults) and synth.json (how it was made, which lets data synth write over it again)")
    return 0


def run_extract(args: argparse.Namespace) -> int:
    from ..data import ExtractSettings, extract

    settings = ExtractSettings(model=args.model, weights=args.weights, resize=args.resize, crop=args.crop,
                               batch_size=args.batch_size, shard_size=args.shard_size, seed=args.seed)
    live = sys.stderr.isatty() and not args.quiet
    last = [0.0]

    def progress(done: int, total: int, seconds: float) -> None:
        if args.quiet or (not live and seconds - last[0] < 10 and done < total):
            return  # to a log: a line every 10 s
        last[0] = seconds
        rate = done / seconds if seconds else 0.0
        eta = (total - done) / rate if rate else 0.0
        line = f"extract: {done}/{total} images, {rate:.1f} images/s, ETA {int(eta) // 60}:{int(eta) % 60:02d}"
        print(f"\r{line}" if live else line, end="" if live else "\n", file=sys.stderr, flush=True)

    try:
        report = extract(args.images, args.out, settings=settings, actors=args.actors, threads=args.threads,
                         address=args.address, mat_format=args.mat_format, restart=args.restart, progress=progress)
    except KeyboardInterrupt:
        if live:
            print(file=sys.stderr)
        # The shards written so far stay; the same command skips them (as a search prints `resume`).
        print("zsl-search: interrupted; run the same command again to continue where it stopped",
              file=sys.stderr)
        return 130
    if live:
        print(file=sys.stderr)
    parts = [f"extracted {report['extracted']} of {report['images']} images of {report['classes']} classes into "
             f"{args.out / 'res101.mat'} ({report['feature_dim']}-d, {report['model']})"]
    if report["skipped"]:
        first = report["skipped"][0]
        parts.append(f"skipped {len(report['skipped'])} unreadable file(s), e.g. {first['path']} ({first['reason']}): "
                     f"all in {args.out / 'extract-report.json'}")
    if report["dropped_classes"]:
        parts.append(f"classes left without images, dropped: {', '.join(report['dropped_classes'])}")
    if report["images_per_s"]:
        parts.append(f"{report['images_per_s']} images/s with {report['actors']} actor(s)")
    elif not report["actors"]:
        parts.append("already extracted, nothing to do")
    print("; ".join(parts))
    return 0


def run_semantics(args: argparse.Namespace) -> int:
    from ..data import build_semantics

    def names(value: str | None) -> list[str] | None:
        return None if value is None else [v.strip() for v in value.split(",") if v.strip()]

    summary = build_semantics(args.root, table=args.table, text=args.text, unseen=names(args.unseen),
                              unseen_fraction=args.unseen_fraction, val=names(args.val), val_fraction=args.val_fraction,
                              test_seen_fraction=args.test_seen_fraction, seed=args.seed, name=args.name,
                              defaults=args.defaults, mat_format=args.mat_format)
    print(f"wrote {args.root / 'att_splits.mat'}: {summary['classes']} classes, {summary['semantic_dim']}-d semantics; "
          f"{len(summary['train'])} train, {len(summary['val'])} val, {len(summary['unseen'])} unseen classes "
          f"({', '.join(summary['unseen'])}); images: trainval {summary['trainval_images']}, test_seen "
          f"{summary['test_seen_images']}, test_unseen {summary['test_unseen_images']}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from .. import settings
    from ..data import describe_dataset, load_xlsa
    from ..models import defaults_line, get_variant, variant_names
    from ..store import resolve_dataset_dir

    root = resolve_dataset_dir(args.root, semantics=args.semantics, cache_dir=settings.cache_dir())
    info = describe_dataset(load_xlsa(root, semantics=args.semantics))
    # Which defaults each variant starts from here: the name alone says nothing where no variant has it.
    info["variant_defaults"] = {v: get_variant(v).defaults_source(info["defaults"]) for v in variant_names()}
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['name']}: {info['images']} images x {info['feature_dim']} features, {info['classes']} classes, "
          f"{info['semantic_dim']}-d semantics from {info['semantics']}; {defaults_line(info['defaults'])}")
    print("locs: " + ", ".join(f"{k}={v}" for k, v in info["locs"].items()))
    for protocol, summary in info["protocols"].items():
        print(f"{protocol}: {summary if isinstance(summary, str) else json.dumps(summary)}")
    print("valid")
    return 0
