"""What a search may be called, and the file naming its spec: kept free of torch and Ray, so
commands that only read results (`leaderboard show`, `leaderboard plot`) start in well under
a second instead of importing the models (a spec's module, `zsl_search.search._spec`, imports them)."""

from __future__ import annotations

import re

from .errors import SearchNotFound, StorageError

__all__ = ["SEARCH_NAME", "SEARCH_NAME_RULE", "SPEC_FILE", "check_search_name", "searches_there"]

# It names a folder and an S3 prefix (a DNS-safe label).
SEARCH_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
SEARCH_NAME_RULE = "1-63 lowercase letters, digits and '-', starting with a letter or digit"
SPEC_FILE = "spec.yaml"  # a search's spec, saved beside its results for `search resume`


def check_search_name(storage: str, name: str) -> None:
    """Raise `SearchNotFound` when no search can be called ``name``: it says why, and which
    searches ``storage`` holds, rather than what the storage makes of such a key."""
    if not SEARCH_NAME.fullmatch(name):
        raise SearchNotFound(f"{name!r} is not a search name ({SEARCH_NAME_RULE}); {searches_there(storage)}")


def searches_there(storage: str) -> str:
    """``"searches there: a, b"``, or what to check when ``storage`` holds none, for error messages."""
    from .leaderboard._reader import search_names
    from .storage import open_existing

    try:
        names = search_names(open_existing(storage))  # one listing: the names alone, no entry read
    except StorageError:
        names = []
    return f"searches there: {', '.join(names)}" if names else "no searches there; check the storage"
