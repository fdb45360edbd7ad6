"""The Ray Tune trainable: one trial = one variant + hyperparameters, trained epoch by epoch on
the features its node's feature store serves, reporting validation metrics and checkpoints."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

__all__ = ["run_trial", "trial_params"]

CHECKPOINT_FILE = "trainer.pt"


def trial_params(spec: Any, config: dict[str, Any], *, dataset: str | None = None) -> Any:
    """The variant's params for a trial: reference defaults <- spec's fixed values <- sampled
    values, with the epoch budget from the spec."""
    from ..models import get_variant

    variant = config["variant"]
    _, fixed = spec.variant_space(variant)
    overrides = {**fixed, **config.get(variant, {}), "epochs": spec.budget.max_epochs}
    return get_variant(variant).make_params(overrides, dataset=dataset)


def run_trial(config: dict[str, Any], *, spec_data: dict[str, Any], source: Any, search: str, cache_dir: str) -> None:
    """Tune function trainable (bound with ``tune.with_parameters``)."""
    import ray
    import torch
    from ray import tune

    from ..store import fetch_split, get_store
    from ..train import Trainer
    from ._spec import parse_spec

    spec = parse_spec(spec_data)
    torch.set_num_threads(max(1, int(spec.resources.cpu)))
    device = "cuda" if spec.resources.gpu > 0 and torch.cuda.is_available() else spec.device
    split = fetch_split(get_store(source, search=search, cache_dir=cache_dir), device=device)
    params = trial_params(spec, config, dataset=split.dataset)
    trainer = Trainer(split, variant=config["variant"], params=params, seed=spec.seed, device=device)
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            trainer.load(Path(d) / CHECKPOINT_FILE)
    node_id = ray.get_runtime_context().get_node_id()
    best: dict[str, float] = max((r for r in trainer.history if "H" in r), key=lambda r: r["H"], default={})
    last: dict[str, float] = next((r for r in reversed(trainer.history) if "H" in r), {})
    while trainer.epoch < params.epochs:
        row: dict[str, Any] = {"epoch": trainer.epoch + 1, **trainer.train_epoch()}
        if row.get("diverged") or trainer.epoch % spec.eval_every == 0 or trainer.epoch == params.epochs:
            last = trainer.evaluate().as_dict()
            row.update(last)
            # The best epoch is chosen on the validation split: choosing it is part of the search.
            if not best or last["H"] > best["H"]:
                best = dict(row)
        trainer.history.append(row)
        metrics = {
            "epoch": trainer.epoch, "variant": config["variant"], "node_id": node_id,
            **{k: last.get(k, 0.0) for k in ("U", "S", "H", "zsl_acc", "retrieval_map")},
            "best_H": best.get("H", 0.0), "best_U": best.get("U", 0.0), "best_S": best.get("S", 0.0),
            "best_zsl_acc": best.get("zsl_acc", 0.0), "best_retrieval_map": best.get("retrieval_map", 0.0),
            "best_epoch": int(best.get("epoch", 0)), "diverged": bool(row.get("diverged", False)),
        }
        with tempfile.TemporaryDirectory() as d:
            trainer.save(Path(d) / CHECKPOINT_FILE)
            try:
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
            except OSError as e:
                # Storage unreachable (e.g. an S3 outage): Tune raises while persisting, before
                # it records the result, so report without the checkpoint and keep training.
                warnings.warn(f"checkpoint of epoch {trainer.epoch} not persisted: {e}", stacklevel=1)
                tune.report(metrics)
        if row.get("diverged"):
            break
