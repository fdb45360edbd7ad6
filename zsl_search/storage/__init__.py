"""Results storage: whole objects addressed by relative keys, in a local directory or on S3.

`open_storage` picks the backend from the URI's scheme in `BACKENDS`; see `Storage` for the
contract every backend honours. A new backend (say ``gs://``) is one module with a `Storage`
subclass and one entry in `BACKENDS` (or a `register_backend` call from a plugin or a test);
nothing outside this package looks at schemes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import StorageError, StorageNotFound
from ._base import Storage, scheme_of
from ._local import LocalStorage, _path_of
from ._s3 import S3Storage

if TYPE_CHECKING:
    import pyarrow.fs

__all__ = ["Storage", "StorageNotFound", "LocalStorage", "S3Storage", "BACKENDS", "register_backend", "backend_for",
           "open_storage", "open_existing", "same_place", "check_uri", "is_remote", "pyarrow_filesystem"]

BACKENDS: dict[str, type[Storage]] = {"": LocalStorage, "file": LocalStorage, "s3": S3Storage}
"""URI scheme (lower case; ``""`` for a plain path) -> the backend that serves it."""


def register_backend(scheme: str, backend: type[Storage]) -> None:
    """Serve ``scheme://...`` URIs with ``backend`` (a `Storage` subclass taking the URI)."""
    if not (isinstance(backend, type) and issubclass(backend, Storage)):
        raise TypeError(f"storage backend for {scheme!r} must be a Storage subclass, got {backend!r}")
    BACKENDS[scheme.lower()] = backend


def backend_for(uri: str) -> type[Storage]:
    """The backend class for ``uri``'s scheme.

    Raises:
        StorageError: no backend serves the scheme (the message lists those that do).
    """
    scheme = scheme_of(uri)
    if scheme not in BACKENDS:
        known = ", ".join(f"{s}://" for s in sorted(BACKENDS) if s)
        raise StorageError(f"{uri}: unsupported storage scheme {scheme!r}; use a local path or one of {known}")
    return BACKENDS[scheme]


def open_storage(uri: str) -> Storage:
    """Open the storage rooted at ``uri``.

    Args:
        uri: ``s3://bucket[/prefix]`` for S3 (endpoint, region and credentials come from the
            standard AWS chain, see `zsl_search.settings`); ``file:///abs/dir`` or a plain path
            for a local directory, which is created if missing.

    Raises:
        StorageError: the URI has an unsupported scheme, or the local directory cannot be created.
    """
    return backend_for(uri)(uri)


def open_existing(uri: str) -> Storage:
    """`open_storage` for reading what is already there: a local directory that does not exist
    is an error (a mistyped path), not a new empty storage.

    Raises:
        StorageNotFound: ``uri`` is a local path with no directory there.
        StorageError: as `open_storage`.
    """
    backend = backend_for(uri)
    if not backend.remote:
        path = _path_of(uri)
        if not path.is_dir():
            what = "is not a directory" if path.exists() else "no such directory"
            raise StorageNotFound(f"{uri}: {what}; check the results path")
    return backend(uri)


def same_place(a: str, b: str) -> bool:
    """Whether two storage URIs name the same place: local paths resolved against this
    directory (``./res``, ``res/`` and ``file:///abs/res`` may agree), remote ones as written."""
    if is_remote(a) or is_remote(b):
        return a.rstrip("/") == b.rstrip("/")
    return _path_of(a).resolve() == _path_of(b).resolve()


def check_uri(uri: str) -> None:
    """Validate ``uri`` without touching the storage. Raises `StorageError` naming the problem."""
    backend_for(uri).check_uri(uri)


def is_remote(uri: str) -> bool:
    """Whether ``uri`` lives off this machine (S3), as opposed to a local directory."""
    return backend_for(uri).remote


def pyarrow_filesystem(uri: str) -> tuple[pyarrow.fs.FileSystem, str]:
    """A pyarrow filesystem and the path inside it for ``uri``, as Ray Tune's
    ``RunConfig(storage_filesystem=..., storage_path=...)`` expects (see `Storage.pyarrow_filesystem`).

    Raises:
        StorageError: the URI is unsupported or the filesystem cannot be set up.
    """
    return open_storage(uri).pyarrow_filesystem()
