"""One exception hierarchy. The CLI catches `ZslSearchError`, prints its one-line message and
exits with status 2; anything else is a bug and keeps its traceback."""

from __future__ import annotations

__all__ = ["ZslSearchError", "DataError", "ConfigError", "SpecError", "StorageError", "ClusterError"]


class ZslSearchError(Exception):
    """Base class: a problem the user can fix. The message says what, where and how to fix it."""


class DataError(ZslSearchError):
    """A dataset file is missing, unreadable or inconsistent. Names the file and the key."""


class ConfigError(ZslSearchError):
    """An unknown variant, an unknown hyperparameter or a value of the wrong type."""


class SpecError(ZslSearchError):
    """A search spec is invalid. Carries every problem found, each with its field path."""

    def __init__(self, problems: list[str], source: str = "spec") -> None:
        self.problems = list(problems)
        self.source = source
        head = f"{source}: {len(self.problems)} problem(s): " if len(self.problems) > 1 else f"{source}: "
        super().__init__(head + "; ".join(self.problems))


class StorageError(ZslSearchError):
    """A storage location (local directory or S3) cannot be read or written."""


class ClusterError(ZslSearchError):
    """The Ray job server cannot be reached, refuses our token, or does not know a job."""
