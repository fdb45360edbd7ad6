"""`S3Storage`: objects in an S3 bucket (AWS or any S3-compatible server) via boto3."""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from .. import settings
from ..errors import StorageError, StorageNotFound
from ._base import Storage, check_key, check_prefix

if TYPE_CHECKING:
    import pyarrow.fs

__all__ = ["S3Storage", "parse_s3_uri"]

T = TypeVar("T")

# Small connect timeout so an unreachable endpoint fails within seconds, not minutes; reads
# get longer because a busy server may legitimately take a while on a large object.
_CONNECT_TIMEOUT_S = 2.0
_READ_TIMEOUT_S = 20.0
_BACKOFF_CAP_S = 10.0
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_TRANSIENT_CODES = frozenset({
    "Throttling", "ThrottlingException", "SlowDown", "RequestTimeout", "RequestLimitExceeded",
    "InternalError", "ServiceUnavailable", "TooManyRequests", "RequestThrottled",
})
_DENIED_CODES = frozenset({
    "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
    "TokenRefreshRequired", "AllAccessDisabled", "403",
})
_MISSING_KEY_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/some/prefix`` into ``("bucket", "some/prefix")``.

    Raises:
        StorageError: not an ``s3://`` URI, or an invalid bucket name or prefix.
    """
    if not uri.lower().startswith("s3://"):
        raise StorageError(f"{uri}: not an S3 URI; use s3://bucket/prefix")
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    prefix = prefix.strip("/")
    if not _BUCKET.match(bucket):
        raise StorageError(
            f"{uri}: invalid bucket name {bucket!r}; use 3-63 lowercase letters, digits, '.' or '-'"
        )
    if prefix:
        check_key(prefix, where=uri)
    return bucket, prefix


class S3Storage(Storage):
    """Objects under ``s3://bucket/prefix``; key ``a/b.parquet`` is object ``prefix/a/b.parquet``.

    Endpoint, region and credentials come from the standard AWS chain (``AWS_ENDPOINT_URL_S3`` /
    ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID`` ..., ``AWS_PROFILE``, instance roles); this class
    never reads or stores credentials itself. Construction does no network I/O.

    Atomic replace: each `write_bytes` is a single PutObject, which S3 applies atomically
    (readers see the old or the new object, never a mix); concurrent writers: last one wins.
    Objects are limited to 5 GB, S3's single-PUT limit.

    Retries: connection failures, timeouts, HTTP 5xx and throttling are retried ``retries`` times
    with exponential backoff starting at ``backoff`` seconds (jittered, capped at 10 s); after
    that a `StorageError` says the endpoint is unreachable or failing.

    Args:
        uri: ``s3://bucket[/prefix]``.
        endpoint_url: overrides the endpoint from the AWS chain (for tests and odd setups).
        retries: retries per request; default `zsl_search.settings.s3_retries`.
        backoff: first retry delay in seconds; default `zsl_search.settings.s3_backoff`.

    Raises:
        StorageError: the URI is malformed.
        ConfigError: ``ZSL_S3_RETRIES`` / ``ZSL_S3_BACKOFF`` are malformed.
    """

    def __init__(
        self,
        uri: str,
        *,
        endpoint_url: str | None = None,
        retries: int | None = None,
        backoff: float | None = None,
    ) -> None:
        self._bucket, self._prefix = parse_s3_uri(uri)
        self._endpoint_url = endpoint_url
        self._retries = settings.s3_retries() if retries is None else max(0, retries)
        self._backoff = settings.s3_backoff() if backoff is None else max(0.0, backoff)
        self._client_obj: Any = None
        self._lock = threading.Lock()

    # The boto3 client and the lock are per process; a pickled copy (e.g. sent to a Ray
    # worker) builds its own client on first use.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_client_obj"] = None
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def uri(self) -> str:
        return f"s3://{self._bucket}/{self._prefix}" if self._prefix else f"s3://{self._bucket}"

    @classmethod
    def check_uri(cls, uri: str) -> None:
        parse_s3_uri(uri)

    def pyarrow_filesystem(self) -> tuple[pyarrow.fs.FileSystem, str]:
        """A pyarrow ``S3FileSystem`` (endpoint override and region from `zsl_search.settings`,
        credentials from the standard AWS chain, retries from ``ZSL_S3_RETRIES``) and
        ``"bucket/prefix"``.

        Raises:
            StorageError: the filesystem cannot be created.
        """
        import pyarrow.fs

        kwargs: dict[str, Any] = {
            "connect_timeout": _CONNECT_TIMEOUT_S,
            "retry_strategy": pyarrow.fs.AwsStandardS3RetryStrategy(max_attempts=settings.s3_retries() + 1),
        }
        endpoint = settings.s3_endpoint_url()
        if endpoint:
            parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
            kwargs["scheme"] = parts.scheme
            kwargs["endpoint_override"] = parts.netloc.rpartition("@")[2] + parts.path.rstrip("/")
        region = settings.aws_region()
        if region:
            kwargs["region"] = region
        try:
            fs = pyarrow.fs.S3FileSystem(**kwargs)
        except (OSError, ValueError) as e:
            raise StorageError(f"{self.uri}: cannot set up the pyarrow S3 filesystem ({type(e).__name__}); check AWS_ENDPOINT_URL and AWS_REGION") from e
        return fs, f"{self._bucket}/{self._prefix}" if self._prefix else self._bucket

    def _object_key(self, key: str) -> str:
        check_key(key, where=self.uri)
        return f"{self._prefix}/{key}" if self._prefix else key

    # ------------------------------------------------------------------ operations

    def read_bytes(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        where = self.join(key)
        obj = self._object_key(key)
        try:
            return self._call(lambda c: c.get_object(Bucket=self._bucket, Key=obj)["Body"].read(), where)
        except ClientError as e:
            if _code(e) in _MISSING_KEY_CODES:
                raise StorageNotFound(f"{where}: no such object {key!r}; check the key or write it first") from e
            raise self._error(e, where, "read") from e

    def write_bytes(self, key: str, data: bytes) -> None:
        from botocore.exceptions import ClientError

        where = self.join(key)
        obj = self._object_key(key)
        try:
            self._call(lambda c: c.put_object(Bucket=self._bucket, Key=obj, Body=data), where)
        except ClientError as e:
            raise self._error(e, where, "write") from e

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        where = self.join(key)
        obj = self._object_key(key)
        try:
            self._call(lambda c: c.head_object(Bucket=self._bucket, Key=obj), where)
            return True
        except ClientError as e:
            if _code(e) not in _MISSING_KEY_CODES:
                raise self._error(e, where, "query") from e
        # HEAD answers a bare 404 for a missing bucket too; tell the two apart.
        if not self._bucket_exists():
            raise StorageError(self._no_bucket_message())
        return False

    def list(self, prefix: str = "") -> list[str]:
        from botocore.exceptions import ClientError

        check_prefix(prefix, where=self.uri)
        root = f"{self._prefix}/" if self._prefix else ""

        def list_all(client: Any) -> list[str]:
            found: list[str] = []
            pages = client.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=root + prefix)
            for page in pages:
                # Keys ending in "/" are directory markers some tools create, not objects.
                found.extend(o["Key"][len(root):] for o in page.get("Contents", ()) if not o["Key"].endswith("/"))
            return found

        try:
            return sorted(self._call(list_all, f"{self.uri}/{prefix}" if prefix else self.uri))
        except ClientError as e:
            raise self._error(e, self.uri, "list") from e

    def delete(self, key: str) -> None:
        from botocore.exceptions import ClientError

        where = self.join(key)
        obj = self._object_key(key)
        try:
            self._call(lambda c: c.delete_object(Bucket=self._bucket, Key=obj), where)
        except ClientError as e:
            raise self._error(e, where, "delete") from e

    def create_bucket_if_missing(self) -> bool:
        """Create the bucket (in the configured region) if it does not exist.

        Returns:
            True if this call created it, False if it already existed.

        Raises:
            StorageError: the bucket could not be checked or created.
        """
        from botocore.exceptions import ClientError

        if self._bucket_exists():
            return False
        region = settings.aws_region()
        kwargs: dict[str, Any] = {"Bucket": self._bucket}
        if region and region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self._call(lambda c: c.create_bucket(**kwargs), f"s3://{self._bucket}")
        except ClientError as e:
            if _code(e) == "BucketAlreadyOwnedByYou":
                return False
            if _code(e) == "BucketAlreadyExists":
                raise StorageError(
                    f"s3://{self._bucket}: bucket name is taken by another account; choose another bucket name"
                ) from e
            raise self._error(e, f"s3://{self._bucket}", "create bucket") from e
        return True

    # ------------------------------------------------------------------ plumbing

    def _bucket_exists(self) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._call(lambda c: c.head_bucket(Bucket=self._bucket), f"s3://{self._bucket}")
            return True
        except ClientError as e:
            if _code(e) in ("404", "NoSuchBucket", "NotFound"):
                return False
            raise self._error(e, f"s3://{self._bucket}", "query") from e

    def _client(self) -> Any:
        with self._lock:
            if self._client_obj is None:
                self._client_obj = _make_client(self._endpoint_url)
            return self._client_obj

    def _call(self, fn: Callable[[Any], T], where: str) -> T:
        """Run ``fn(client)``, retrying transient failures; other ClientErrors propagate."""
        from botocore.exceptions import (
            ClientError,
            ConnectionError,
            HTTPClientError,
            IncompleteReadError,
            NoCredentialsError,
            PartialCredentialsError,
        )

        client = self._client()
        attempts = self._retries + 1
        last: Exception | None = None
        for attempt in range(attempts):
            if attempt:
                delay = min(_BACKOFF_CAP_S, self._backoff * 2 ** (attempt - 1))
                time.sleep(delay * random.uniform(0.5, 1.0))  # jitter: spread out a herd of workers
            try:
                return fn(client)
            except (NoCredentialsError, PartialCredentialsError) as e:
                raise StorageError(
                    f"{where}: no usable AWS credentials found; set AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run with an instance role"
                ) from e
            except (ConnectionError, HTTPClientError, IncompleteReadError) as e:
                last = e
            except ClientError as e:
                if not _is_transient(e):
                    raise
                last = e
        assert last is not None
        endpoint = _redact(str(getattr(client.meta, "endpoint_url", "") or "the AWS default endpoint"))
        if isinstance(last, ClientError):
            raise StorageError(
                f"{where}: S3 kept failing after {attempts} attempts (HTTP {_status(last)} {_code(last)}) "
                f"at {endpoint}; retry later or raise ZSL_S3_RETRIES / ZSL_S3_BACKOFF"
            ) from last
        raise StorageError(
            f"{where}: S3 unreachable after {attempts} attempts ({type(last).__name__}: {_redact(str(last))}); "
            f"check that {endpoint} is up and reachable (AWS_ENDPOINT_URL), or raise ZSL_S3_RETRIES / ZSL_S3_BACKOFF"
        ) from last

    def _no_bucket_message(self) -> str:
        return (
            f"s3://{self._bucket}: bucket does not exist; create it (e.g. `aws s3 mb s3://{self._bucket}`) "
            "or fix the storage URI"
        )

    def _error(self, e: Exception, where: str, action: str) -> StorageError:
        """Translate a non-transient ClientError into a one-line StorageError (no server text,
        which may echo request details)."""
        code = _code(e)
        if code == "NoSuchBucket":
            return StorageError(self._no_bucket_message())
        if code in _DENIED_CODES:
            return StorageError(
                f"{where}: S3 denied {action} ({code}); check the AWS credentials (AWS_ACCESS_KEY_ID / "
                f"AWS_PROFILE) and their permissions on s3://{self._bucket}"
            )
        return StorageError(f"{where}: S3 {action} failed (HTTP {_status(e)} {code}); check the URI and the server logs")


def _make_client(endpoint_url: str | None) -> Any:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    endpoint = endpoint_url or settings.s3_endpoint_url()
    config = Config(
        connect_timeout=_CONNECT_TIMEOUT_S,
        read_timeout=_READ_TIMEOUT_S,
        retries={"total_max_attempts": 1, "mode": "standard"},  # our own loop retries
        # Custom endpoints (SeaweedFS, MinIO, Ceph) rarely have wildcard DNS for buckets.
        s3={"addressing_style": "path"} if endpoint else None,
    )
    try:
        return boto3.session.Session().client(
            "s3", endpoint_url=endpoint, region_name=settings.aws_region(), config=config
        )
    except BotoCoreError as e:
        raise StorageError(
            f"S3 client setup failed ({type(e).__name__}); check AWS_PROFILE, AWS_ENDPOINT_URL and ~/.aws/config"
        ) from e
    except ValueError as e:
        raise StorageError(
            f"S3 client setup failed: invalid endpoint {_redact(str(endpoint))!r}; set AWS_ENDPOINT_URL to e.g. http://host:8333"
        ) from e


def _code(e: Exception) -> str:
    return str(getattr(e, "response", {}).get("Error", {}).get("Code", "Unknown"))


def _status(e: Exception) -> int:
    return int(getattr(e, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def _is_transient(e: Exception) -> bool:
    return _status(e) >= 500 or _status(e) == 429 or _code(e) in _TRANSIENT_CODES


def _redact(text: str) -> str:
    """Drop ``user:password@`` from any URL in ``text``."""
    return re.sub(r"//[^/@\s]+@", "//", text)
