"""``zsl-search search validate|run|resume``: hyperparameter searches from YAML specs."""

from __future__ import annotations

import argparse
import shlex
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
    r.add_argument("--defaults", metavar="DATASET", help="which per-dataset defaults apply, e.g. PF60 "
                                                         "(overrides dataset.defaults)")
    r.add_argument("--address", help="Ray cluster address to join (default: start Ray locally)")
    r.add_argument("--top", type=int, default=10, help="how many best trials to print (0: only how it ended)")
    r.set_defaults(run=run_run)

    s = cmds.add_parser("resume", help="continue an interrupted search")
    s.add_argument("name", help="search name")
    s.add_argument("--storage", required=True, help="where the search was stored (directory or s3://...)")
    s.add_argument("--address", help="Ray cluster address to join (default: start Ray locally)")
    s.add_argument("--top", type=int, default=10, help="how many best trials to print (0: only how it ended)")
    s.set_defaults(run=run_resume)

    j = cmds.add_parser("submit", help="run a search spec on a Ray cluster as a Ray job (returns at once)")
    j.add_argument("spec", help="search spec (YAML)")
    j.add_argument("--address", default=DEFAULT_JOB_SERVER,
                   help=f"Ray job server (default {DEFAULT_JOB_SERVER}: the `ray dashboard cluster/cluster.yaml` tunnel)")
    j.add_argument("--storage", help="results location: s3://bucket/prefix or an absolute path all nodes share "
                                     "(overrides the spec)")
    j.add_argument("--name", help="search name (overrides the spec)")
    j.add_argument("--max-trials", type=int, help="cap the number of trials (overrides budget.trials)")
    j.add_argument("--follow", action="store_true", help="stream the job's output until it ends")
    j.set_defaults(run=run_submit)

    for action, help_ in (("status", "print a submitted search job's status"),
                          ("logs", "print a submitted search job's output"),
                          ("stop", "stop a submitted search job (resume it later with `search resume`)")):
        a = cmds.add_parser(action, help=help_)
        a.add_argument("job_id", help="the id `search submit` printed (zsl-NAME-xxxxxxxx)")
        a.add_argument("--address", default=DEFAULT_JOB_SERVER, help="Ray job server")
        if action == "logs":
            a.add_argument("--follow", action="store_true", help="keep streaming until the job ends")
        a.set_defaults(run={"status": run_status, "logs": run_logs, "stop": run_stop}[action])


DEFAULT_JOB_SERVER = "http://127.0.0.1:8265"


def run_validate(args: argparse.Namespace) -> int:
    from ..search import load_spec

    spec = load_spec(args.spec)
    def count(n: int, what: str) -> str:
        return f"{n} {what}{'s' * (n != 1)}"

    print(f"{args.spec}: valid ({count(len(spec.variants), 'variant')}, {count(spec.budget.trials, 'trial')} x "
          f"{count(spec.budget.max_epochs, 'epoch')}, {spec.scheduler}, {spec.sampler.name}, storage {spec.storage}); "
          f"the dataset is read when the search runs (`zsl-search data info {shlex.quote(spec.dataset.path)}` "
          "checks it now)")
    return 0


def run_run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError

    if args.max_trials is not None and args.max_trials < 1:
        raise ConfigError("--max-trials must be >= 1")
    _check_top(args.top)
    from ..search import load_spec, run_search  # after the flags' checks: it imports torch (2 s)

    # Every spec error, the flags' included, is reported before Ray starts.
    spec = load_spec(args.spec).override({"storage": args.storage, "name": args.name,
                                          "budget.trials": args.max_trials, "dataset.defaults": args.defaults},
                                         source=f"{args.spec} with its command-line flags")
    result = run_search(spec, address=args.address)
    return print_best(result, top=args.top)


def run_resume(args: argparse.Namespace) -> int:
    _check_top(args.top)
    from ..search import resume_search

    result = resume_search(args.name, storage=args.storage, address=args.address)
    return print_best(result, top=args.top)


def _check_top(top: int) -> None:
    # Before the search, not after it: the leaderboard printer would refuse it only at the end.
    from ..errors import ConfigError

    if top < 0:
        raise ConfigError(f"--top {top}: must be >= 0 (the number of best trials to print)")


def run_submit(args: argparse.Namespace) -> int:
    from ..search import job_status, submit_search

    job_id = submit_search(args.spec, address=args.address, storage=args.storage, name=args.name,
                           max_trials=args.max_trials)
    print(f"submitted {job_id} to {args.address}")
    if not args.follow:
        print(f"follow it with: zsl-search search logs {job_id} --follow")
        return 0
    _stream(job_id, args.address)
    return 0 if job_status(job_id, address=args.address) == "SUCCEEDED" else 1


def run_status(args: argparse.Namespace) -> int:
    from ..search import job_status

    print(job_status(args.job_id, address=args.address))
    return 0


def run_logs(args: argparse.Namespace) -> int:
    from ..search import job_logs

    if args.follow:
        _stream(args.job_id, args.address)
    else:
        print(job_logs(args.job_id, address=args.address), end="")
    return 0


def run_stop(args: argparse.Namespace) -> int:
    from ..search import stop_job

    stopped = stop_job(args.job_id, address=args.address)
    print(f"{args.job_id}: {'stop requested' if stopped else 'not running'}")
    return 0


def _stream(job_id: str, address: str) -> None:
    from ..search import job_logs

    for chunk in job_logs(job_id, address=address, follow=True):
        print(chunk, end="", flush=True)


_ENDED = {
    "finished": "ran its whole budget",
    "time_budget": "was ended by its time budget",
    "interrupted": "was interrupted",
}


def print_best(result: Any, *, top: int) -> int:
    """Print how the search ended and its best trials; return the exit status: 0; 130 when it
    was interrupted, after printing the command that continues it; 1 when every trial that
    ended failed (a bug in a variant, most likely), so that a script or a job sees it."""
    from ..leaderboard import format_rows

    n = len(result.rows)
    ranked = "TEST H (select_on_test)" if any(r.get("selected_on_test") for r in result.rows) else "validation H"
    took = f" in {result.seconds:.0f}s" if result.ran else ""  # nothing ran: its note says so
    print(f"search {result.name}: {n} trial{'s' if n != 1 else ''}{took}, ranked by {ranked}; "
          f"leaderboard in {result.storage.rstrip('/')}/{result.name}/")
    if result.ran:
        print(f"the search {_ENDED[result.ending]} ({result.trials} trial{'s' if result.trials != 1 else ''} started)")
    for note in result.notes:
        print(note)
    if top and result.rows:  # 0: only how it ended; no rows: no table header
        print(format_rows(result.rows, fmt="table", top=top), end="")
    sys.stdout.flush()
    if result.ending == "interrupted":
        print(f"zsl-search: interrupted; continue with: zsl-search search resume {result.name} "
              f"--storage {result.storage}", file=sys.stderr)
        return 130
    if result.failed and all(r["status"] == "ERROR" for r in result.rows):
        print(f"zsl-search: every trial of search {result.name} failed ({result.failed} of them); the tracebacks "
              f"are in each trial's error.txt under {result.storage.rstrip('/')}/{result.name}/", file=sys.stderr)
        return 1
    return 0
