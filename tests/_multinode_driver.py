"""Run by tests/test_cluster.py in a fresh process: a two-node ``ray.cluster_utils.Cluster``
(the second node with a fake GPU) runs a small search whose results go to ``argv[1]``.
Prints one JSON line: the trials' nodes and the feature-store actors that served them."""

from __future__ import annotations

import json
import sys

import ray
from ray.cluster_utils import Cluster

from zsl_search.search import parse_spec, run_search


def main(storage: str) -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    worker = cluster.add_node(num_cpus=1, num_gpus=1)  # a "GPU" node: only the resource is fake
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        spec = parse_spec({
            "name": "multinode",
            "dataset": {"path": "demo"},
            "variants": ["fclswgan", "cosgan"],
            "space": {"all": {"hidden": 64, "syn_num": 20, "cls_epochs": 3, "cls_pretrain_epochs": 2}},
            "budget": {"trials": 4, "max_epochs": 2},
            "scheduler": "fifo",
            "resources": {"cpu": 1, "gpu": 0},
            "max_concurrent": 2,
            "storage": storage,
        })
        result = run_search(spec, progress=False)
        nodes = {n["NodeID"]: ("gpu" if n["Resources"].get("GPU") else "head") for n in ray.nodes() if n["Alive"]}
        print(json.dumps({
            "trial_nodes": [r["node_id"] for r in result.rows],
            "stores": result.stores,
            "nodes": nodes,
            "gpu_node": worker.node_id,
        }))
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
