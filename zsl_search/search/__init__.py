"""Search specs and the Ray Tune + Optuna search over the GAN variants.

Configuration flows one way: a YAML file -> `load_spec` -> a validated `SearchSpec` whose
per-variant spaces are resolved once (`SearchSpec.variant_space`) -> `SearchSpec.override` for
command-line flags -> `run_search`. Schedulers and samplers are looked up by their spec names in
`SCHEDULERS` and `SAMPLERS`. ``run_search``, ``resume_search`` and ``finalize`` are loaded on
first use (they import Ray), so validating a spec stays fast.
"""

from __future__ import annotations

from typing import Any

from ._factories import SAMPLERS, SCHEDULERS
from ._jobs import job_logs, job_status, stop_job, submit_search
from ._journal import sync_journals
from ._spec import (BudgetSpec, DatasetSpec, ResourcesSpec, RuntimeSpec, SamplerSpec, SearchSpec, VariantSpace,
                    load_spec, parse_spec)

__all__ = ["SearchSpec", "VariantSpace", "DatasetSpec", "BudgetSpec", "SamplerSpec", "ResourcesSpec", "RuntimeSpec", "load_spec",
           "parse_spec", "SCHEDULERS", "SAMPLERS",
           "run_search", "resume_search", "SearchResult", "finalize",
           "submit_search", "job_status", "job_logs", "stop_job", "sync_journals"]


def __getattr__(name: str) -> Any:
    if name in ("run_search", "resume_search", "SearchResult"):
        from . import _run

        return getattr(_run, name)
    if name == "finalize":
        from ._finalize import finalize

        return finalize
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
