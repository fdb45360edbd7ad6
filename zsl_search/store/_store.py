"""The per-node feature store: one Ray actor per node loads a dataset once and shares it.

CPU: the actor puts the preprocessed arrays into the node's object store ONCE and hands out
that ObjectRef; every trial's ``ray.get`` maps the same shared memory read-only (zero copy).
GPU: the actor keeps one device copy per GPU and exports CUDA IPC handles
(torch.multiprocessing reductions) so trials on that GPU map the same device memory; if IPC
is unavailable a trial falls back to its own device copy of the shared CPU arrays.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import DataError
from ._source import DataSource, load_split

__all__ = ["FeatureStore", "get_store", "fetch_split", "fetch_classifier", "store_actor_name", "NAMESPACE"]

NAMESPACE = "zsl-search"


class FeatureStore:
    """Actor body (wrapped by ``ray.remote`` in `get_store`). Loads the split in ``__init__``."""

    def __init__(self, source: DataSource, cache_dir: str) -> None:
        import ray

        self._node_id = ray.get_runtime_context().get_node_id()
        self._cuda: dict[str, Any] = {}  # GPU uuid -> (device tensors, exported IPC handles)
        self._classifiers: dict[tuple[int, int], Any] = {}  # (seed, epochs) -> ObjectRef of its weights
        self._served = 0
        self._nbytes = 0
        self._error: str | None = None
        try:
            split = load_split(source, cache_dir=Path(cache_dir))
        except DataError as e:
            # Kept, not raised: an actor that dies in __init__ hands every trial a Ray traceback
            # instead of this one line, and the search driver ends the search on it (`fetch_split`).
            self._error = str(e)
            return
        self._meta, arrays = split.to_arrays()
        self._nbytes = int(sum(a.nbytes for a in arrays.values()))
        self._ref = ray.put(arrays)  # the node's one copy; this process keeps no other
        del split, arrays

    def handle(self) -> dict[str, Any]:
        """Metadata plus the ObjectRef, wrapped in a list so Ray passes the ref, not the data;
        or ``{"error": message}`` when this node could not load the dataset."""
        if self._error is not None:
            return {"error": self._error}
        self._served += 1
        return {"meta": self._meta, "refs": [self._ref], "node_id": self._node_id, "pid": os.getpid()}

    def stats(self) -> dict[str, Any]:
        """What this store holds and has done (bytes shared, trials served, GPU copies, frozen
        classifiers trained): how bench/feature_store.py and the tests see that one copy serves
        every trial of a node."""
        return {"node_id": self._node_id, "pid": os.getpid(), "nbytes": self._nbytes, "served": self._served,
                "cuda_copies": len(self._cuda), "classifiers": len(self._classifiers)}

    def frozen_classifier(self, seed: int, epochs: int) -> list[Any]:
        """The frozen classifier for the ``cls_weight`` loss (`zsl_search.train.pretrain_classifier`),
        trained on first request for ``(seed, epochs)`` and shared by every later trial of the
        node; ``[ObjectRef]`` of its ``{"weight", "bias"}`` arrays (a list, so Ray passes the ref),
        ``[]`` when this store could not load the dataset."""
        import ray

        from ..data import Split
        from ..train import pretrain_classifier

        # Nothing to train on: `fetch_split` already told the trial why. Not raised, since the
        # driver's prewarm request drops its ref and Ray would print that error unasked.
        if self._error is not None:
            return []
        if (seed, epochs) not in self._classifiers:
            split = Split.from_arrays(self._meta, ray.get(self._ref))
            cls = pretrain_classifier(split.train_x, split.train_y, split.n_seen, epochs=epochs, seed=seed)
            self._classifiers[seed, epochs] = ray.put({k: v.numpy() for k, v in cls.state_dict().items()})
        return [self._classifiers[seed, epochs]]

    def cuda_handles(self, gpu_uuid: str) -> dict[str, Any] | None:
        """IPC handles of this store's copy on the GPU with ``gpu_uuid`` (created on first call).
        Returns None when that GPU is not visible here or CUDA IPC is unsupported."""
        import ray
        import torch
        from torch.multiprocessing.reductions import reduce_tensor

        from ..data import Split

        if not torch.cuda.is_available() or self._error is not None:
            return None
        if gpu_uuid not in self._cuda:
            index = next((i for i in range(torch.cuda.device_count())
                          if str(torch.cuda.get_device_properties(i).uuid) == gpu_uuid), None)
            if index is None:
                return None
            arrays = ray.get(self._ref)  # zero-copy, read-only views of the node's CPU copy
            shared = Split.from_arrays(self._meta, arrays)
            tensors = {k: getattr(shared, k).to(torch.device("cuda", index)) for k in arrays}
            self._cuda[gpu_uuid] = (tensors, {k: reduce_tensor(t)[1] for k, t in tensors.items()})
        return {"meta": self._meta, "ipc": self._cuda[gpu_uuid][1]}


def store_actor_name(source: DataSource, node_id: str, search: str) -> str:
    # ":" cannot occur in a search name, so one search's prefix never matches another's stores.
    return f"feature-store:{search}:{source.key()}:{node_id[:16]}"


def get_store(source: DataSource, *, search: str, cache_dir: str | Path, node_id: str | None = None) -> Any:
    """Get or create the feature-store actor for ``source`` on ``node_id`` (default: this node).

    Detached, so it outlives the trial that created it and serves every later trial on the
    node; the search driver kills it when the search ends (`release_stores`)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node_id = node_id or ray.get_runtime_context().get_node_id()
    actor_cls = ray.remote(num_cpus=0)(FeatureStore)
    return actor_cls.options(
        name=store_actor_name(source, node_id, search), namespace=NAMESPACE, get_if_exists=True,
        lifetime="detached", scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
        # The store sees every GPU of its node, so it can hold one copy per GPU.
        runtime_env={"env_vars": {"RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES": "1"}},
    ).remote(source, str(cache_dir))


def fetch_split(store: Any, *, device: str = "cpu"):  # -> Split
    """The split served by ``store`` for a trial running on ``device``; never reads .mat files.

    Raises:
        DataError: the store could not load the dataset on this node (the message names the file).
    """
    import ray
    import torch

    from ..data import Split

    if device.startswith("cuda") and torch.cuda.is_available():
        split = _fetch_cuda(store)
        if split is not None:
            return split
    info = ray.get(store.handle.remote())
    if "error" in info:
        raise DataError(info["error"])
    return Split.from_arrays(info["meta"], ray.get(info["refs"][0]))  # read-only, zero-copy views


def fetch_classifier(store: Any, *, seed: int, epochs: int):  # -> torch.nn.Linear
    """The node's shared frozen classifier for ``(seed, epochs)`` (see `FeatureStore.frozen_classifier`),
    on the CPU (`zsl_search.train.Trainer` moves it).

    Raises:
        DataError: the store could not load the dataset on this node (the message names the file).
    """
    import ray
    import torch

    refs = ray.get(store.frozen_classifier.remote(seed, epochs))
    if not refs:
        raise DataError(ray.get(store.handle.remote())["error"])
    weights = ray.get(refs[0])
    cls = torch.nn.Linear(weights["weight"].shape[1], weights["weight"].shape[0])
    cls.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in weights.items()})
    return cls.eval().requires_grad_(False)


def _fetch_cuda(store: Any):  # -> Split | None
    import ray
    import torch
    from torch.multiprocessing.reductions import rebuild_cuda_tensor

    from ..data import Split

    try:
        uuid = str(torch.cuda.get_device_properties(torch.cuda.current_device()).uuid)
        info = ray.get(store.cuda_handles.remote(uuid))
        if info is None:
            return None
        local = torch.cuda.current_device()
        tensors = {}
        for name, args in info["ipc"].items():
            args = list(args)
            args[6] = local  # the storage's device index in THIS process's numbering
            tensors[name] = rebuild_cuda_tensor(*args)
        meta = info["meta"]
        return Split(dataset=meta["dataset"], protocol=meta["protocol"], defaults=meta.get("defaults", ""), **tensors)
    except Exception:  # no IPC (e.g. MIG, WSL): the caller falls back to a per-trial device copy
        return None


def release_stores(search: str) -> list[str]:
    """Kill the feature-store actors of ``search`` on every node; returns their names (which
    carry the node id)."""
    import ray

    killed: list[str] = []
    if not ray.is_initialized():
        return killed
    for actor in ray.util.list_named_actors(all_namespaces=True):
        if actor["namespace"] == NAMESPACE and actor["name"].startswith(f"feature-store:{search}:"):
            try:
                ray.kill(ray.get_actor(actor["name"], namespace=NAMESPACE))
            except ValueError:  # gone already, e.g. with a lost node
                continue
            killed.append(actor["name"])
    return killed
