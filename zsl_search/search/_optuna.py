"""The Optuna side of a search (needs Ray): the conditional (define-by-run) space, warm start,
and a searcher that tells Optuna early-stopped trials were pruned."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from ..errors import warn
from ..models import Categorical, Distribution, Float, Int
from ._factories import make_sampler
from ._spec import SearchSpec

__all__ = ["define_by_run", "make_searcher", "warm_start_points", "METRIC"]

METRIC = "best_H"  # best validation H over the epochs so far: what trials are ranked by


class DefineByRun:
    """The conditional space (a picklable callable, as Tune checkpoints its searcher).

    Variant is the top-level choice; every other parameter is conditional on it and named
    ``<variant>/<param>`` so Tune hands the trainable ``config[variant][param]``."""

    def __init__(self, spec: SearchSpec) -> None:
        self.variants = list(spec.variants)
        self.spaces = {v: spec.variant_space(v).searched for v in spec.variants}

    def __call__(self, trial: Any) -> None:
        variant = trial.suggest_categorical("variant", self.variants)
        for name, dist in sorted(self.spaces[variant].items()):
            _suggest(trial, f"{variant}/{name}", dist)


def define_by_run(spec: SearchSpec) -> Callable[[Any], None]:
    """The spec's conditional search space as an Optuna define-by-run function."""
    return DefineByRun(spec)


def _suggest(trial: Any, name: str, dist: Distribution) -> Any:
    if isinstance(dist, Float):
        return trial.suggest_float(name, dist.low, dist.high, log=dist.log)
    if isinstance(dist, Int):
        return trial.suggest_int(name, dist.low, dist.high, log=dist.log)
    if isinstance(dist, Categorical):
        return trial.suggest_categorical(name, list(dist.choices))
    raise TypeError(f"unknown distribution {dist!r}")


class _PrunedEarlyStopsSearch(OptunaSearch):
    """Trials ASHA stopped early are told to Optuna as PRUNED (with their reported
    intermediate values), not as COMPLETE at full budget: TPE then ranks them below the
    finished trials instead of mistaking a 2-epoch H for a final one."""

    def __init__(self, *args: Any, max_epochs: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._max_epochs = max_epochs

    def suggest(self, trial_id: str) -> dict | None:
        # Tune times the define-by-run space around Optuna's own sampling (TPE over every trial so
        # far) and warns past 1 s that "computation" belongs in the trainable: on a busy machine
        # that fires for the sampler's work, with nothing for the user to move.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Define-by-run function passed in the `space` argument",
                                    category=UserWarning)
            return super().suggest(trial_id)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if self._finished_in_study(trial_id):
            return
        # A resumed trial retrains the epochs after its checkpoint that it had already reported;
        # Optuna keeps each step's first value, rightly, and warns about every repeat.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The reported value is ignored because this `step",
                                    category=UserWarning)
            super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if self._finished_in_study(trial_id):
            return
        if error or not result or result.get("epoch", 0) >= self._max_epochs or trial_id in self._completed_trials:
            return super().on_trial_complete(trial_id, result, error)
        self._ot_study.tell(self._ot_trials[trial_id], state=TrialState.PRUNED)
        self._completed_trials.add(trial_id)

    def _finished_in_study(self, trial_id: str) -> bool:
        """Whether the study already holds this trial's end although the restored searcher does
        not: Tune's saved state can be older than the journal (an S3 outage kept Tune from
        uploading while `leaderboard sync` later uploaded the journal), and Tune then runs the
        trial again. Its end stays as first told: Optuna refuses to update a finished trial."""
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return False
        stored = self._ot_study._storage.get_trial(self._ot_trials[trial_id]._trial_id)
        if not stored.state.is_finished():
            return False
        self._completed_trials.add(trial_id)
        return True


def warm_start_points(spec: SearchSpec, *, dataset: str | None) -> list[dict[str, Any]]:
    """One first trial per variant at its reference defaults for ``dataset`` (the values the
    spec's space can express), so a search starts from what the papers recommend."""
    from ..models import get_variant

    points = []
    for variant in spec.variants:
        dists = spec.variant_space(variant).searched
        defaults = get_variant(variant).defaults(dataset)
        point: dict[str, Any] = {"variant": variant}
        point.update({f"{variant}/{k}": defaults[k] for k, d in dists.items() if d.contains(defaults[k])})
        outside = [f"{k}={defaults[k]}" for k, d in dists.items() if not d.contains(defaults[k])]
        if outside:
            warn(f"warm start of {variant}: reference default(s) {', '.join(outside)} lie outside the search "
                 f"space, so that first trial samples them instead; widen the space in the spec to start from "
                 f"the reference")
        points.append(point)
    return points


@contextlib.contextmanager
def _quiet_study_creation() -> Iterator[None]:
    """Optuna below WARNING while a search creates its study: its "A new study created" INFO
    line repeats what the search prints itself. Scoped, so Optuna's verbosity is the caller's
    again afterwards."""
    import optuna

    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)


def make_searcher(spec: SearchSpec, *, journal: Path, study_name: str, dataset: str | None = None) -> Any:
    """OptunaSearch with a persisted study (JournalStorage file: ``optuna-dashboard`` opens it)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    points = warm_start_points(spec, dataset=dataset) if spec.warm_start else None
    journal.parent.mkdir(parents=True, exist_ok=True)
    storage = JournalStorage(JournalFileBackend(str(journal)))
    return _PrunedEarlyStopsSearch(
        space=define_by_run(spec), metric=METRIC, mode="max", sampler=make_sampler(spec), storage=storage,
        study_name=study_name, max_epochs=spec.budget.max_epochs, points_to_evaluate=points,
    )
