"""`zsl_search._files`: a file is replaced whole or not at all (`atomic_write`), and where
creating a path starts (`nearest_existing`)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from zsl_search._files import atomic_write


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "rows.json"
    path.write_text("old")

    def half_then_fail(p: Path) -> None:
        p.write_text("ne")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, half_then_fail)
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.json"]


def test_concurrent_writers_of_one_path_never_mix(tmp_path: Path) -> None:
    # Two trials caching the same remote dataset write the same file at once: each must write
    # its own temporary, so the result is one writer's bytes, whole.
    path = tmp_path / "res101.mat"
    payloads = [bytes([k]) * 2_000_000 for k in range(1, 5)]
    barrier = threading.Barrier(len(payloads))

    def slow_write(data: bytes) -> None:
        def write(p: Path) -> None:
            with open(p, "wb") as f:
                barrier.wait()  # every writer is between open and rename at once
                for i in range(0, len(data), 100_000):
                    f.write(data[i : i + 100_000])
        atomic_write(path, write, fsync=True)

    threads = [threading.Thread(target=slow_write, args=(d,)) for d in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert path.read_bytes() in payloads
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res101.mat"]


def test_the_file_gets_the_permissions_a_plain_write_gives(tmp_path: Path) -> None:
    # A dataset or checkpoint written here is read by other processes, perhaps other users.
    plain, atomic = tmp_path / "plain.json", tmp_path / "atomic.json"
    plain.write_text("{}")
    atomic_write(atomic, lambda p: p.write_text("{}"))
    assert atomic.stat().st_mode == plain.stat().st_mode


def test_nearest_existing_is_the_path_or_where_creating_it_starts(tmp_path: Path) -> None:
    from zsl_search._files import nearest_existing

    (tmp_path / "f").write_text("x")
    assert nearest_existing(tmp_path / "f") == tmp_path / "f"
    assert nearest_existing(tmp_path / "f" / "a" / "b") == tmp_path / "f"  # a file: `mkdir` would fail there
    assert nearest_existing(tmp_path / "new" / "run.pt") == tmp_path
    assert nearest_existing(Path("no-such-dir-here") / "x") == Path(".")
