"""``zsl-search data synth|info``: make a synthetic xlsa17 dataset, or summarise and validate one."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="synthesise or inspect xlsa17-format datasets")
    cmds = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    s = cmds.add_parser("synth", help="write a synthetic dataset (res101.mat + att_splits.mat)")
    s.add_argument("out", type=Path, help="output directory")
    s.add_argument("--preset", default="demo", choices=["demo", "like"],
                   help="demo: tiny, trains in seconds; like: the shape of a real dataset (needs --like, --att-file)")
    s.add_argument("--like", help="real dataset to imitate (AWA1, AWA2, CUB, SUN, FLO, APY); implies --preset like")
    s.add_argument("--att-file", type=Path, help="the real att_splits.mat to take attributes and split sizes from")
    s.add_argument("--scale", type=float, default=1.0, help="shrink every split by this factor (0 < scale <= 1)")
    s.add_argument("--feat-dim", type=int, help="feature dimension (default: 128 for demo, 2048 like ResNet-101)")
    s.add_argument("--format", dest="mat_format", default="v5", choices=["v5", "v7.3"], help="MATLAB file version")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(run=run_synth)

    i = cmds.add_parser("info", help="validate a dataset directory and print its splits")
    i.add_argument("root", type=Path)
    i.add_argument("--semantics", default="att_splits.mat")
    i.add_argument("--json", action="store_true")
    i.set_defaults(run=run_info)


def run_synth(args: argparse.Namespace) -> int:
    from ..data import synthesize

    preset = "like" if args.like else args.preset
    kwargs = {} if args.feat_dim is None else {"feat_dim": args.feat_dim}
    root = synthesize(args.out, preset=preset, like=args.like, att_file=args.att_file, scale=args.scale,
                      seed=args.seed, mat_format=args.mat_format, **kwargs)
    print(f"wrote {root / 'res101.mat'} and {root / 'att_splits.mat'}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from ..data import describe_dataset, load_xlsa

    info = describe_dataset(load_xlsa(args.root, semantics=args.semantics))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['name']}: {info['images']} images x {info['feature_dim']} features, {info['classes']} classes, "
          f"{info['semantic_dim']}-d semantics from {info['semantics']}; defaults: {info['defaults']}")
    print("locs: " + ", ".join(f"{k}={v}" for k, v in info["locs"].items()))
    for protocol, summary in info["protocols"].items():
        print(f"{protocol}: {summary if isinstance(summary, str) else json.dumps(summary)}")
    print("valid")
    return 0
