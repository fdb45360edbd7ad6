"""``zsl-search variants``: list the registered GAN variants, their defaults and search spaces."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("variants", help="list GAN variants with their hyperparameters")
    p.add_argument("name", nargs="?", help="show one variant in detail")
    p.add_argument("--dataset", help="the defaults for this dataset (AWA1, CUB, ...): with NAME all of them, without "
                   "what they change for each variant")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..models import check_defaults_name, get_variant, variant_names

    # An unknown name is a typo, which would show the reference defaults as CUB's.
    check_defaults_name(args.dataset, where="--dataset")
    if args.name is None:
        for name in variant_names():
            v = get_variant(name)
            print(f"{name:10s} {v.description}")
            if args.dataset is not None:
                print(f"{'':10s} {_changes(v, args.dataset)}")
        return 0
    v = get_variant(args.name)
    print(f"{v.name}: {v.description}")
    for key, value in v.defaults(args.dataset).items():
        space = v.space.get(key)
        print(f"  {key:20s} {value!r:12}  {'' if space is None else 'searched: ' + repr(space)}")
    return 0


def _changes(v, dataset: str) -> str:
    """What ``dataset``'s defaults change from the variant's reference ones, in one line."""
    reference, mine = v.defaults(None), v.defaults(dataset)
    changed = [f"{k}={mine[k]!r}" for k in mine if mine[k] != reference[k]]
    if not changed:
        return f"{dataset.upper()}: the reference defaults"
    return f"{v.defaults_source(dataset)}: " + ", ".join(changed)
