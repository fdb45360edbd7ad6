"""Trial schedulers and Optuna samplers, keyed by the names a spec uses for them.

A new one is one function here and one entry in its table: the spec accepts the table's keys
and the search builds whatever the entry returns. Factories import Ray or Optuna only when
called, so validating a spec stays fast.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

__all__ = ["SCHEDULERS", "SAMPLERS", "make_scheduler", "make_sampler", "asha_rungs"]


def asha_rungs(grace_epochs: int, reduction_factor: int, max_epochs: int) -> list[int]:
    """The epochs at which ASHA decides (grace_epochs x reduction_factor^i below max_epochs,
    ascending): where a pack keeps its best members, and what bench.search_quality replays."""
    out, epoch = [], grace_epochs
    while epoch < max_epochs:
        out.append(epoch)
        epoch *= reduction_factor
    return out


def _asha(spec: Any) -> Any:
    from ray.tune.schedulers import ASHAScheduler

    # Successive halving over epochs: 1 in budget.reduction_factor trials at each rung go on
    # (rungs at grace_epochs x reduction_factor^i); packs do the same inside (`_pack.py`).
    b = spec.budget
    return ASHAScheduler(time_attr="epoch", max_t=b.max_epochs, grace_period=b.grace_epochs,
                         reduction_factor=b.reduction_factor)


def _fifo(spec: Any) -> Any:
    from ray.tune.schedulers import FIFOScheduler

    return FIFOScheduler()


def _tpe(spec: Any) -> Any:
    import optuna

    # Multivariate + group TPE models the per-variant parameter groups jointly; a third of the
    # budget (3..10 trials) explores at random first.
    startup = min(10, max(3, spec.budget.trials // 3))
    with warnings.catch_warnings():  # multivariate/group are "experimental" in Optuna, and what we want
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=spec.sampler.seed, multivariate=True, group=True,
                                          n_startup_trials=startup, constant_liar=True)


def _random(spec: Any) -> Any:
    import optuna

    return optuna.samplers.RandomSampler(seed=spec.sampler.seed)


def _cmaes(spec: Any) -> Any:
    import optuna

    return optuna.samplers.CmaEsSampler(seed=spec.sampler.seed, warn_independent_sampling=False)


SCHEDULERS: dict[str, Callable[[Any], Any]] = {"asha": _asha, "fifo": _fifo}
"""``scheduler:`` name -> factory taking the `SearchSpec` and returning a Tune trial scheduler."""

SAMPLERS: dict[str, Callable[[Any], Any]] = {"tpe": _tpe, "random": _random, "cmaes": _cmaes}
"""``sampler.name`` -> factory taking the `SearchSpec` and returning an Optuna sampler."""


def make_scheduler(spec: Any) -> Any:
    """The Tune scheduler the spec names."""
    return SCHEDULERS[spec.scheduler](spec)


def make_sampler(spec: Any) -> Any:
    """The Optuna sampler the spec names, seeded by ``sampler.seed``."""
    return SAMPLERS[spec.sampler.name](spec)
