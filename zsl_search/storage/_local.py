"""`LocalStorage`: a directory on a local or shared (NFS) filesystem."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from .._files import atomic_write
from ..errors import StorageError, StorageNotFound
from ._base import Storage, check_key, check_prefix

if TYPE_CHECKING:
    import pyarrow.fs

__all__ = ["LocalStorage"]

# Temporary files are hidden siblings ".<name>.<random>.tmp" of the object being written.
_TMP_SUFFIX = ".tmp"


def _path_of(root: str | os.PathLike[str]) -> Path:
    root = os.fspath(root)
    return Path(root[len("file://"):] if root.lower().startswith("file://") else root).expanduser()


def _is_temp(name: str) -> bool:
    return name.startswith(".") and name.endswith(_TMP_SUFFIX)


class LocalStorage(Storage):
    """Objects are files under a root directory; key ``a/b.parquet`` is ``<root>/a/b.parquet``.

    Atomic replace: `write_bytes` writes a temporary file in the target's directory, fsyncs it
    and renames it over the target with ``os.replace`` (atomic on POSIX, within one
    filesystem), then fsyncs the directory (`zsl_search._files.atomic_write`). A writer killed
    part-way leaves only a hidden ``.<name>.<random>.tmp`` file, which `list` never reports.
    Concurrent writers use distinct temporary files; the last rename wins. Objects get the
    permissions any file the process writes gets (its umask), so a team can share a results
    directory.

    Args:
        root: the directory (a path or a ``file://`` URI); created (with parents) if missing.

    Raises:
        StorageError: the directory cannot be created.
    """

    remote = False

    def __init__(self, root: str | os.PathLike[str]) -> None:
        if isinstance(root, str):
            self.check_uri(root)
        self._root = _path_of(root).absolute()
        try:
            self._root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageError(
                f"{self._root}: cannot create the storage directory ({e.strerror}); "
                "check the path and its permissions"
            ) from e

    @classmethod
    def check_uri(cls, uri: str) -> None:
        # An empty path would be the working directory, whatever it is when the command runs.
        if not (uri[len("file://"):] if uri.lower().startswith("file://") else uri).strip():
            raise StorageError(f"{uri!r} is not a results location; name a directory (e.g. ./zsl-results) or s3://bucket/prefix")

    @classmethod
    def is_absolute(cls, uri: str) -> bool:
        return _path_of(uri).is_absolute()

    @property
    def uri(self) -> str:
        return str(self._root)

    def pyarrow_filesystem(self) -> tuple[pyarrow.fs.FileSystem, str]:
        import pyarrow.fs

        return pyarrow.fs.LocalFileSystem(), str(self._root)

    @property
    def local_path(self) -> Path:
        return self._root

    def _path(self, key: str) -> Path:
        return self._root.joinpath(*check_key(key, where=self.uri).split("/"))

    def read_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError as e:
            raise StorageNotFound(f"{path}: no such object {key!r}; check the key or write it first") from e
        except OSError as e:
            raise StorageError(f"{path}: cannot read ({e.strerror}); check that it is a readable file") from e

    def write_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda p: p.write_bytes(data), fsync=True)
        except OSError as e:
            raise StorageError(
                f"{path}: cannot write ({e.strerror}); check free space and permissions "
                "(the previous content, if any, is unchanged)"
            ) from e

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> list[str]:
        check_prefix(prefix, where=self.uri)
        # Walk only the deepest directory the prefix fully names, not the whole tree.
        base_dir = prefix.rpartition("/")[0]
        start = self._root.joinpath(*base_dir.split("/")) if base_dir else self._root
        keys: list[str] = []

        def on_error(e: OSError) -> None:
            if isinstance(e, (FileNotFoundError, NotADirectoryError)):
                return  # nothing stored under this prefix (or it vanished while walking)
            raise StorageError(f"{e.filename}: cannot list ({e.strerror}); check permissions") from e

        for dirpath, _dirnames, filenames in os.walk(start, onerror=on_error):
            rel_dir = Path(dirpath).relative_to(self._root).as_posix()
            for name in filenames:
                if _is_temp(name):
                    continue
                key = name if rel_dir == "." else f"{rel_dir}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except OSError as e:
            raise StorageError(f"{path}: cannot delete ({e.strerror}); check permissions") from e

