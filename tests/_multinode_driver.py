"""Run by tests/test_cluster.py in a fresh process: a search on a two-worker
``ray.cluster_utils.Cluster`` (the head only drives; one worker has a fake GPU) whose results go
to ``argv[1]`` (S3). Once trials have reported on both workers, the worker of a trial that has
reported two epochs is killed. Prints one JSON line: each trial's (epoch, node) reports, the
feature stores alive just before the kill and at the end, the lost node, and the nodes."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import ray
from _clusters import head_only_cluster
from ray.cluster_utils import Cluster

from zsl_search.search import parse_spec, run_search
from zsl_search.store import NAMESPACE


def reports(temp_dir: Path) -> dict[str, list[tuple[int, str]]]:
    """Every trial's (epoch, node_id) reports, from the result.json files Tune keeps on the
    driver (its staging copy of what it syncs to the S3 storage)."""
    out = {}
    for path in temp_dir.glob("session_*/artifacts/*/multinode/driver_artifacts/*/result.json"):
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        out[path.parent.name.split("-")[0]] = [(r["epoch"], r["node_id"]) for r in lines]
    return out


def stores() -> list[str]:
    return sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                  if a["namespace"] == NAMESPACE and a["name"].startswith("feature-store:multinode:"))


MAX_EPOCHS = 20


def kill_a_worker_mid_trial(cluster: Cluster, workers: list, temp_dir: Path, seen: dict) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        now = reports(temp_dir)
        nodes = {node for trial in now.values() for _, node in trial}
        # A trial mid-way: two epochs reported, and far enough from its last that it is still
        # running when the kill lands (a finished trial's node would leave nothing to restart).
        victim = next((trial for trial in now.values() if trial and 2 <= trial[-1][0] <= MAX_EPOCHS - 8), None)
        if len(nodes) == 2 and victim is not None:
            seen["stores_before"] = stores()
            node = next(w for w in workers if w.node_id == victim[-1][1])
            seen["lost"] = node.node_id
            cluster.remove_node(node, allow_graceful=False)
            return
        time.sleep(0.05)


def main(storage: str) -> None:
    # Detect the lost node in about a second instead of Ray's default 15 s.
    health = {"health_check_period_ms": 200, "health_check_failure_threshold": 3}
    with head_only_cluster("zm-", _system_config=health) as (cluster, temp_dir):
        workers = [cluster.add_node(num_cpus=1, num_gpus=1),  # a "GPU" node: only the resource is fake
                   cluster.add_node(num_cpus=1)]
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        seen: dict = {}
        spec = parse_spec({
            "name": "multinode",
            "dataset": {"path": "demo"},
            "variants": ["fclswgan", "cosgan"],
            # cls_epochs 8: epochs long enough (about 0.1 s) that the kill lands mid-trial.
            "space": {"all": {"hidden": 32, "syn_num": 20, "cls_epochs": 8, "cls_pretrain_epochs": 2}},
            "budget": {"trials": 3, "max_epochs": MAX_EPOCHS},
            "scheduler": "fifo",
            "resources": {"cpu": 1, "gpu": 0},
            "max_concurrent": 2,
            "storage": storage,
        })
        killer = threading.Thread(target=kill_a_worker_mid_trial, args=(cluster, workers, temp_dir, seen), daemon=True)
        killer.start()
        result = run_search(spec, progress=False)
        killer.join()
        print(json.dumps({
            "reports": reports(temp_dir),
            "stores_before": seen.get("stores_before", []),
            "stores_after": result.feature_stores,
            "lost": seen.get("lost"),
            "nodes": {w.node_id: ("gpu" if i == 0 else "cpu") for i, w in enumerate(workers)},
            "ending": result.ending,
            "max_epochs": MAX_EPOCHS,
        }))

if __name__ == "__main__":
    main(sys.argv[1])
