"""Every environment variable zsl-search reads, in one place.

Each setting is a function, read at call time, so tests and Ray workers see the environment they
run in rather than the one present at import time. AWS credentials are deliberately absent: boto3
and pyarrow read them from the standard AWS chain themselves, so they never pass through our code.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError

__all__ = ["s3_endpoint_url", "aws_region", "s3_retries", "s3_backoff", "cache_dir", "spool_dir", "plugin_modules",
           "ray_address"]


def s3_endpoint_url() -> str | None:
    """The S3 endpoint override: ``AWS_ENDPOINT_URL_S3``, else ``AWS_ENDPOINT_URL``, else None.

    Same precedence as boto3, so pyarrow and boto3 talk to the same server. None means the
    provider's default endpoint (AWS), or whatever an AWS profile configures.
    """
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def aws_region() -> str | None:
    """The AWS region: ``AWS_REGION``, else ``AWS_DEFAULT_REGION``, else None (SDK default)."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def s3_retries() -> int:
    """How many times a failed S3 request is retried (``ZSL_S3_RETRIES``, default 4, >= 0).

    Raises:
        ConfigError: the variable is set but is not a non-negative integer.
    """
    return int(_non_negative("ZSL_S3_RETRIES", 4, int, "a non-negative integer"))


def s3_backoff() -> float:
    """First delay in seconds between S3 retries, doubled each retry (``ZSL_S3_BACKOFF``, default 0.5).

    Raises:
        ConfigError: the variable is set but is not a non-negative number.
    """
    return float(_non_negative("ZSL_S3_BACKOFF", 0.5, float, "a non-negative number of seconds"))


def _non_negative(name: str, default: float, kind: type, what: str) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = -1
    if not value >= 0:  # also rejects NaN
        raise ConfigError(f"{name}={raw!r} is not {what}; set e.g. {name}={default} or unset it")
    return value


def cache_dir() -> Path:
    """Where generated and downloaded datasets are cached (``ZSL_SEARCH_CACHE``, default
    ``~/.cache/zsl-search``)."""
    raw = os.environ.get("ZSL_SEARCH_CACHE", "").strip()
    return Path(raw).expanduser() if raw else Path.home() / ".cache" / "zsl-search"


def spool_dir() -> Path:
    """Where leaderboard writes that could not reach their storage wait for upload
    (``cache_dir()/"spool"``; follows ``ZSL_SEARCH_CACHE``)."""
    return cache_dir() / "spool"



def plugin_modules() -> list[str]:
    """Extra modules to import before the variant registry is used (``ZSL_SEARCH_PLUGINS``,
    comma-separated importable names such as ``mylab.gans``; default none).

    A module that calls ``zsl_search.models.register`` becomes a variant of every command and
    search, with no change to zsl-search (installed packages can use the ``zsl_search.variants``
    entry-point group instead). A search hands the driver's list to its trials, so the workers
    need only be able to import the modules.

    Raises:
        ConfigError: an entry is not a dotted Python module name.
    """
    raw = os.environ.get("ZSL_SEARCH_PLUGINS", "")
    names = [n.strip() for n in raw.split(",") if n.strip()]
    for name in names:
        if not all(part.isidentifier() for part in name.split(".")):
            raise ConfigError(f"ZSL_SEARCH_PLUGINS={raw!r}: {name!r} is not a module name; "
                              "list importable modules, e.g. ZSL_SEARCH_PLUGINS=mylab.gans")
    return names


def ray_address() -> str | None:
    """The Ray cluster to join when none is given (``RAY_ADDRESS``, which Ray's job supervisor
    sets for a submitted search's driver), else None: start a private local Ray."""
    return os.environ.get("RAY_ADDRESS", "").strip() or None
