"""The Ray Tune trainable: one trial = one variant + hyperparameters, trained epoch by epoch on
the features its node's feature store serves, reporting validation metrics and checkpoints."""

from __future__ import annotations

import contextlib
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


def run_trial(config: dict[str, Any], *, spec_data: dict[str, Any], source: Any, search: str, cache_dir: str,
              plugins: tuple[str, ...] = ()) -> None:
    """Tune function trainable (bound with ``tune.with_parameters``): the shared training loop
    (`zsl_search.train.train`), reporting to Tune after every epoch.

    A diverged loss ends the trial after reporting ``diverged=True``. Raises `DataError` when
    the node's feature store cannot load the dataset (the driver then ends the search)."""
    import ray
    import torch
    from ray import tune

    from ..models import load_plugins
    from ..store import fetch_split, get_store
    from ..train import train
    from ._spec import parse_spec

    load_plugins(plugins)  # the driver's variant plugins, before the spec names them
    spec = parse_spec(spec_data)
    torch.set_num_threads(max(1, int(spec.resources.cpu)))
    device = "cuda" if spec.resources.gpu > 0 and torch.cuda.is_available() else spec.device
    split = fetch_split(get_store(source, search=search, cache_dir=cache_dir), device=device)
    params = trial_params(spec, config, dataset=split.dataset)
    node_id = ray.get_runtime_context().get_node_id()

    def report(trainer: Any, row: dict[str, Any]) -> None:
        evaluated = [r for r in trainer.history if "H" in r]
        # The best epoch is chosen on the validation split (earliest on ties): part of the search.
        best = max(evaluated, key=lambda r: r["H"], default={})
        last = evaluated[-1] if evaluated else {}
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

    checkpoint = tune.get_checkpoint()
    with checkpoint.as_directory() if checkpoint is not None else contextlib.nullcontext(None) as d:
        train(split, variant=config["variant"], params=params, seed=spec.seed, device=device,
              eval_every=spec.eval_every, on_epoch=report, resume=None if d is None else Path(d) / CHECKPOINT_FILE)
