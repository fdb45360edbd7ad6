"""Run by tests/test_data_extract.py in a fresh process: `extract` on a two-worker
``ray.cluster_utils.Cluster`` (the head has no CPUs, so both actors land on the workers), with
the test's settings. Prints the report as one JSON line."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import ray
from ray._common.utils import get_default_ray_temp_dir
from ray.cluster_utils import Cluster
from test_data_extract import SETTINGS

from zsl_search.data import extract


def main(images: str, out: str) -> None:
    temp_dir = Path(tempfile.mkdtemp(prefix="ze-", dir="/tmp"))  # short: Ray's socket paths live under it
    # Cluster writes its address to Ray's default temp dir (/tmp/ray) whatever temp_dir its nodes
    # use, and fails where no Ray has run on this machine yet (a fresh CI machine).
    Path(get_default_ray_temp_dir()).mkdir(parents=True, exist_ok=True)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False,
                                                            "temp_dir": str(temp_dir)})
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        # Two actors of one CPU each on two one-CPU nodes: one per node. Same threads as the local run.
        report = extract(images, out, settings=SETTINGS, actors=2, threads=1, address=cluster.address)
        print(json.dumps(report))
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
