"""``zsl-search leaderboard show|plot|sync``: read the ranked results of searches."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("leaderboard", help="show, plot and sync search leaderboards")
    cmds = p.add_subparsers(dest="leaderboard_command", required=True, metavar="ACTION")

    s = cmds.add_parser("show", help="print a search's leaderboard, or list the searches under URI")
    s.add_argument("uri", help="storage root: a directory or s3://bucket/prefix")
    s.add_argument("--search", help="search name (omit to list every search under URI)")
    s.add_argument("--top", type=int, help="only the N best trials")
    s.add_argument("--variant", help="only trials of this variant")
    s.add_argument("--format", dest="fmt", default="table", choices=["table", "csv", "json", "md"])
    s.set_defaults(run=run_show)

    p2 = cmds.add_parser("plot", help="write PNG plots of a search")
    p2.add_argument("uri")
    p2.add_argument("--search", required=True)
    p2.add_argument("--out", required=True, type=Path, help="output directory")
    p2.set_defaults(run=run_plot)

    y = cmds.add_parser("sync", help="upload leaderboards kept locally while the storage was unreachable")
    y.add_argument("uri", nargs="?", help="only this storage root (default: all)")
    y.set_defaults(run=run_sync)


def run_show(args: argparse.Namespace) -> int:
    import json

    from ..errors import ConfigError
    from ..leaderboard import format_rows, list_searches, read_rows

    if args.top is not None and args.top < 1:
        raise ConfigError("--top must be >= 1")
    if args.search is None:
        searches = list_searches(args.uri)
        if args.fmt == "json":
            print(json.dumps(searches, indent=2, default=str))
        elif not searches:
            print(f"no searches under {args.uri}")
        else:
            print(f"{'search':28} {'dataset':10} {'protocol':10} {'trials':>6} {'best H':>7} best variant")
            for s in searches:
                print(f"{s['name']:28} {str(s.get('dataset')):10} {str(s.get('protocol')):10} {s.get('n_trials', 0):>6} "
                      f"{(s.get('best_H') or 0.0):7.4f} {s.get('best_variant') or '-'}")
        return 0
    rows = read_rows(args.uri, args.search)
    present = sorted({r["variant"] for r in rows})
    if args.variant is not None and rows and args.variant not in present:
        raise ConfigError(f"--variant {args.variant}: search {args.search!r} has no rows of it; "
                          f"its variants: {', '.join(present)}")
    print(format_rows(rows, fmt=args.fmt, top=args.top, variant=args.variant), end="")
    return 0


def run_plot(args: argparse.Namespace) -> int:
    from ..leaderboard import plot_search

    for path in plot_search(args.uri, args.search, out_dir=args.out):
        print(path)
    return 0


def run_sync(args: argparse.Namespace) -> int:
    from ..leaderboard import sync_pending

    result = sync_pending(args.uri)
    for uri, search in result.uploaded:
        print(f"uploaded {search} to {uri}")
    for uri, search in result.still_pending:
        print(f"still pending: {search} ({uri} unreachable; kept locally, run sync again later)")
    if not result.uploaded and not result.still_pending:
        print("nothing to sync")
    return 1 if result.still_pending else 0
