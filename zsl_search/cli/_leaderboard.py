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
    s.add_argument("--top", type=int, help="only the N best trials (with --search)")
    s.add_argument("--variant", help="only trials of this variant (with --search)")
    s.add_argument("--format", dest="fmt", default="table", choices=["table", "csv", "json", "md"],
                   help="of the leaderboard, or of the list of searches")
    s.set_defaults(run=run_show)

    p2 = cmds.add_parser("plot", help="write PNG plots of a search")
    p2.add_argument("uri")
    p2.add_argument("--search", required=True)
    p2.add_argument("--out", required=True, help="output directory")
    p2.set_defaults(run=run_plot)

    y = cmds.add_parser("sync", help="upload leaderboards kept locally while the storage was unreachable")
    y.add_argument("uri", nargs="?", help="only this storage root (default: all)")
    y.set_defaults(run=run_sync)


def run_show(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..leaderboard import format_rows, format_searches, list_searches, read_rows
    from .._names import check_search_name

    if args.top is not None and args.top < 1:
        raise ConfigError(f"--top {args.top}: must be >= 1 (the number of best trials to show)")
    if args.search is None:
        # --top and --variant pick trials of one search; the list of searches has none to pick.
        flag = "--top" if args.top is not None else "--variant" if args.variant is not None else None
        if flag:
            raise ConfigError(f"{flag} picks trials of one search: add --search NAME (without it, show lists "
                              f"the searches under {args.uri})")
        searches = list_searches(args.uri)
        if not searches:
            _check_not_a_search_folder(args.uri)
        if not searches and args.fmt == "table":
            print(f"no searches under {args.uri}")
        else:
            print(format_searches(searches, fmt=args.fmt), end="")
        return 0
    check_search_name(args.uri, args.search)
    rows = read_rows(args.uri, args.search)
    present = sorted({r["variant"] for r in rows})
    if args.variant is not None and rows and args.variant not in present:
        raise ConfigError(f"--variant {args.variant}: search {args.search!r} has no rows of it; "
                          f"its variants: {', '.join(present)}")
    print(format_rows(rows, fmt=args.fmt, top=args.top, variant=args.variant), end="")
    return 0


def _check_not_a_search_folder(uri: str) -> None:
    """A search's own folder given where its storage root goes (an easy slip): say so, rather
    than "no searches"."""
    from ..errors import ConfigError
    from .._names import SPEC_FILE
    from ..storage import open_existing

    results = open_existing(uri)
    if results.exists(SPEC_FILE) or results.exists("leaderboard.parquet"):
        root, _, name = uri.rstrip("/").rpartition("/")
        raise ConfigError(f"{uri} is the folder of search {name!r}, not a storage root; use "
                          f"`zsl-search leaderboard show {root or '.'} --search {name}`")


def run_plot(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..leaderboard import plot_search
    from .._names import check_search_name

    if not args.out.strip():  # Path("") is the current directory: never what was meant
        raise ConfigError("--out is empty; name the directory to write the plots to")
    check_search_name(args.uri, args.search)
    for path in plot_search(args.uri, args.search, out_dir=Path(args.out)):
        print(path)
    return 0


def run_sync(args: argparse.Namespace) -> int:
    from .. import settings
    from ..leaderboard import sync_pending
    from ..search import sync_journals
    from ..storage import open_existing

    if args.uri:
        open_existing(args.uri)  # a mistyped local path: say so, rather than create it and find nothing
    result = sync_pending(args.uri)
    for uri, search in result.uploaded:
        print(f"uploaded {search} to {uri}")
    for uri, search in result.still_pending:
        print(f"still pending: {search} ({uri} unreachable; kept locally, run sync again later)")
    # The Optuna journals an outage kept here: of the storage named, or of those just synced.
    storages = [args.uri] if args.uri else sorted({uri for uri, _ in result.uploaded})
    done, pending = len(result.uploaded), len(result.still_pending)
    for uri in storages:
        uploaded, failed = sync_journals(uri, settings.cache_dir())
        for search in uploaded:
            print(f"uploaded the Optuna journal of {search} to {uri}")
        for search in failed:
            print(f"still pending: the Optuna journal of {search} ({uri} unreachable; kept locally, "
                  "run sync again later)")
        done, pending = done + len(uploaded), pending + len(failed)
    if not done and not pending:
        print("nothing to sync")
    return 1 if pending else 0
