"""The `Storage` contract and key validation. Backends subclass `Storage`; the scheme -> backend
table lives in ``storage/__init__.py``."""

from __future__ import annotations

import abc
import re
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ..errors import StorageError

if TYPE_CHECKING:
    import pyarrow.fs

__all__ = ["Storage", "scheme_of", "check_key", "check_prefix"]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def scheme_of(uri: str) -> str:
    """The lower-cased URI scheme (``"s3"`` for ``s3://b/p``), ``""`` for a plain path."""
    match = _SCHEME.match(uri)
    return match.group(1).lower() if match else ""


class Storage(abc.ABC):
    """A flat store of whole objects addressed by relative keys, rooted at one URI.

    Contract, for every implementation:

    * **Keys** are relative POSIX paths such as ``"search-a/leaderboard.parquet"``: non-empty
      segments separated by ``/``, no leading ``/``, no ``.`` or ``..`` segments, no backslashes.
      An invalid key raises `StorageError` before any I/O.
    * **Atomic replace.** `write_bytes` creates or replaces the whole object; a concurrent or
      later reader sees either the complete old object or the complete new one, never a partial
      one. A writer that fails (or is killed) part-way leaves the old object intact.
    * **Concurrent writers.** Writers of *different* keys never interfere. For the *same* key the
      last writer to finish wins; there is no locking and no merge, so callers that need
      read-modify-write must give each writer its own key (e.g. one key per trial).
    * **Thread-safety.** One instance may be used from several threads. Instances are picklable
      and may be shipped to other processes (e.g. Ray workers); they reconnect on first use.
    * **Errors.** Every failure raises `StorageError` (a missing key on `read_bytes` raises its
      subclass `StorageNotFound`) with a one-line message naming the URI and how to fix it.
      Messages never contain credentials.

    A backend is one module with a `Storage` subclass and one entry in the scheme table of
    ``zsl_search/storage/__init__.py`` (or a `register_backend` call). Its constructor takes the
    URI. Besides the five object methods it says where Ray Tune writes (`pyarrow_filesystem`),
    whether it is on this machine (`local_path`, `remote`) and, without touching anything, whether
    a URI is valid (`check_uri`) and names the same place from every node (`is_absolute`).

    Example:
        >>> results = open_storage("/tmp/zsl-results")
        >>> results.write_bytes("search-a/leaderboard.parquet", b"...")
        >>> results.list("search-a/")
        ['search-a/leaderboard.parquet']
    """

    remote: ClassVar[bool] = True
    """Whether objects live off this machine (then Optuna's journal is kept in the cache and
    uploaded beside the leaderboard, since it needs a local file with locking)."""

    @classmethod
    def check_uri(cls, uri: str) -> None:
        """Validate ``uri`` for this backend without any I/O (spec validation calls it).

        Raises:
            StorageError: the URI is malformed, e.g. an S3 URI without a bucket.
        """

    @classmethod
    def is_absolute(cls, uri: str) -> bool:
        """Whether ``uri`` names the same place from every machine and working directory (a
        search submitted to a cluster needs that). Remote URIs are; a relative path is not."""
        return True

    @property
    @abc.abstractmethod
    def uri(self) -> str:
        """The root URI: ``s3://bucket/prefix`` for S3, the absolute directory path for local.

        ``open_storage(storage.uri)`` opens the same storage again.
        """

    @property
    def local_path(self) -> Path | None:
        """The root directory on the local filesystem, or None when the storage is remote."""
        return None

    def pyarrow_filesystem(self) -> tuple[pyarrow.fs.FileSystem, str]:
        """A pyarrow filesystem and the root path inside it, as Ray Tune's
        ``RunConfig(storage_filesystem=..., storage_path=...)`` expects.

        Raises:
            StorageError: this backend cannot host Ray Tune experiments.
        """
        raise StorageError(f"{self.uri}: {type(self).__name__} cannot hold Ray Tune experiments; "
                           "use a local directory or s3://bucket/prefix for search results")

    def join(self, *parts: str) -> str:
        """The full URI of the key formed by joining ``parts`` with ``/`` (the root URI if none).

        Raises:
            StorageError: the joined key is invalid.
        """
        if not parts:
            return self.uri
        return f"{self.uri.rstrip('/')}/{check_key('/'.join(parts), where=self.uri)}"

    @abc.abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """The whole content of ``key``.

        Raises:
            StorageNotFound: no object exists at ``key``.
            StorageError: the storage cannot be read.
        """

    @abc.abstractmethod
    def write_bytes(self, key: str, data: bytes) -> None:
        """Create or atomically replace the object at ``key`` with ``data`` (see class contract).

        Raises:
            StorageError: the object could not be written; the previous content is unchanged.
        """

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object exists at ``key``.

        Raises:
            StorageError: the storage cannot be queried (never for a merely missing key).
        """

    @abc.abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """All keys starting with the string ``prefix`` (``"a/"`` lists under ``a``; ``"a"`` also
        matches ``"ab"``), sorted, nested keys included. Partially written objects never appear.

        Raises:
            StorageError: the storage cannot be listed.
        """

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object at ``key``. Deleting a missing key is a no-op.

        Raises:
            StorageError: the object exists but could not be removed.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"


def check_key(key: str, *, where: str) -> str:
    """Return ``key`` unchanged if it is a valid relative key, else raise `StorageError`."""
    if not isinstance(key, str) or not key or "\\" in key or any(p in ("", ".", "..") for p in key.split("/")):
        raise StorageError(
            f"{where}: invalid key {key!r}; use a relative path of non-empty segments such as "
            "'search-a/leaderboard.parquet' (no leading '/', no '.' or '..')"
        )
    return key


def check_prefix(prefix: str, *, where: str) -> str:
    """Return ``prefix`` if it is empty or a valid key prefix (a trailing ``/`` is allowed)."""
    if prefix:
        check_key(prefix[:-1] if prefix.endswith("/") else prefix, where=where)
    return prefix
