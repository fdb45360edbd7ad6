"""Tests for zsl_search.storage: one contract suite run against every backend, then
backend-specific checks (local atomicity, S3 outages, pyarrow filesystems)."""

from __future__ import annotations

import os
import pickle
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from zsl_search.errors import StorageError
from zsl_search.storage import (
    LocalStorage,
    S3Storage,
    Storage,
    StorageNotFound,
    backend_for,
    check_uri,
    is_remote,
    open_storage,
    pyarrow_filesystem,
)

BUCKET = "zsl-storage-tests"

# ---------------------------------------------------------------- backends


@pytest.fixture(scope="module")
def s3_bucket(s3_server) -> str:
    return s3_server.make_bucket(BUCKET)


def _fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(params=["local", "s3", "memory"])
def make_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], Storage]:
    """A factory: ``make_storage("name")`` opens a fresh, empty storage root of this backend.

    ``memory`` is tests/_memory_storage.py: a backend that lives outside the package and is
    registered in one place, run through the same contract."""
    if request.param == "local":
        return lambda name: open_storage(str(tmp_path / _fresh(name)))
    if request.param == "memory":
        import _memory_storage  # noqa: F401  (registers mem://)

        return lambda name: open_storage(f"mem://{_fresh(name)}")
    bucket = request.getfixturevalue("s3_bucket")
    return lambda name: open_storage(f"s3://{bucket}/{_fresh(name)}")


@pytest.fixture
def storage(make_storage: Callable[[str], Storage]) -> Storage:
    return make_storage("storage")


# ---------------------------------------------------------------- contract (every backend)


def test_roundtrip(storage: Storage) -> None:
    storage.write_bytes("search-a/leaderboard.parquet", b"\x00\x01payload")
    assert storage.read_bytes("search-a/leaderboard.parquet") == b"\x00\x01payload"
    storage.write_bytes("empty.bin", b"")
    assert storage.read_bytes("empty.bin") == b""


def test_overwrite_replaces_whole_object(storage: Storage) -> None:
    storage.write_bytes("k.txt", b"a long original content")
    storage.write_bytes("k.txt", b"short")
    assert storage.read_bytes("k.txt") == b"short"


def test_exists_list_delete(storage: Storage) -> None:
    assert storage.list() == []
    assert not storage.exists("a/x")
    for key in ("b/2", "a/x", "a/y/z", "ab"):
        storage.write_bytes(key, key.encode())
    assert storage.exists("a/x") and not storage.exists("a")
    assert storage.list() == ["a/x", "a/y/z", "ab", "b/2"]
    assert storage.list("a/") == ["a/x", "a/y/z"]
    assert storage.list("a") == ["a/x", "a/y/z", "ab"]
    assert storage.list("nothing/") == []
    storage.delete("a/x")
    storage.delete("a/x")  # deleting a missing key is a no-op
    assert not storage.exists("a/x")
    assert storage.list("a/") == ["a/y/z"]


def test_missing_key_raises_not_found_naming_the_key(storage: Storage) -> None:
    with pytest.raises(StorageNotFound, match="no-such/key.bin") as info:
        storage.read_bytes("no-such/key.bin")
    assert isinstance(info.value, StorageError)


def test_prefixes_are_isolated(make_storage: Callable[[str], Storage]) -> None:
    # "run" is a string prefix of "run2": isolation must be by path segment, not by string.
    first, second = make_storage("run"), make_storage("run")
    other = open_storage(first.uri + "2")
    first.write_bytes("k", b"1")
    second.write_bytes("k", b"2")
    other.write_bytes("k", b"3")
    assert (first.list(), second.list(), other.list()) == (["k"], ["k"], ["k"])
    assert (first.read_bytes("k"), second.read_bytes("k"), other.read_bytes("k")) == (b"1", b"2", b"3")


def test_uri_join_and_reopen(storage: Storage) -> None:
    assert storage.join() == storage.uri
    assert storage.join("search-a", "leaderboard.parquet") == storage.uri + "/search-a/leaderboard.parquet"
    storage.write_bytes("x", b"1")
    again = open_storage(storage.uri)
    assert type(again) is type(storage) and again.read_bytes("x") == b"1"
    assert pickle.loads(pickle.dumps(storage)).read_bytes("x") == b"1"


@pytest.mark.parametrize("bad", ["", "/abs", "a//b", "a/../b", "./a", "a\\b"])
def test_invalid_keys_rejected(storage: Storage, bad: str) -> None:
    with pytest.raises(StorageError, match="invalid key"):
        storage.write_bytes(bad, b"x")


# ---------------------------------------------------------------- local specifics


def test_local_storage_paths(tmp_path: Path) -> None:
    storage = open_storage(f"file://{tmp_path}/root")
    assert isinstance(storage, LocalStorage)
    assert storage.local_path == tmp_path / "root" and storage.local_path.is_dir()
    storage.write_bytes("a/b", b"1")
    assert (tmp_path / "root" / "a" / "b").read_bytes() == b"1"


def test_local_failed_write_keeps_old_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = open_storage(str(tmp_path))
    storage.write_bytes("res/leaderboard.parquet", b"old complete content")

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)  # the temp file is written, then its flush fails
    with pytest.raises(StorageError, match="No space left") as info:
        storage.write_bytes("res/leaderboard.parquet", b"new")
    assert "res/leaderboard.parquet" in str(info.value)
    monkeypatch.undo()
    assert storage.read_bytes("res/leaderboard.parquet") == b"old complete content"
    assert storage.list() == ["res/leaderboard.parquet"]
    assert sorted(p.name for p in (tmp_path / "res").iterdir()) == ["leaderboard.parquet"]


def test_local_objects_get_the_permissions_of_a_plain_write(tmp_path: Path) -> None:
    # A results directory on a shared filesystem is read by the whole team: an object written
    # through a 0600 temporary (mkstemp) would be readable by its writer alone.
    storage = open_storage(str(tmp_path / "root"))
    storage.write_bytes("search-a/leaderboard.parquet", b"rows")
    plain = tmp_path / "plain"
    plain.write_bytes(b"rows")
    assert (tmp_path / "root" / "search-a" / "leaderboard.parquet").stat().st_mode == plain.stat().st_mode


def test_local_leftover_temp_file_is_invisible(tmp_path: Path) -> None:
    storage = open_storage(str(tmp_path))
    storage.write_bytes("a/b", b"1")
    (tmp_path / "a" / ".b.k3j2.tmp").write_bytes(b"partial")  # a writer killed mid-write
    assert storage.list() == ["a/b"] and storage.read_bytes("a/b") == b"1"


def test_unsupported_scheme() -> None:
    with pytest.raises(StorageError, match="unsupported storage scheme 'gs'; use a local path or one of .*s3://"):
        open_storage("gs://bucket/x")


def test_the_scheme_table_answers_every_storage_question() -> None:
    """Callers outside storage/ ask these instead of looking at schemes themselves."""
    import _memory_storage  # noqa: F401

    assert (is_remote("s3://b-1/p"), is_remote("/tmp/x"), is_remote("file:///tmp/x"), is_remote("mem://r")) == (
        True, False, False, True)
    assert backend_for("mem://r").__name__ == "MemoryStorage" and backend_for("rel/dir") is LocalStorage
    assert LocalStorage.is_absolute("/abs") and LocalStorage.is_absolute("file:///abs")
    assert not LocalStorage.is_absolute("relative/dir") and S3Storage.is_absolute("s3://b-1/p")
    for bad, message in (("s3://", "invalid bucket name"), ("s3://Bad_Bucket/x", "invalid bucket name"),
                         ("mem://", "needs a name")):
        with pytest.raises(StorageError, match=message):
            check_uri(bad)
    check_uri("s3://my-bucket/zsl")  # no I/O: no server is asked
    with pytest.raises(StorageError, match="MemoryStorage cannot hold Ray Tune experiments"):
        open_storage("mem://r").pyarrow_filesystem()


def test_local_pyarrow_filesystem(tmp_path: Path) -> None:
    fs, path = pyarrow_filesystem(str(tmp_path / "ray"))
    with fs.open_output_stream(f"{path}/f.bin") as f:
        f.write(b"abc")
    assert (tmp_path / "ray" / "f.bin").read_bytes() == b"abc"


# ---------------------------------------------------------------- S3 specifics


def test_s3_unreachable_fails_fast_without_leaking_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    secret = "FAKE-SECRET-do-not-print-4f1c9e"
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "FAKEACCESSKEYID")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("ZSL_S3_RETRIES", "2")
    monkeypatch.setenv("ZSL_S3_BACKOFF", "0.1")
    storage = open_storage("s3://some-bucket/pre")
    t0 = time.monotonic()
    with pytest.raises(StorageError) as info:
        storage.write_bytes("k", b"x")
    elapsed = time.monotonic() - t0
    message = str(info.value)
    assert "s3://some-bucket/pre/k: S3 unreachable after 3 attempts" in message
    assert secret not in message and "FAKEACCESSKEYID" not in message
    assert secret not in repr(storage) and secret not in repr(info.value.__cause__)
    assert elapsed < 10, elapsed


def test_s3_missing_bucket_says_create_it(s3_server) -> None:
    storage = open_storage("s3://zsl-no-such-bucket/x")
    for op in (lambda: storage.read_bytes("k"), lambda: storage.write_bytes("k", b"1"), lambda: storage.exists("k"),
               lambda: storage.list()):
        with pytest.raises(StorageError, match="zsl-no-such-bucket: bucket does not exist; create it"):
            op()


def test_s3_create_bucket_if_missing(s3_server) -> None:
    storage = S3Storage(f"s3://{_fresh('zsl-created')}/p")
    assert storage.create_bucket_if_missing() is True
    assert storage.create_bucket_if_missing() is False
    storage.write_bytes("k", b"1")
    assert storage.read_bytes("k") == b"1"


def test_s3_wrong_secret_is_denied_without_echo(s3_server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "WRONG-secret-7d2a"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    with pytest.raises(StorageError, match="denied") as info:
        open_storage(f"s3://{s3_bucket}/denied").write_bytes("k", b"x")
    assert secret not in str(info.value)


def test_s3_pyarrow_filesystem_roundtrip(s3_bucket: str) -> None:
    prefix = _fresh("ray")
    fs, path = pyarrow_filesystem(f"s3://{s3_bucket}/{prefix}")
    assert path == f"{s3_bucket}/{prefix}"
    with fs.open_output_stream(f"{path}/trial/result.json") as f:
        f.write(b'{"H": 0.5}')
    with fs.open_input_stream(f"{path}/trial/result.json") as f:
        assert f.read() == b'{"H": 0.5}'
    # What pyarrow wrote is an ordinary object for S3Storage, and vice versa.
    storage = open_storage(f"s3://{s3_bucket}/{prefix}")
    assert storage.read_bytes("trial/result.json") == b'{"H": 0.5}'


def test_s3_survives_server_restart(s3_server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZSL_S3_RETRIES", "1")
    monkeypatch.setenv("ZSL_S3_BACKOFF", "0.05")
    storage = open_storage(f"s3://{s3_bucket}/{_fresh('outage')}")
    storage.write_bytes("k", b"before")
    s3_server.stop()
    try:
        with pytest.raises(StorageError, match="S3 unreachable after 2 attempts"):
            storage.read_bytes("k")
    finally:
        s3_server.start()
    assert storage.read_bytes("k") == b"before"


def test_open_existing_refuses_a_missing_directory_and_creates_nothing(tmp_path: Path) -> None:
    from zsl_search.errors import StorageNotFound
    from zsl_search.storage import open_existing

    with pytest.raises(StorageNotFound, match="no such directory"):
        open_existing(str(tmp_path / "typo" / "results"))
    assert not (tmp_path / "typo").exists()
    (tmp_path / "afile").write_text("x")
    with pytest.raises(StorageNotFound, match="is not a directory"):
        open_existing(str(tmp_path / "afile"))
    assert open_existing(str(tmp_path)).exists("nothing") is False
