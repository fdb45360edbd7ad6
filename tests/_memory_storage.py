"""A test-only storage backend: objects in this process's memory under ``mem://root``.

It exists to show that a backend is one module plus one registration (`register_backend`):
tests/test_storage.py runs the whole storage contract against it, with no other edit.
"""

from __future__ import annotations

import threading

from zsl_search.errors import StorageError
from zsl_search.storage import Storage, StorageNotFound, register_backend
from zsl_search.storage._base import check_key, check_prefix

_OBJECTS: dict[str, dict[str, bytes]] = {}  # root URI -> key -> bytes, shared by every instance
_LOCK = threading.Lock()


class MemoryStorage(Storage):
    """``mem://name[/prefix]``: a dict per root; a write replaces the whole value under a lock,
    so readers see the old or the new object, never a mix."""

    @classmethod
    def check_uri(cls, uri: str) -> None:
        if not uri[len("mem://"):].strip("/"):
            raise StorageError(f"{uri}: mem:// needs a name, e.g. mem://results")

    def __init__(self, uri: str) -> None:
        self.check_uri(uri)
        self._uri = "mem://" + uri[len("mem://"):].strip("/")

    @property
    def uri(self) -> str:
        return self._uri

    def _objects(self) -> dict[str, bytes]:
        return _OBJECTS.setdefault(self._uri, {})

    def read_bytes(self, key: str) -> bytes:
        check_key(key, where=self._uri)
        with _LOCK:
            try:
                return self._objects()[key]
            except KeyError:
                raise StorageNotFound(f"{self.join(key)}: no such object") from None

    def write_bytes(self, key: str, data: bytes) -> None:
        check_key(key, where=self._uri)
        with _LOCK:
            self._objects()[key] = bytes(data)

    def exists(self, key: str) -> bool:
        check_key(key, where=self._uri)
        with _LOCK:
            return key in self._objects()

    def list(self, prefix: str = "") -> list[str]:
        check_prefix(prefix, where=self._uri)
        with _LOCK:
            return sorted(k for k in self._objects() if k.startswith(prefix))

    def delete(self, key: str) -> None:
        check_key(key, where=self._uri)
        with _LOCK:
            self._objects().pop(key, None)


register_backend("mem", MemoryStorage)
