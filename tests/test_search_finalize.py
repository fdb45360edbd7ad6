"""`finalize` on bad input: a search whose dataset went missing or broke after it ran is one
line, before Ray starts, and a user-fixable error a retrain task hits is its own one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from zsl_search.cli import main
from zsl_search.errors import DataError
from zsl_search.leaderboard import LeaderboardWriter, read_rows


def _searched(tmp_path: Path, demo_dir: Path, **spec_over: object) -> tuple[Path, Path]:
    """A finished search as finalize finds it (its saved spec and one finalizable row), on a
    copy of the demo dataset; no search is run."""
    data = tmp_path / "data"
    shutil.copytree(demo_dir, data)
    res = tmp_path / "res"
    spec = {"name": "gone", "dataset": {"path": str(data)}, "variants": ["fclswgan"],
            "budget": {"trials": 2, "max_epochs": 1}, "storage": str(res), **spec_over}
    (res / "gone").mkdir(parents=True)
    (res / "gone" / "spec.yaml").write_text(yaml.safe_dump(spec))
    LeaderboardWriter(str(res), "gone").write([{
        "trial_id": "t0", "variant": "fclswgan", "status": "COMPLETE", "H": 0.5, "U": 0.4, "S": 0.6,
        "epochs": 1, "best_epoch": 1, "best_step": 10, "schedule_steps": 10, "cls_epochs": 1, "cls_steps": 5,
        "params": {"lr": 1e-3}}])
    return data, res


def test_finalize_refuses_a_search_whose_driver_is_alive_and_ignores_a_stale_marker(demo_dir: Path, tmp_path: Path,
                                                                                     capsys) -> None:
    import json
    import os
    import socket
    import subprocess
    import time

    from zsl_search.search._running import RUNNING_DIR, STALE_S, check_not_running, clear_stale

    _, res = _searched(tmp_path, demo_dir)
    marker = res / RUNNING_DIR / "gone.json"
    marker.parent.mkdir()

    def mark(pid: int, age: float = 0.0, host: str = socket.gethostname()) -> None:
        marker.write_text(json.dumps({"host": host, "pid": pid, "updated_at": time.time() - age}))

    mark(os.getpid())  # a live driver on this machine
    assert main(["finalize", str(res), "--search", "gone", "--top-k", "1", "--seeds", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zsl-search: error: search 'gone' is still running (its driver, pid ") and err.count("\n") == 1
    assert "finalize it once it has ended" in err
    assert read_rows(str(res), "gone")[0]["test_H_mean"] is None  # nothing retrained, nothing written
    assert main(["search", "resume", "gone", "--storage", str(res)]) == 2  # a second driver of it: refused too
    err = capsys.readouterr().err
    assert "is still running" in err and "resume it once it has ended" in err and "finalize" not in err
    mark(os.getpid(), host="another-machine")  # alive as far as anyone here can tell
    with pytest.raises(Exception, match="still running"):
        check_not_running(str(res), "gone", then="wait")
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert not clear_stale(str(res), "gone") and marker.exists()  # a live driver's marker stays
    for stale in (lambda: mark(gone.pid), lambda: mark(os.getpid(), age=STALE_S + 1, host="another-machine")):
        stale()  # a killed driver's marker: its process is gone, or it stopped refreshing it
        check_not_running(str(res), "gone", then="wait")
        assert clear_stale(str(res), "gone") and not marker.exists()  # what `leaderboard sync` does with it
    marker.write_text("{")  # torn: says nothing
    check_not_running(str(res), "gone", then="wait")


def test_finalize_asks_for_a_sync_while_rows_of_the_search_wait_in_the_spool(demo_dir: Path, tmp_path: Path,
                                                                             capsys) -> None:
    # Rows spooled during a storage outage may outrank the stored ones: finalists chosen without
    # them would be the wrong ones.
    from zsl_search.leaderboard import _spool
    from zsl_search.leaderboard._schema import normalize_row
    from zsl_search.storage import open_storage

    _, res = _searched(tmp_path, demo_dir)
    better = normalize_row({"trial_id": "t1", "variant": "fclswgan", "status": "COMPLETE", "H": 0.9, "U": 0.9,
                            "S": 0.9, "params": {"lr": 1e-3}}, search="gone")
    uri = open_storage(str(res)).uri
    _spool.save(uri, "gone", [better])
    try:
        assert main(["finalize", str(res), "--search", "gone", "--top-k", "1", "--seeds", "1"]) == 2
        err = capsys.readouterr().err
        assert err == (f"zsl-search: error: search 'gone' has leaderboard rows kept locally that {res} lacks (it was "
                       f"unreachable); run `zsl-search leaderboard sync {res}` first\n")
    finally:
        _spool.clear(uri, "gone")


def test_finalize_names_an_unreadable_config_and_too_many_seeds_before_ray(demo_dir: Path, tmp_path: Path,
                                                                          capsys) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    _, res = _searched(tmp_path, demo_dir)
    assert main(["finalize", str(res), "--search", "gone", "--seeds", "5000000000"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zsl-search: error: --seeds 5000000000: the seeds 0.. would pass 4294967295") and \
        err.count("\n") == 1
    path = res / "gone" / "leaderboard.parquet"
    table = pq.read_table(path)
    i = table.column_names.index("config_json")
    pq.write_table(table.set_column(i, "config_json", pa.array(["{not json"])), path)
    assert main(["finalize", str(res), "--search", "gone", "--top-k", "1", "--seeds", "1"]) == 2
    err = capsys.readouterr().err
    assert err == (f"zsl-search: error: {res}/gone/leaderboard.parquet: trial t0 has no readable config_json (the "
                   "file was edited?); restore it, or finalize other trials with --top-k\n")


@pytest.mark.parametrize("damage", ["deleted", "truncated"])
def test_finalize_names_a_dataset_gone_since_the_search_in_one_line(demo_dir: Path, tmp_path: Path, capsys,
                                                                   damage: str) -> None:
    data, res = _searched(tmp_path, demo_dir)
    if damage == "deleted":
        shutil.rmtree(data)
    else:
        (data / "res101.mat").write_bytes((data / "res101.mat").read_bytes()[:100])
    assert main(["finalize", str(res), "--search", "gone", "--top-k", "1", "--seeds", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("zsl-search: error: ") and "\n" not in err and "\x1b" not in err
    assert str(data) in err
    assert read_rows(str(res), "gone")[0]["test_H_mean"] is None  # the leaderboard is untouched


def test_a_retrain_tasks_data_error_is_raised_as_itself(ray_local) -> None:
    from zsl_search.search._finalize import _result

    def broken() -> None:
        raise DataError("/data/res101.mat: unreadable")

    with pytest.raises(DataError, match=r"^/data/res101.mat: unreadable$"):
        _result(ray_local.remote(broken).remote())
    with pytest.raises(ray_local.exceptions.RayTaskError):  # a bug keeps Ray's traceback
        _result(ray_local.remote(lambda: 1 / 0).remote())


def test_finalize_refuses_resources_this_machine_lacks_instead_of_waiting(ray_local, demo_dir: Path,
                                                                          tmp_path: Path) -> None:
    # A search run on a cluster's big nodes, finalized on a laptop: its retrains would queue forever.
    from zsl_search.errors import ConfigError
    from zsl_search.search import finalize

    _, res = _searched(tmp_path, demo_dir, resources={"cpu": 64, "gpu": 0})
    with pytest.raises(ConfigError, match=r"a trial needs cpu=64, gpu=0 on one node, more than this machine has"):
        finalize(str(res), "gone", top_k=1, seeds=1, progress=False)
    assert read_rows(str(res), "gone")[0]["test_H_mean"] is None
