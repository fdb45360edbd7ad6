"""Finalize a search: retrain its best configurations under the TEST protocol, several seeds
each, and write test U/S/H (mean and std) into the leaderboard. The only place a search ever
touches the test split."""

from __future__ import annotations

import json
import statistics
from typing import Any

__all__ = ["finalize"]


def _final_run(*, source: Any, search: str, cache_dir: str, variant: str, params: dict[str, Any], seed: int,
               device: str) -> dict[str, float]:
    """One retraining (a Ray task): the test-protocol split from the node's feature store."""
    import torch

    from ..models import get_variant
    from ..store import fetch_split, get_store
    from ..train import train

    torch.set_num_threads(1)
    split = fetch_split(get_store(source, search=search, cache_dir=cache_dir), device=device)
    p = get_variant(variant).make_params(params, dataset=split.dataset)
    # The GAN trains for the epoch count chosen on validation and the final classifier reports
    # its last epoch: nothing is chosen on the test split.
    return train(split, variant=variant, params=p, seed=seed, device=device, eval_every=p.epochs or 1,
                 select_epoch=False).metrics


def finalize(storage: str, search: str, *, top_k: int = 3, seeds: int = 3, address: str | None = None) -> list[dict[str, Any]]:
    """Retrain the ``top_k`` best trials of ``search`` with ``seeds`` seeds under protocol
    ``test`` (through Ray) and store test_U/S/H mean and std in its leaderboard.

    Each configuration is trained for the epoch count its trial reached its best validation H
    at. Returns the updated leaderboard rows.

    Raises:
        ConfigError: top_k or seeds < 1.
        SearchNotFound: no such search under ``storage``.
    """
    import ray

    from .. import settings
    from ..errors import ConfigError
    from ..leaderboard import read_rows, update_test_columns
    from ..store import DataSource, release_stores
    from ._run import _init_ray, load_saved_spec

    if top_k < 1 or seeds < 1:
        raise ConfigError("--top-k and --seeds must be >= 1")
    rows = [r for r in read_rows(storage, search) if r["status"] != "ERROR"][:top_k]
    spec = load_saved_spec(storage, search)
    _init_ray(address)
    source = DataSource(path=spec.dataset.path, semantics=spec.dataset.semantics, protocol="test",
                        preprocess=spec.dataset.preprocess, seed=spec.seed)
    store_search = f"{search}-finalize"
    task = ray.remote(_final_run).options(num_cpus=spec.resources.cpu, num_gpus=spec.resources.gpu)
    device = "cuda" if spec.resources.gpu > 0 else spec.device
    refs: dict[str, list[Any]] = {}
    for row in rows:
        params = {**json.loads(row["config_json"]), "epochs": max(int(row["best_epoch"]), 1)}
        refs[row["trial_id"]] = [
            task.remote(source=source, search=store_search, cache_dir=str(settings.cache_dir()),
                        variant=row["variant"], params=params, seed=spec.seed + i, device=device)
            for i in range(seeds)
        ]
    try:
        results = {trial: ray.get(r) for trial, r in refs.items()}
    finally:
        release_stores(store_search)
    columns = {}
    for trial, runs in results.items():
        cols: dict[str, Any] = {"test_seeds": [spec.seed + i for i in range(seeds)]}
        for key in ("U", "S", "H"):
            values = [m[key] for m in runs]
            cols[f"test_{key}_mean"] = statistics.fmean(values)
            cols[f"test_{key}_std"] = statistics.pstdev(values)
        columns[trial] = cols
    update_test_columns(storage, search, results=columns)
    return read_rows(storage, search)
