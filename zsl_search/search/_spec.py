"""Search specs: YAML -> validated `SearchSpec`, every problem reported at once with its field path.

Example spec (see ``experiments/``):

    name: quickstart
    dataset: {path: demo}
    variants: [fclswgan, cgan]
    space:
      all: {hidden: 256}                      # fix a value for every variant
      fclswgan:
        lr_g: {low: 1.0e-4, high: 1.0e-3, log: true}   # narrow a range
        syn_num: {choices: [100, 300]}        # change the distribution
    budget: {trials: 8, max_epochs: 6, grace_epochs: 2}
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Hashable
from pathlib import Path
from typing import Any, Literal, NamedTuple

import yaml
from pydantic import (BaseModel, ConfigDict, Field, PrivateAttr, StrictInt, ValidationError, field_validator,
                      model_validator)

from .._names import SEARCH_NAME, SEARCH_NAME_RULE
from .._seed import MAX_SEED
from ..errors import ConfigError, SpecError, StorageError
from ..models import Categorical, Distribution, Float, Int, check_defaults_name, get_variant, variant_names
from ..storage import check_uri
from ._factories import SAMPLERS, SCHEDULERS

__all__ = ["SearchSpec", "VariantSpace", "DatasetSpec", "BudgetSpec", "SamplerSpec", "ResourcesSpec", "RuntimeSpec", "load_spec", "parse_spec"]

ALL = "all"  # the `space` key whose entries apply to every variant


class VariantSpace(NamedTuple):
    """A variant's search space after a spec's overrides."""

    searched: dict[str, Distribution]  # sampled by Optuna, in the variant's declaration order
    fixed: dict[str, Any]  # fixed by the spec (absent from ``searched``)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetSpec(_Strict):
    path: str = Field(description="xlsa17 directory, s3://bucket/prefix, or 'demo' for the built-in synthetic set")
    semantics: str = "att_splits.mat"
    preprocess: Literal["minmax", "l2", "none"] = "minmax"
    defaults: str | None = Field(default=None, description="which per-dataset defaults apply (e.g. PF60, CUB, DEMO); "
                                 "default: the dataset's own identity (zsl-dataset.json) or its directory name")

    @model_validator(mode="before")
    @classmethod
    def _path_alone(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value  # `dataset: demo`


class BudgetSpec(_Strict):
    trials: StrictInt = Field(ge=1)
    max_epochs: StrictInt = Field(ge=1)
    grace_epochs: StrictInt = Field(default=1, ge=1)
    # ASHA keeps 1 in reduction_factor trials at each rung (grace_epochs x reduction_factor^i)
    reduction_factor: StrictInt = Field(default=3, ge=2)
    time_budget_s: float | None = Field(default=None, gt=0)


class SamplerSpec(_Strict):
    name: str = "tpe"  # a key of SAMPLERS
    seed: StrictInt = Field(default=0, ge=0, le=MAX_SEED)

    @model_validator(mode="before")
    @classmethod
    def _name_alone(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value  # `sampler: random`, as `scheduler: fifo`

    @field_validator("name")
    @classmethod
    def _known_sampler(cls, name: str) -> str:
        return _one_of(name, SAMPLERS)


class ResourcesSpec(_Strict):
    cpu: float = Field(default=1.0, gt=0)
    gpu: float = Field(default=0.0, ge=0, le=8)

    @field_validator("gpu")
    @classmethod
    def _whole_above_one(cls, gpu: float) -> float:
        # Ray shares a GPU between trials in fractions of one, never more than one in fractions.
        if gpu > 1 and not float(gpu).is_integer():
            raise ValueError("a fraction of one GPU (e.g. 0.5) or whole GPUs (1, 2, ...)")
        return gpu


class RuntimeSpec(_Strict):
    """How trials run, not what they compute: the same spec and seed give the same rows either way
    on the CPU (a GPU trial's shared classifier is the CPU-trained one, equal to rounding).
    ``bench/quickstart.py --baseline`` turns them off to measure what they save."""

    reuse_workers: bool = True  # one worker process runs trial after trial: no re-import per trial
    shared_classifier: bool = True  # the frozen classifier is trained once per node, seed and length
    reuse_memory: bool = True  # freed tensor memory stays in the worker for the next step (`_memory`)
    # The ZSL classifier and retrieval score only the epochs that become a trial's best H (the
    # leaderboard reports them for that epoch alone); per-epoch curves show them there only.
    lazy_zsl: bool = True


class SearchSpec(_Strict):
    """A validated search spec. Build with `load_spec` / `parse_spec`, which collect all errors."""

    name: str = Field(pattern=SEARCH_NAME.pattern)
    dataset: DatasetSpec
    protocol: Literal["validation", "test"] = "validation"
    # Selecting on test (the reference codebases' flaw) only to reproduce published numbers:
    # every row is marked and `finalize` refuses such a search.
    select_on_test: bool = False
    # Validation class folds: each trial trains one GAN per fold (k times the cost) and is
    # scored by the mean H, so a few validation classes cannot decide the ranking alone.
    folds: StrictInt = Field(default=1, ge=1, le=10)
    variants: list[str] = Field(min_length=1)
    space: dict[str, dict[str, Any]] = Field(default_factory=dict)
    budget: BudgetSpec
    scheduler: str = "asha"  # a key of SCHEDULERS
    sampler: SamplerSpec = SamplerSpec()
    resources: ResourcesSpec = ResourcesSpec()
    runtime: RuntimeSpec = RuntimeSpec()
    storage: str = "./zsl-results"
    max_concurrent: StrictInt = Field(default=2, ge=1)  # Tune trials at once (a pack is one)
    # Up to `pack` trials of one variant and network shape train as ONE fused model (one Tune
    # trial, one Optuna trial and leaderboard row per member); 1 = one model per trial.
    pack: StrictInt = Field(default=1, ge=1, le=64)
    seed: StrictInt = Field(default=0, ge=0, le=MAX_SEED)
    device: str = "auto"
    eval_every: StrictInt = Field(default=1, ge=1)
    warm_start: bool = True  # first trial of each variant = its reference defaults

    _spaces: dict[str, VariantSpace] = PrivateAttr(default_factory=dict)

    @field_validator("scheduler")
    @classmethod
    def _known_scheduler(cls, name: str) -> str:
        return _one_of(name, SCHEDULERS)

    def variant_space(self, variant: str) -> VariantSpace:
        """``(searched, fixed)`` for ``variant``: its declared space with the spec's ``all`` then
        per-variant entries applied. Resolved once per spec (`parse_spec` does it while
        validating) and shared by the sampler, warm start, every trial and every row."""
        if variant not in self._spaces:
            self._spaces[variant] = _resolve(variant, self._entries(variant), problems=None)
        return self._spaces[variant]

    def override(self, changes: dict[str, Any], *, source: str = "command line") -> SearchSpec:
        """A copy with ``changes`` applied and validated exactly like a spec file: keys are field
        paths (``"storage"``, ``"budget.trials"``, ``"dataset.defaults"``), ``None`` values are
        skipped. The one way command-line flags and benchmarks change a spec.

        Raises:
            SpecError: the changed spec is invalid (every problem, with its field path).
        """
        if all(value is None for value in changes.values()):
            return self
        data = self.model_dump(mode="json")
        for path, value in changes.items():
            if value is None:
                continue
            *parents, leaf = path.split(".")
            node = data
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        return parse_spec(data, source=source)

    def _entries(self, variant: str) -> dict[str, tuple[Any, str]]:
        """The spec's entries for ``variant`` (its own over ``all``), each with its field path."""
        entries = {k: (v, f"space.{ALL}.") for k, v in self.space.get(ALL, {}).items()}
        entries.update({k: (v, f"space.{variant}.") for k, v in self.space.get(variant, {}).items()})
        return entries


def _resolve(variant: str, entries: dict[str, tuple[Any, str]], problems: list[str] | None) -> VariantSpace:
    v = get_variant(variant)
    types = {name: type_ for name, type_ in zip(v.param_names(), _field_types(v))}
    dists: dict[str, Distribution] = dict(v.space)
    fixed: dict[str, Any] = {}

    def bad(where: str, field: str, msg: str) -> None:
        line = f"{where}{field}".rstrip(".") + f": {msg}" + (f" (for {variant})" if where.startswith(f"space.{ALL}") else "")
        if problems is None:
            raise SpecError([line])
        problems.append(line)

    for name, (entry, where) in entries.items():
        if name not in types:
            bad(where, name, f"unknown hyperparameter for {variant}; valid: {', '.join(sorted(types))}")
            continue
        kind = types[name]
        if isinstance(entry, dict):
            keys = set(entry)
            if keys == {"choices"}:
                choices = entry["choices"]
                if not isinstance(choices, list) or not choices:
                    bad(where, name, "choices must be a non-empty list")
                    continue
                try:  # each choice must be a value of the hyperparameter's type, as a fixed value is
                    for choice in choices:
                        v.make_params({name: choice})
                except ConfigError as e:
                    bad(where, name, f"choices: {e}")
                    continue
                dists[name] = Categorical(tuple(choices))
            elif {"low", "high"} <= keys <= {"low", "high", "log"}:
                low, high, log = entry["low"], entry["high"], entry.get("log", False)
                if not isinstance(log, bool):
                    bad(where, name, f"log must be true or false (got {log!r})")
                    continue
                if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (low, high)):
                    bad(where, name, "low and high must be numbers")
                    continue
                if not all(math.isfinite(x) for x in (low, high)):
                    bad(where, name, f"low and high must be finite numbers (got {low}, {high})")
                    continue
                if kind not in ("int", "float"):
                    bad(where, name, f"a range needs a numeric hyperparameter; {name} is {kind}, use choices")
                    continue
                if low > high:
                    bad(where, name, f"low ({low}) > high ({high})")
                    continue
                if low == high:
                    bad(where, name, f"empty range: low == high == {low}; fix the value instead ({name}: {low})")
                    continue
                if log and low <= 0:
                    bad(where, name, "a log range needs low > 0")
                    continue
                if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
                    bad(where, name, "an integer range needs integer bounds")
                    continue
                try:  # both ends are values a trial may get, so each must be valid, as a fixed value is
                    for end in (low, high):
                        v.make_params({name: int(end) if kind == "int" else float(end)})
                except ConfigError as e:
                    bad(where, name, f"range {low}..{high}: {e}")
                    continue
                dists[name] = Int(int(low), int(high), log) if kind == "int" else Float(float(low), float(high), log)
            else:
                bad(where, name, "expected a value, {choices: [...]} or {low: .., high: .., log: bool}")
                continue
        else:
            fixed[name] = entry
            dists.pop(name, None)
    # Fixed values must be valid hyperparameters: build the params once to find out.
    if fixed:
        try:
            v.make_params(fixed)
        except ConfigError as e:  # names the parameter
            places = {w for name, (_, w) in entries.items() if name in fixed}
            bad(places.pop() if len(places) == 1 else "space", "", str(e))
    return VariantSpace(dists, fixed)


def _field_types(variant: Any) -> list[str]:
    from dataclasses import fields

    return [getattr(f.type, "__name__", f.type) for f in fields(variant.params_cls)]


def parse_spec(data: Any, *, source: str = "spec") -> SearchSpec:
    """Validate a parsed YAML mapping. Raises `SpecError` listing every problem with its path."""
    if not isinstance(data, dict):
        raise SpecError(["top level must be a mapping of fields (name, dataset, variants, budget, ...)"], source)
    try:
        spec = SearchSpec.model_validate(data)
    except ValidationError as e:
        problems = [_pydantic_problem(err) for err in e.errors()]
        raise SpecError(problems + _problems_beside(data, {err["loc"][0] for err in e.errors() if err["loc"]}),
                        source) from None
    problems = _problems(spec)
    if problems:
        raise SpecError(_per_variant_once(problems, spec.variants), source)
    return spec


# Stand-ins for required fields that failed, so the checks of the others still run.
_STAND_INS: dict[str, Any] = {"name": "x", "dataset": {"path": "demo"}, "variants": ["fclswgan"],
                              "budget": {"trials": 1, "max_epochs": 1}}


def _problems_beside(data: dict[str, Any], failed: set[Any]) -> list[str]:
    """The problems `_problems` finds in the fields that did pass the schema, so one run of
    `search validate` lists them all (not the variants and space only once the budget is fixed).
    Problems of the failed fields' stand-ins are not the user's and are dropped."""
    rest = {k: v for k, v in data.items() if k not in failed}
    rest.update({k: v for k, v in _STAND_INS.items() if k not in rest})
    try:
        spec = SearchSpec.model_validate(rest)
    except ValidationError:
        return []
    return [p for p in _per_variant_once(_problems(spec), spec.variants)
            if not any(p.startswith(f"{k}.") or p.startswith(f"{k}:") or p.startswith(f"{k}[") for k in failed)
            and not ("variants" in failed and p.startswith(("space.", "sampler.")))]  # about the stand-in


def _problems(spec: SearchSpec) -> list[str]:
    """What the schema cannot see: unknown variants, spaces, protocol and budget rules."""
    problems: list[str] = []
    known = variant_names()
    for i, name in enumerate(spec.variants):
        if name not in known:
            problems.append(f"variants[{i}]: unknown variant {name!r}; valid: {', '.join(known)}")
    if len(set(spec.variants)) != len(spec.variants):
        problems.append("variants: listed twice")
    for key in spec.space:
        if key != ALL and key not in spec.variants:
            problems.append(f"space.{key}: not one of the spec's variants ({', '.join(spec.variants)}) or '{ALL}'")
    usable = [v for v in spec.variants if v in known]
    names = {v: set(get_variant(v).param_names()) for v in usable}
    # A name under `all` that no variant has: one line for it, not one per variant.
    nowhere = [k for k in spec.space.get(ALL, {}) if usable and not any(k in n for n in names.values())]
    for key in nowhere:
        close = difflib.get_close_matches(key, sorted(set().union(*names.values())), n=2)
        problems.append(f"space.{ALL}.{key}: no variant of this search has such a hyperparameter"
                        f"{'; did you mean ' + ' or '.join(close) + '?' if close else ''} "
                        "(`zsl-search variants NAME` lists a variant's)")
    for variant in usable:
        before = len(problems)
        entries = {k: e for k, e in spec._entries(variant).items() if not (k in nowhere and e[1] == f"space.{ALL}.")}
        space = _resolve(variant, entries, problems)
        if len(problems) == before:
            spec._spaces[variant] = space  # resolved once, here
    try:
        check_defaults_name(spec.dataset.defaults, where="dataset.defaults")
    except ConfigError as e:
        problems.append(str(e))
    if spec.protocol == "test" and not spec.select_on_test:
        problems.append("protocol: 'test' chooses hyperparameters, epochs and classifier epochs on the TEST split; "
                        "use protocol: validation (then `zsl-search finalize`), or set select_on_test: true "
                        "to reproduce published test-selected numbers")
    if spec.folds > 1 and spec.protocol != "validation":
        problems.append("folds: class folds belong to protocol: validation")
    if spec.select_on_test and spec.protocol != "test":
        problems.append("select_on_test: true needs protocol: test")
    if spec.budget.grace_epochs > spec.budget.max_epochs:
        problems.append(f"budget.grace_epochs: {spec.budget.grace_epochs} > budget.max_epochs ({spec.budget.max_epochs})")
    if spec.sampler.name == "cmaes":
        for variant in (v for v in spec.variants if v in spec._spaces):
            dists = spec._spaces[variant].searched
            if len(spec.variants) > 1:
                problems.append("sampler.name: cmaes needs one variant with numeric dimensions only; use tpe")
                break
            if any(isinstance(d, Categorical) for d in dists.values()):
                problems.append(f"sampler.name: cmaes cannot search categorical dimensions of {variant}; use tpe")
    try:
        check_uri(spec.storage)
    except StorageError as e:
        problems.append(f"storage: {e}")
    return problems


def _per_variant_once(problems: list[str], variants: list[str]) -> list[str]:
    """An ``all`` entry's problem is found once per variant: say it once, naming them all
    (``... (for fclswgan, cgan)``), in the order first found."""
    merged: dict[str, list[str]] = {}
    for line in problems:
        head, sep, variant = line.rpartition(" (for ")
        key, name = (head, variant[:-1]) if sep and variant[:-1] in variants else (line, "")
        names = merged.setdefault(key, [])
        if name and name not in names:
            names.append(name)
    return [f"{key} (for {', '.join(names)})" if names else key for key, names in merged.items()]


def _one_of(value: str, table: dict[str, Any]) -> str:
    if value not in table:
        names = [repr(k) for k in table]
        raise ValueError(f"Input should be {', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else
                         f"Input should be {names[0]}")
    return value


def _pydantic_problem(err: dict[str, Any]) -> str:
    path = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in err["loc"]).replace(".[", "[")
    if err["type"] == "extra_forbidden":
        return f"{path}: unknown field"
    if err["type"] == "missing":
        return f"{path}: required field is missing"
    if err["type"] == "string_pattern_mismatch" and path == "name":
        return f"name: {err['input']!r} is not a search name: use {SEARCH_NAME_RULE} (it names a folder and an S3 prefix)"
    if err["type"] == "model_type":  # "a valid dictionary or instance of SamplerSpec": our class names mean nothing
        return f"{path}: expected a mapping of its fields (got {err['input']!r})"
    return f"{path}: {err['msg'].removeprefix('Value error, ')}" + (f" (got {err['input']!r})" if "input" in err and not isinstance(err["input"], dict) else "")


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping: plain YAML keeps the last
    one silently, so a second ``name:`` or ``budget:`` further down would win unseen."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults`: the mapping's own keys may override what it merges
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue  # the base loader says "found unhashable key"
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice; keep one",
                    key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# YAML 1.1, PyYAML's dialect, reads `1e-4` and `1.0e4` as strings (its floats need a dot and
# a signed exponent); YAML 1.2 and every user read them as numbers, as the spec does.
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def _yaml_problem(e: Exception) -> str:
    # A marked error's first line is its context ("while parsing a block mapping"); what is
    # wrong, and where, is its problem and mark.
    if isinstance(e, yaml.MarkedYAMLError) and e.problem:
        mark = e.problem_mark
        return e.problem + (f" (line {mark.line + 1}, column {mark.column + 1})" if mark else "")
    return str(e).splitlines()[0]


def load_spec(path: str | Path) -> SearchSpec:
    """Read and validate a YAML spec file (change it afterwards with `SearchSpec.override`)."""
    path = Path(path)
    try:
        data = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except FileNotFoundError:
        raise SpecError(["file not found"], str(path)) from None
    except IsADirectoryError:
        raise SpecError(["a directory, not a spec file; name the YAML file in it (experiments/*.yaml, say)"],
                        str(path)) from None
    except (OSError, yaml.YAMLError) as e:
        raise SpecError([f"cannot read YAML: {_yaml_problem(e)}"], str(path)) from None
    except UnicodeDecodeError:
        raise SpecError(["not a text file (not UTF-8); a spec is a YAML file"], str(path)) from None
    return parse_spec(data, source=str(path))
