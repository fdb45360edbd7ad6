"""``zsl-search finalize``: report a search's finalists on the test split."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("finalize", help="retrain the best trials under the test protocol (several seeds) and "
                                        "add test U/S/H to the leaderboard")
    p.add_argument("uri", help="storage root: a directory or s3://bucket/prefix")
    p.add_argument("--search", required=True, help="search name")
    p.add_argument("--top-k", type=int, default=3, help="how many of the best trials (default 3)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per configuration (default 3)")
    p.add_argument("--address", help="Ray cluster address to join (default: start Ray locally)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..leaderboard import format_rows
    from ..search import finalize
    from ..search._finalize import finalist_rows

    rows = finalize(args.uri, args.search, top_k=args.top_k, seeds=args.seeds, address=args.address)
    # The finalists (chosen as finalize chose them), with their leaderboard ranks and key params.
    finalists = {r["trial_id"] for r in finalist_rows(rows, args.top_k)}
    print(format_rows(rows, fmt="table", trials=finalists), end="")
    return 0
