"""The `Storage` contract, key validation, and the URI dispatchers `open_storage` and
`pyarrow_filesystem`."""

from __future__ import annotations

import abc
import re
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import StorageError

if TYPE_CHECKING:
    import pyarrow.fs

__all__ = ["Storage", "StorageNotFound", "open_storage", "pyarrow_filesystem"]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


class StorageNotFound(StorageError):
    """The requested key does not exist in the storage. The message names the full URI."""


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

    Example:
        >>> store = open_storage("/tmp/zsl-results")
        >>> store.write_bytes("search-a/leaderboard.parquet", b"...")
        >>> store.list("search-a/")
        ['search-a/leaderboard.parquet']
    """

    @property
    @abc.abstractmethod
    def uri(self) -> str:
        """The root URI: ``s3://bucket/prefix`` for S3, the absolute directory path for local.

        ``open_storage(store.uri)`` opens the same storage again.
        """

    @property
    def local_path(self) -> Path | None:
        """The root directory on the local filesystem, or None when the storage is remote."""
        return None

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


def open_storage(uri: str) -> Storage:
    """Open the storage rooted at ``uri``.

    Args:
        uri: ``s3://bucket[/prefix]`` for S3 (endpoint, region and credentials come from the
            standard AWS chain, see `zsl_search.settings`); ``file:///abs/dir`` or a plain path
            for a local directory, which is created if missing.

    Raises:
        StorageError: the URI has an unsupported scheme, or the local directory cannot be created.
    """
    match = _SCHEME.match(uri)
    scheme = match.group(1).lower() if match else ""
    if scheme == "s3":
        from ._s3 import S3Storage

        return S3Storage(uri)
    if scheme in ("", "file"):
        from ._local import LocalStorage

        return LocalStorage(uri[len("file://"):] if scheme == "file" else uri)
    raise StorageError(f"{uri}: unsupported storage scheme {scheme!r}; use s3://bucket/prefix or a local path")


def pyarrow_filesystem(uri: str) -> tuple[pyarrow.fs.FileSystem, str]:
    """A pyarrow filesystem and the path inside it for ``uri``, as Ray Tune's
    ``RunConfig(storage_filesystem=..., storage_path=...)`` expects.

    For ``s3://bucket/prefix`` returns an ``S3FileSystem`` (endpoint override and region from
    `zsl_search.settings`, credentials from the standard AWS chain, retry count from
    ``ZSL_S3_RETRIES``) and ``"bucket/prefix"``. For a local path or ``file://`` URI returns a
    ``LocalFileSystem`` and the absolute directory path, creating the directory.

    Raises:
        StorageError: the URI is unsupported or the filesystem cannot be set up.
    """
    match = _SCHEME.match(uri)
    scheme = match.group(1).lower() if match else ""
    if scheme == "s3":
        from ._s3 import s3_pyarrow_filesystem

        return s3_pyarrow_filesystem(uri)
    if scheme in ("", "file"):
        import pyarrow.fs

        store = open_storage(uri)
        assert store.local_path is not None
        return pyarrow.fs.LocalFileSystem(), str(store.local_path)
    raise StorageError(f"{uri}: unsupported storage scheme {scheme!r}; use s3://bucket/prefix or a local path")
