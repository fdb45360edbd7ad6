"""``zsl-search search validate|run|resume``: hyperparameter searches from YAML specs."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="validate, run and resume hyperparameter searches")
    cmds = p.add_subparsers(dest="search_command", required=True, metavar="ACTION")

    v = cmds.add_parser("validate", help="check a search spec without running it")
    v.add_argument("spec", help="search spec (YAML)")
    v.set_defaults(run=run_validate)

    r = cmds.add_parser("run", help="run a search spec on local Ray or a cluster")
    r.add_argument("spec", help="search spec (YAML)")
    r.add_argument("--storage", help="results location: a directory or s3://bucket/prefix (overrides the spec)")
    r.add_argument("--name", help="search name (overrides the spec)")
    r.add_argument("--max-trials", type=int, help="cap the number of trials (overrides budget.trials)")
    r.add_argument("--address", help="Ray cluster address to join (default: start Ray locally)")
    r.add_argument("--top", type=int, default=10, help="how many best trials to print")
    r.set_defaults(run=run_run)

    s = cmds.add_parser("resume", help="continue an interrupted search")
    s.add_argument("name", help="search name")
    s.add_argument("--storage", required=True, help="where the search was stored (directory or s3://...)")
    s.add_argument("--address", help="Ray cluster address to join (default: start Ray locally)")
    s.add_argument("--top", type=int, default=10)
    s.set_defaults(run=run_resume)


def run_validate(args: argparse.Namespace) -> int:
    from ..search import load_spec

    spec = load_spec(args.spec)
    print(f"{args.spec}: valid ({len(spec.variants)} variant(s), {spec.budget.trials} trials x "
          f"{spec.budget.max_epochs} epochs, {spec.scheduler}, {spec.sampler.name}, storage {spec.storage})")
    return 0


def run_run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..search import load_spec, run_search

    if args.max_trials is not None and args.max_trials < 1:
        raise ConfigError("--max-trials must be >= 1")
    spec = load_spec(args.spec)  # every spec error is reported before Ray starts
    result = run_search(spec, storage=args.storage, name=args.name, max_trials=args.max_trials, address=args.address)
    print_best(result, top=args.top)
    return 0


def run_resume(args: argparse.Namespace) -> int:
    from ..search import resume_search

    result = resume_search(args.name, storage=args.storage, address=args.address)
    print_best(result, top=args.top)
    return 0


def print_best(result: Any, *, top: int) -> None:
    from ..leaderboard import format_rows

    print(f"search {result.name}: {len(result.rows)} trials in {result.seconds:.0f}s, ranked by validation H; "
          f"leaderboard in {result.storage.rstrip('/')}/{result.name}/")
    print(format_rows(result.rows, fmt="table", top=top))
    sys.stdout.flush()
