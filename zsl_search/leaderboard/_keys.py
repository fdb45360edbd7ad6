"""Object keys of a search's leaderboard files and of the per-search index entries."""

from __future__ import annotations

import re

from ..errors import LeaderboardError

__all__ = ["INDEX_PREFIX", "check_search", "index_key", "leaderboard_key"]

INDEX_PREFIX = "_index/"
# One path segment, so a search is a single directory and an index entry a single file; the
# leading letter or digit keeps searches apart from "_index". What a storage key can hold, so
# looser than what a spec may be called (`zsl_search._names.SEARCH_NAME`, a DNS label): every
# search's name passes both, and the leaderboard layer needs only this one.
_SEARCH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_search(search: str) -> str:
    """Return ``search`` if it is a valid search name, else raise `LeaderboardError`."""
    if not isinstance(search, str) or not _SEARCH.match(search):
        raise LeaderboardError(
            f"invalid search name {search!r}; use 1-128 letters, digits, '.', '_' or '-' starting "
            "with a letter or digit (e.g. 'cub-fclswgan-01')"
        )
    return search


def leaderboard_key(search: str, ext: str) -> str:
    """``<search>/leaderboard.<ext>`` (ext: parquet, csv or md)."""
    return f"{check_search(search)}/leaderboard.{ext}"


def index_key(search: str) -> str:
    """``_index/<search>.json``: one object per search, so concurrent searches never collide."""
    return f"{INDEX_PREFIX}{check_search(search)}.json"
