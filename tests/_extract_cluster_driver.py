"""Run by tests/test_data_extract.py in a fresh process: `extract` on a two-worker
``ray.cluster_utils.Cluster`` (the head has no CPUs, so both actors land on the workers), with
the test's settings. Prints the report as one JSON line."""

from __future__ import annotations

import json
import sys

from _clusters import head_only_cluster
from test_data_extract import SETTINGS

from zsl_search.data import extract


def main(images: str, out: str) -> None:
    with head_only_cluster("ze-") as (cluster, _):
        for _ in range(2):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        # Two actors of one CPU each on two one-CPU nodes: one per node. Same threads as the local run.
        report = extract(images, out, settings=SETTINGS, actors=2, threads=1, address=cluster.address)
        print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
