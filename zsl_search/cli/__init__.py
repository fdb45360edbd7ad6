"""``zsl-search`` command line: a thin dispatcher over one small module per subcommand.

Every subcommand only parses arguments and calls the library. A `ZslSearchError` becomes one
line on stderr and exit status 2; nothing else is caught, so a real bug keeps its traceback.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

from ..errors import ZslSearchError
from . import _data, _finalize, _leaderboard, _search, _train, _variants

__all__ = ["main"]

_COMMANDS = (_data, _train, _search, _leaderboard, _finalize, _variants)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
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
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
