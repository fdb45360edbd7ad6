"""Results storage: whole objects addressed by relative keys, in a local directory or on S3.

`open_storage` picks the backend from the URI; `pyarrow_filesystem` gives Ray Tune the matching
``storage_filesystem``/``storage_path``. See `Storage` for the contract every backend honours.
"""

from __future__ import annotations

from ._base import Storage, StorageNotFound, open_storage, pyarrow_filesystem
from ._local import LocalStorage
from ._s3 import S3Storage

__all__ = ["Storage", "StorageNotFound", "LocalStorage", "S3Storage", "open_storage", "pyarrow_filesystem"]
