"""Searches whose results live on a real S3 server (SeaweedFS on loopback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import yaml

import pytest

from zsl_search.leaderboard import pending_searches, read_leaderboard, read_rows
from zsl_search.search import load_spec, run_search
from zsl_search.storage import open_storage

from _searches import sigterm_once


def _spec(path: Path, storage: str, name: str, trials: int, epochs: int = 2) -> Path:
    spec = {
        "name": name,
        "dataset": {"path": "demo"},
        "variants": ["fclswgan", "cosgan"],
        "space": {"all": {"hidden": 128, "syn_num": 40, "cls_epochs": 8, "cls_pretrain_epochs": 3}},
        "budget": {"trials": trials, "max_epochs": epochs},
        "scheduler": "fifo",
        "max_concurrent": 1,
        "storage": storage,
    }
    path.write_text(yaml.safe_dump(spec))
    return path


def _zsl(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zsl_search.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def test_two_searches_on_s3_and_the_cli_reads_them_back(s3_server, ray_local, tmp_path: Path, capfd) -> None:
    from zsl_search.cli import main

    def show(*args: str) -> str:  # the CLI's reading side, in-process
        assert main(["leaderboard", "show", *args]) == 0
        return capfd.readouterr().out

    storage = f"s3://{s3_server.make_bucket('zsl-search-runs')}/team-a"
    # One search through the command line, one through the library, to the same prefix.
    code = main(["search", "run", str(_spec(tmp_path / "alpha.yaml", storage, "alpha", 2, epochs=1))])
    cli = capfd.readouterr()
    assert code == 0, cli.err[-3000:]
    assert "search alpha: 2 trials in" in cli.out
    run_search(load_spec(_spec(tmp_path / "beta.yaml", storage, "beta", 1, epochs=1)), progress=False)
    for name, trials in (("alpha", 2), ("beta", 1)):  # neither clobbered the other
        table = read_leaderboard(storage, name)
        assert table.num_rows == trials and set(table.column("search").to_pylist()) == {name}
        shown = show(storage, "--search", name, "--format", "json")
        expected = [{k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}
                    for row in table.to_pylist()]
        assert json.loads(shown) == expected  # every column, every value
    listing = show(storage)
    assert "alpha" in listing and "beta" in listing
    store = open_storage(storage)
    assert store.exists("alpha/optuna.journal") and store.exists("alpha/spec.yaml")
    assert store.exists("alpha/leaderboard.csv") and store.exists("alpha/leaderboard.md")
    assert any(k.startswith("alpha/") and "events.out.tfevents" in k for k in store.list("alpha/"))
    assert s3_server.env["AWS_SECRET_ACCESS_KEY"] not in shown + listing + cli.out + cli.err


def test_an_s3_outage_mid_search_loses_no_rows(s3_server, ray_local, tmp_path: Path, capfd,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    storage = f"s3://{s3_server.make_bucket('zsl-outage')}/runs"
    monkeypatch.setenv("ZSL_S3_RETRIES", "1")  # the driver gives up on the storage quickly
    monkeypatch.setenv("ZSL_S3_BACKOFF", "0.05")
    outage = threading.Event()

    def stop_s3_after_the_first_row() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            try:
                if read_rows(storage, "outage"):
                    break
            except Exception:  # noqa: BLE001 - nothing written yet
                pass
            time.sleep(0.2)
        s3_server.stop()  # the storage disappears with trials still to run
        outage.set()

    watcher = threading.Thread(target=stop_s3_after_the_first_row, daemon=True)
    watcher.start()
    try:
        result = run_search(load_spec(_spec(tmp_path / "s.yaml", storage, "outage", 3)), progress=False)
    finally:
        watcher.join(timeout=240)
        s3_server.start()
    assert outage.is_set() and result.ending == "finished" and len(result.rows) == 3
    err = capfd.readouterr().err
    assert "Traceback" not in err and "warning: Tune could not save the search's state to its storage" in err, err[-3000:]
    assert pending_searches(storage) == [(storage, "outage")]  # kept locally while S3 was down
    synced = _zsl("leaderboard", "sync", storage, env={"ZSL_S3_RETRIES": "1", "ZSL_S3_BACKOFF": "0.05"})
    assert synced.returncode == 0, synced.stdout + synced.stderr
    rows = read_rows(storage, "outage")
    assert len({r["trial_id"] for r in rows}) == 3  # every trial's row made it
    # The Optuna journal, kept in the cache while S3 was down, went up with them: whole.
    from zsl_search import settings
    from zsl_search.search._journal import journal_path

    assert f"uploaded the Optuna journal of outage to {storage}" in synced.stdout, synced.stdout
    cached = journal_path(storage, "outage", settings.cache_dir()).read_bytes()
    assert open_storage(storage).read_bytes("outage/optuna.journal") == cached and cached.count(b'"op_code":4') >= 3
    again = _zsl("leaderboard", "sync", storage)
    assert again.returncode == 0 and again.stdout.strip() == "nothing to sync", again.stdout + again.stderr


@pytest.mark.slow  # two searches and a finalize on S3: 25-55 s on 2 cores (`make test-slow`)
def test_an_interrupted_search_on_s3_resumes_with_the_command_it_prints(s3_server, ray_local, tmp_path: Path,
                                                                       capfd) -> None:
    from zsl_search.cli import main
    from zsl_search.search._running import check_not_running

    storage = f"s3://{s3_server.make_bucket('zsl-resume')}/runs"
    spec = _spec(tmp_path / "r.yaml", storage, "again", 3)  # one at a time: 2 left when the first ends
    refusals: list[str] = []

    def refused_while_running() -> bool:  # polled by the signal's thread, while the search runs
        try:
            if not read_rows(storage, "again"):
                return False  # one trial has ended: the others are still to run
        except Exception:  # noqa: BLE001 - nothing written yet
            return False
        # Its driver is alive: finalize (and a second driver, which checks the same) is refused.
        try:
            check_not_running(storage, "again", then="wait")
        except Exception as e:  # noqa: BLE001 - asserted below
            refusals.append(str(e))
        refusals.append(str(main(["finalize", storage, "--search", "again", "--top-k", "1", "--seeds", "1"])))
        return True

    with sigterm_once(refused_while_running):
        code = main(["search", "run", str(spec)])
    err = capfd.readouterr().err
    assert code == 130, err[-3000:]  # interrupted: the refusals above came while it ran
    assert len(refusals) == 2 and "search 'again' is still running" in refusals[0] and refusals[1] == "2", refusals
    assert "zsl-search: error: search 'again' is still running" in err  # finalize's one line
    command = f"zsl-search search resume again --storage {storage}"
    assert command in err
    assert main(command.split()[1:]) == 0, capfd.readouterr().err[-3000:]
    assert "the search ran its whole budget" in capfd.readouterr().out
    rows = read_rows(storage, "again")
    assert len(rows) == 3 and len({r["trial_id"] for r in rows}) == 3  # every trial exactly once
    assert all(r["status"] == "COMPLETE" for r in rows), [(r["trial_id"], r["status"]) for r in rows]
    assert not open_storage(storage).exists("_running/again.json")  # the ended driver took its marker away


@pytest.mark.slow  # two searches on S3: 20-40 s on 2 cores (`make test-slow`)
def test_a_search_on_s3_deleted_and_run_again_gives_the_same_numbers(s3_server, ray_local, tmp_path: Path) -> None:
    # The Optuna journal of a search on S3 lives in the local cache while it runs; once the
    # search is deleted from the bucket, a new one of that name must not inherit its trials.
    storage = f"s3://{s3_server.make_bucket('zsl-rerun')}/runs"
    spec = load_spec(_spec(tmp_path / "d.yaml", storage, "twice", 3, epochs=1)).override(
        {"space.all.lr_g": {"low": 1e-4, "high": 1e-2, "log": True}})

    def run() -> list[tuple]:
        rows = run_search(spec, progress=False).rows
        return sorted((r["variant"], r["config_json"], r["H"]) for r in rows)

    first = run()
    store = open_storage(storage)
    for key in [*store.list("twice/"), "_index/twice.json"]:
        store.delete(key)
    assert run() == first
