"""Leaderboard errors: both fit the project hierarchy, so the CLI prints them as one line."""

from __future__ import annotations

from ..errors import ZslSearchError
from ..storage import StorageNotFound

__all__ = ["LeaderboardError", "SearchNotFound"]


class LeaderboardError(ZslSearchError):
    """A row, a search name or a stored leaderboard is invalid. Names the search and the fix."""


class SearchNotFound(StorageNotFound):
    """No leaderboard for the search under the storage root. Lists the searches that do exist."""
