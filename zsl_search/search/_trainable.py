"""The Ray Tune trainable: one trial = one variant + hyperparameters, trained epoch by epoch on
the features its node's feature store serves, reporting validation metrics and checkpoints."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["run_trial", "trial_params", "trial_metrics", "fold_splits", "report_epoch", "extras_above",
           "evaluator_name"]

CHECKPOINT_FILE = "trainer-{fold}.pt"


def trial_params(spec: Any, config: dict[str, Any], *, dataset: str | None = None) -> Any:
    """The variant's params for a trial: reference defaults <- spec's fixed values <- sampled
    values, with the epoch budget from the spec."""
    from ..models import get_variant

    variant = config["variant"]
    values = {**spec.variant_space(variant).fixed, **config.get(variant, {}), "epochs": spec.budget.max_epochs}
    return get_variant(variant).make_params(values, dataset=dataset)


def run_trial(config: dict[str, Any], *, spec: Any, source: Any, search: str, cache_dir: str,
              plugins: tuple[str, ...] = ()) -> None:
    """Tune function trainable (bound with ``tune.with_parameters``): the shared training loop
    (`zsl_search.train.Trainer`), one trainer per class fold (``spec.folds``), reporting to Tune
    after every epoch the fold-averaged validation metrics.

    A diverged loss ends the trial after reporting ``diverged=True``. Raises `DataError` when
    the node's feature store cannot load the dataset (the driver then ends the search)."""
    import time

    import ray
    from ray import tune

    from ..store import fetch_classifier
    from ..train import Trainer

    device, stores, splits = fold_splits(spec, source, search=search, cache_dir=cache_dir, plugins=plugins)
    params = trial_params(spec, config, dataset=splits[0].defaults_name)
    shared = spec.runtime.shared_classifier and params.cls_weight > 0
    trainers = [Trainer(split, variant=config["variant"], params=params, seed=spec.seed, device=device,
                        classifier=fetch_classifier(store, seed=spec.seed, epochs=params.cls_pretrain_epochs)
                        if shared else None)
                for store, split in zip(stores, splits, strict=True)]
    node_id = ray.get_runtime_context().get_node_id()

    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            for k, trainer in enumerate(trainers):
                trainer.load(Path(d) / CHECKPOINT_FILE.format(fold=k))

    def save(d: Path) -> None:
        for k, trainer in enumerate(trainers):
            trainer.save(d / CHECKPOINT_FILE.format(fold=k))

    def report() -> None:
        metrics = {**trial_metrics([t.history for t in trainers], schedule_steps=trainers[0].schedule_steps),
                   "variant": config["variant"], "node_id": node_id, "first_step_at": first_step_at}
        report_epoch(metrics, save)

    first_step_at = time.time()  # wall clock, for the driver's time-to-first-step figure
    while trainers[0].step < trainers[0].schedule_steps:
        for trainer in trainers:  # one epoch per fold
            trainer.fit_epoch(eval_every=spec.eval_every, extras_above=extras_above(spec, trainer.history))
        report()
        if any(t.history[-1].get("diverged") for t in trainers):
            break


def fold_splits(spec: Any, source: Any, *, search: str, cache_dir: str,
                plugins: tuple[str, ...]) -> tuple[str, list[Any], list[Any]]:
    """A trial worker's start: the driver's variant plugins loaded, torch's threads set, freed
    memory kept for the next step (``runtime.reuse_memory``), and (device, feature stores,
    splits) of each class fold, served by this node's stores."""
    import dataclasses

    import torch

    from .._memory import reuse_freed_memory
    from ..models import load_plugins
    from ..store import fetch_split, get_store

    load_plugins(plugins)  # the driver's variant plugins, before the spec's variants are built
    torch.set_num_threads(max(1, int(spec.resources.cpu)))
    if spec.runtime.reuse_memory:
        reuse_freed_memory()
    device = "cuda" if spec.resources.gpu > 0 and torch.cuda.is_available() else spec.device
    stores = [get_store(dataclasses.replace(source, fold=k), search=search, cache_dir=cache_dir)
              for k in range(spec.folds)]
    return device, stores, [fetch_split(store, device=device) for store in stores]


def report_epoch(metrics: dict[str, Any], save: Callable[[Path], None]) -> None:
    """Report an epoch's ``metrics`` to Tune with the checkpoint ``save(directory)`` writes."""
    from ray import tune

    from ..errors import warn

    with tempfile.TemporaryDirectory() as d:
        save(Path(d))
        try:
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
        except OSError as e:
            # Storage unreachable (e.g. an S3 outage): Tune raises while persisting, before
            # it records the result, so report without the checkpoint and keep training.
            warn(f"checkpoint of epoch {metrics.get('epoch')} not persisted: {e}")
            tune.report(metrics)


def trial_metrics(histories: list[list[dict[str, Any]]], *, schedule_steps: int) -> dict[str, Any]:
    """What a trial reports after an epoch, from each fold's history of epoch rows."""
    evaluated = [r for r in map(_fold_mean, zip(*histories, strict=True)) if "H" in r]
    # The best epoch is chosen on the validation split (earliest on ties): part of the search.
    best = max(evaluated, key=lambda r: r["H"], default={})
    last = evaluated[-1] if evaluated else {}
    return {
        "epoch": int(histories[0][-1]["epoch"]) if histories[0] else 0,
        # last_*: the latest evaluated epoch (TensorBoard's curves); best_*: the best one so
        # far, chosen on validation, which ranks trials and fills the leaderboard's H/U/S.
        # (ZSL and retrieval only where they were computed, see `extras_above`.)
        **{f"last_{k}": v for k in ("U", "S", "H", "zsl_acc", "retrieval_map")
           if not math.isnan(v := last.get(k, 0.0))},
        "best_H": best.get("H", 0.0), "best_U": best.get("U", 0.0), "best_S": best.get("S", 0.0),
        "best_zsl_acc": best.get("zsl_acc", 0.0), "best_retrieval_map": best.get("retrieval_map", 0.0),
        "best_epoch": int(best.get("epoch", 0)), "diverged": any(h[-1].get("diverged") for h in histories if h),
        # What `finalize` repeats: the generator steps to the best epoch on this schedule,
        # and the final classifier's length (epochs, Adam steps) validated there.
        "best_step": int(best.get("step", 0)), "schedule_steps": schedule_steps,
        "best_cls_epochs": int(best.get("cls_epoch", 0)) + 1 if best else 0,
        "best_cls_steps": int(best.get("cls_steps", 0)),
    }


def extras_above(spec: Any, history: list[dict[str, Any]]) -> float | None:
    """The H an epoch must beat to be scored with the ZSL classifier and retrieval too, which
    the leaderboard reports for a trial's best epoch only (``runtime.lazy_zsl``): the best H in
    ``history`` so far. None (every epoch) with class folds, whose best epoch is chosen on the
    fold mean, which no single fold's history knows while it is evaluated."""
    if not spec.runtime.lazy_zsl or spec.folds > 1:
        return None
    return max((r["H"] for r in history if "H" in r), default=-1.0)


def evaluator_name(spec: Any) -> str:
    """Which evaluator scored a search's epochs, as its leaderboard rows say: ``reference`` (the
    reference classifier protocol in full at every epoch) or ``reference+lazy_zsl`` (the same
    GZSL classifier at every epoch, the ZSL classifier and retrieval only at epochs whose H beats
    the trial's best so far: the row's values are the same, see `extras_above`)."""
    return "reference" if extras_above(spec, []) is None else "reference+lazy_zsl"


def _fold_mean(rows: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    """One epoch's row averaged over the folds: the scores are means; the training length is
    the first fold's (the dataset's own train/val split); the classifier's length is the
    (lower) median fold's, so a single fold cannot decide it."""
    import statistics

    first = rows[0]
    if "H" not in first or any("H" not in r for r in rows):
        return dict(first)
    out = {**first, **{k: statistics.fmean(r[k] for r in rows) for k in ("U", "S", "H", "zsl_acc", "retrieval_map")}}
    median = sorted(rows, key=lambda r: r["cls_epoch"])[(len(rows) - 1) // 2]  # the lower median
    out["cls_epoch"], out["cls_steps"] = median["cls_epoch"], median.get("cls_steps", 0)
    return out
