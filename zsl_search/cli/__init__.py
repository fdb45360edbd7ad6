"""``zsl-search`` command line: a thin dispatcher over one small module per subcommand.

Every subcommand only parses arguments and calls the library. A `ZslSearchError` becomes one
line on stderr and exit status 2; nothing else is caught, so a real bug keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import NoReturn

from ..errors import ZslSearchError
from . import _data, _finalize, _leaderboard, _search, _train, _variants

__all__ = ["main", "console"]

_COMMANDS = (_data, _train, _search, _leaderboard, _finalize, _variants)


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line like every other error (argparse prints the whole
    usage block first); subcommands' parsers are of this class too."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(
        prog="zsl-search", description="Honest hyperparameter search for GAN-based generalized zero-shot learning."
    )
    parser.add_argument("--version", action="version", version=f"zsl-search {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in _COMMANDS:
        command.add_parser(sub)
    return parser


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM ends a command the way Ctrl-C does (searches: gracefully)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        return int(args.run(args) or 0)
    except ZslSearchError as e:
        print(f"zsl-search: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("zsl-search: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the output went to a reader that stopped early (`| head`): not a failure
        _discard_stdout()
        return 141  # 128 + SIGPIPE, what a shell reports for a closed pipe
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


# Commands that start no Ray and only read: their process may end without running C++ static
# destructors, where Arrow's thread pools now and then abort a short-lived process
# ("terminate called without an active exception", apache/arrow#34314) after the output is out.
# `search` is one of them whenever it never imported Ray (validate, a refused spec, a resume with
# nothing left to run): it wrote nothing that an exit hook would still have to finish.
_EXIT_AT_ONCE = {"leaderboard", "variants"}
_EXIT_AT_ONCE_WITHOUT_RAY = {"search"}


def console() -> None:
    """The ``zsl-search`` executable: `main`, then the exit."""
    try:
        code = main()
    except KeyboardInterrupt:  # landed while `main` returned, past its own handler
        print("zsl-search: interrupted", file=sys.stderr)
        code = 130
    used_ray = "ray" in sys.modules  # imported at all: its exit hooks run, whatever state it is in
    code = _stop_ray(code)
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # as in `main`: the reader stopped before the buffered output
        _discard_stdout()
        code = 141
    command = sys.argv[1] if sys.argv[1:2] else None
    if command in _EXIT_AT_ONCE or (command in _EXIT_AT_ONCE_WITHOUT_RAY and not used_ray):
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _stop_ray(code: int) -> int:
    """Stop the Ray a command started, here rather than in Ray's own exit hook: a Ctrl-C while
    it stops (a second or two, after the output is out) then waits for it to finish instead of
    printing a traceback from the hook, and the command exits 130 as for any interrupt."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return code
    from .._ray import signals_deferred

    try:
        with signals_deferred(signal.SIGINT, signal.SIGTERM):
            ray.shutdown()
    except KeyboardInterrupt:
        print("zsl-search: interrupted while Ray stopped (the command itself had finished)", file=sys.stderr)
        return 130
    return code


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so that the flush at exit cannot fail again."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


if __name__ == "__main__":
    console()
