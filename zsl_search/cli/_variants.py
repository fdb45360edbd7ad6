"""``zsl-search variants``: list the registered GAN variants, their defaults and search spaces."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("variants", help="list GAN variants with their hyperparameters")
    p.add_argument("name", nargs="?", help="show one variant in detail")
    p.add_argument("--dataset", help="show the reference defaults for this dataset (AWA1, CUB, ...)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..models import check_defaults_name, get_variant, variant_names

    check_defaults_name(args.dataset, where="--dataset")  # a typo would show the reference defaults as CUB's
    if args.name is None:
        for name in variant_names():
            print(f"{name:10s} {get_variant(name).description}")
        return 0
    v = get_variant(args.name)
    print(f"{v.name}: {v.description}")
    for key, value in v.defaults(args.dataset).items():
        space = v.space.get(key)
        print(f"  {key:20s} {value!r:12}  {'' if space is None else 'searched: ' + repr(space)}")
    return 0
