"""Search specs and the Ray Tune + Optuna search over the GAN variants.

Configuration flows one way: a YAML file -> `load_spec` -> a validated `SearchSpec` whose
per-variant spaces are resolved once (`SearchSpec.variant_space`) -> `SearchSpec.override` for
command-line flags -> `run_search`. Schedulers and samplers are looked up by their spec names in
`SCHEDULERS` and `SAMPLERS`. The spec classes and functions are loaded on first use (they import
torch, through the variants' parameter classes), and so are ``run_search``, ``resume_search`` and
``finalize`` (they import Ray): watching a job or syncing journals imports neither.
"""

from __future__ import annotations

from typing import Any

from ._factories import SAMPLERS, SCHEDULERS
from ._jobs import job_logs, job_status, stop_job, submit_search
from ._journal import sync_journals

__all__ = ["SearchSpec", "VariantSpace", "DatasetSpec", "BudgetSpec", "SamplerSpec", "ResourcesSpec", "RuntimeSpec", "load_spec",
           "parse_spec", "SCHEDULERS", "SAMPLERS",
           "run_search", "resume_search", "SearchResult", "finalize",
           "submit_search", "job_status", "job_logs", "stop_job", "sync_journals"]


_SPEC_NAMES = frozenset({"SearchSpec", "VariantSpace", "DatasetSpec", "BudgetSpec", "SamplerSpec", "ResourcesSpec",
                         "RuntimeSpec", "load_spec", "parse_spec"})


def __getattr__(name: str) -> Any:
    if name in _SPEC_NAMES:
        from . import _spec

        return getattr(_spec, name)
    if name in ("run_search", "resume_search", "SearchResult"):
        from . import _run

        return getattr(_run, name)
    if name == "finalize":
        from ._finalize import finalize

        return finalize
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
