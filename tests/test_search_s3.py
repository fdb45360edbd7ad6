"""Searches whose results live on a real S3 server (SeaweedFS on loopback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import yaml

from zsl_search.leaderboard import read_leaderboard, read_rows
from zsl_search.storage import open_storage


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


def test_two_searches_on_s3_and_the_cli_reads_them_back(s3_server, tmp_path: Path) -> None:
    storage = f"s3://{s3_server.make_bucket('zsl-search-runs')}/team-a"
    for name, trials in (("alpha", 2), ("beta", 1)):
        r = _zsl("search", "run", str(_spec(tmp_path / f"{name}.yaml", storage, name, trials, epochs=1)))
        assert r.returncode == 0, r.stderr[-3000:]
        assert f"search {name}: {trials} trials" in r.stdout
    for name, trials in (("alpha", 2), ("beta", 1)):  # neither clobbered the other
        table = read_leaderboard(storage, name)
        assert table.num_rows == trials and set(table.column("search").to_pylist()) == {name}
        shown = _zsl("leaderboard", "show", storage, "--search", name, "--format", "json")
        assert shown.returncode == 0, shown.stderr
        expected = [{k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}
                    for row in table.to_pylist()]
        assert json.loads(shown.stdout) == expected  # every column, every value
    listing = _zsl("leaderboard", "show", storage)
    assert "alpha" in listing.stdout and "beta" in listing.stdout
    store = open_storage(storage)
    assert store.exists("alpha/optuna.journal") and store.exists("alpha/spec.yaml")
    assert store.exists("alpha/leaderboard.csv") and store.exists("alpha/leaderboard.md")
    assert any(k.startswith("alpha/") and "events.out.tfevents" in k for k in store.list("alpha/"))
    assert s3_server.env["AWS_SECRET_ACCESS_KEY"] not in shown.stderr + listing.stdout + r.stdout + r.stderr


def test_an_s3_outage_mid_search_loses_no_rows(s3_server, tmp_path: Path) -> None:
    storage = f"s3://{s3_server.make_bucket('zsl-outage')}/runs"
    env = {"ZSL_S3_RETRIES": "1", "ZSL_S3_BACKOFF": "0.05"}
    driver = subprocess.Popen(
        [sys.executable, "-m", "zsl_search.cli", "search", "run", str(_spec(tmp_path / "s.yaml", storage, "outage", 3))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **env})
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and driver.poll() is None:
        try:
            if read_rows(storage, "outage"):
                break
        except Exception:
            pass
        time.sleep(0.5)
    s3_server.stop()  # the storage disappears with trials still to run
    try:
        out, err = driver.communicate(timeout=300)
    finally:
        s3_server.start()
    assert driver.returncode == 0, err[-3000:]
    assert "outage: 3 trials" in out and "leaderboard sync" in err
    synced = _zsl("leaderboard", "sync", storage, env=env)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    rows = read_rows(storage, "outage")
    assert len({r["trial_id"] for r in rows}) == 3  # every trial's row made it
