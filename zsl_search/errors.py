"""Every exception zsl-search raises on purpose, and its one way to warn.

The rule: a problem the user can fix (a spec, a flag, a dataset, a storage location, a cluster
address, a search name) raises a `ZslSearchError` subclass; the CLI prints its one-line message
and exits with status 2. A caller passing the library wrong Python values (a tensor of the wrong
shape, a non-Storage backend class) gets a plain ``ValueError``/``TypeError``: that is a bug in
the calling code and keeps its traceback, like anything else the CLI does not expect.
"""

from __future__ import annotations

import sys

__all__ = ["ZslSearchError", "DataError", "ConfigError", "SpecError", "StorageError", "StorageNotFound",
           "ClusterError", "LeaderboardError", "SearchNotFound", "SearchExists", "warn"]


class ZslSearchError(Exception):
    """Base class: a problem the user can fix. The message says what, where and how to fix it.
    Never raised itself: raise the subclass that names the kind of problem."""


class DataError(ZslSearchError):
    """A dataset file is missing, unreadable or inconsistent. Names the file and the key."""


class ConfigError(ZslSearchError):
    """An unknown variant, an unknown hyperparameter, a value of the wrong type or a bad flag."""


class SpecError(ZslSearchError):
    """A search spec is invalid. Carries every problem found, each with its field path."""

    def __init__(self, problems: list[str], source: str = "spec") -> None:
        self.problems = list(problems)
        self.source = source
        head = f"{source}: {len(self.problems)} problem(s): " if len(self.problems) > 1 else f"{source}: "
        super().__init__(head + "; ".join(self.problems))


class StorageError(ZslSearchError):
    """A storage location (local directory or S3) cannot be read or written."""


class StorageNotFound(StorageError):
    """The requested key does not exist in the storage. The message names the full URI."""


class ClusterError(ZslSearchError):
    """The Ray job server cannot be reached, refuses our token, or does not know a job."""


class LeaderboardError(ZslSearchError):
    """A row, a search name or a stored leaderboard is invalid. Names the search and the fix."""


class SearchNotFound(StorageNotFound):
    """No such search under the storage root. Lists the searches that do exist where it can."""


class SearchExists(ZslSearchError):
    """A new search would run over an existing one of the same name. Says how to resume it."""


def warn(message: str) -> None:
    """The one way zsl-search warns: a ``warning: ...`` line on stderr, from the driver and from
    trial workers alike (Ray forwards a worker's stderr to the driver's log)."""
    print(f"warning: {message}", file=sys.stderr, flush=True)
