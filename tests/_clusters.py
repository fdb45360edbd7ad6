"""A ``ray.cluster_utils.Cluster`` for the driver scripts the cluster tests run in fresh
processes (tests/_multinode_driver.py, tests/_extract_cluster_driver.py)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ray
from ray._common.utils import get_default_ray_temp_dir
from ray.cluster_utils import Cluster

from zsl_search._ray import LOCAL_RAY_CONFIG


@contextlib.contextmanager
def head_only_cluster(prefix: str, **head_node_args: Any) -> Iterator[tuple[Cluster, Path]]:
    """A cluster whose head offers no CPUs (add the worker nodes to it) and the temp dir of its
    nodes; on the way out this process leaves Ray, the cluster stops and the temp dir goes."""
    temp_dir = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))  # short: Ray's socket paths live under it
    # Cluster writes its address to Ray's default temp dir (/tmp/ray) whatever temp_dir its nodes
    # use, and fails where no Ray has run on this machine yet (a fresh CI machine).
    Path(get_default_ray_temp_dir()).mkdir(parents=True, exist_ok=True)
    # No idle workers started in advance on the nodes, as the CLI's local Ray: none would be used.
    config = {**LOCAL_RAY_CONFIG, **head_node_args.pop("_system_config", {})}
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "include_dashboard": False, "temp_dir": str(temp_dir), "_system_config": config, **head_node_args})
    try:
        yield cluster, temp_dir
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
