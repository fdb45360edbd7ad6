"""``python -m zsl_search``: the same command as ``zsl-search``."""

from .cli import console

console()
