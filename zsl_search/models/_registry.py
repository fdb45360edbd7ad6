"""The variant registry: each GAN variant is one module that calls `register` at import time."""

from __future__ import annotations

import difflib
import functools
import importlib
import math
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ._space import Distribution

if TYPE_CHECKING:
    from .base import GAN, CommonParams

__all__ = ["Variant", "register", "get_variant", "variant_names", "load_plugins"]


@dataclass(frozen=True)
class Variant:
    """A registered variant: its hyperparameters, per-dataset reference defaults and search space."""

    name: str
    description: str
    params_cls: type[CommonParams]
    build: Callable[..., GAN]
    dataset_defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    space: Mapping[str, Distribution] = field(default_factory=dict)

    def param_names(self) -> list[str]:
        return [f.name for f in fields(self.params_cls)]

    def defaults(self, dataset: str | None = None) -> dict[str, Any]:
        """Reference defaults, with the per-dataset values for ``dataset`` applied."""
        values = {f.name: f.default for f in fields(self.params_cls)}
        values.update(self.dataset_defaults.get((dataset or "").upper(), {}))
        return values

    def defaults_source(self, dataset: str | None) -> str:
        """Whose values `defaults` uses: ``dataset`` (upper-cased) when this variant has
        per-dataset defaults for it, else ``"reference"``; for telling the user."""
        key = (dataset or "").upper()
        return key if key in self.dataset_defaults else "reference"

    def make_params(self, overrides: Mapping[str, Any] | None = None, *, dataset: str | None = None) -> CommonParams:
        """Defaults for ``dataset`` updated with ``overrides``; values are coerced to the field
        types (so ``"1e-4"`` from the command line works). Raises `ConfigError` on unknown names."""
        values = self.defaults(dataset)
        types = {f.name: f.type for f in fields(self.params_cls)}
        for key, raw in (overrides or {}).items():
            if key not in types:
                raise ConfigError(
                    f"unknown hyperparameter {key!r} for variant {self.name!r}; valid: {', '.join(sorted(types))}"
                )
            values[key] = _coerce(key, raw, types[key])
        return self.params_cls(**values)


def _coerce(key: str, raw: Any, type_name: Any) -> Any:
    type_name = getattr(type_name, "__name__", type_name)
    try:
        if type_name == "bool":
            if isinstance(raw, bool):
                return raw
            if str(raw).lower() in ("1", "true", "yes", "on"):
                return True
            if str(raw).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if type_name == "int":
            return _integral(raw)
        if type_name == "float":
            value = float(raw)
            if not math.isfinite(value):  # inf trains to NaN losses and a silent H of 0; nan likewise
                raise ConfigError(f"hyperparameter {key!r}: {raw!r} is not a finite number; give a finite float, "
                                  "e.g. 1e-4")
            return value
        return str(raw)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"hyperparameter {key!r}: {raw!r} is not a valid {type_name}") from None


def _integral(raw: Any) -> int:
    """``raw`` as an int: an int, an integral float (``3.0``) or a string of either (``"3"``,
    ``"1e3"``); raises ValueError for anything with a fraction (``"1.5"`` would silently be 1)."""
    if isinstance(raw, str):
        try:
            return int(raw)
        except ValueError:
            raw = float(raw)
    if isinstance(raw, float) and not raw.is_integer():  # also inf and nan
        raise ValueError
    return int(raw)


_REGISTRY: dict[str, Variant] = {}


def register(variant: Variant) -> Variant:
    """Add ``variant`` to the registry (called once by each variant module at import)."""
    if variant.name in _REGISTRY and _REGISTRY[variant.name] is not variant:
        raise ValueError(f"variant {variant.name!r} is registered twice")
    unknown = set(variant.space) - set(variant.param_names())
    if unknown:
        raise ValueError(f"variant {variant.name!r}: search space names unknown parameters {sorted(unknown)}")
    _REGISTRY[variant.name] = variant
    return variant


def _load_builtin_variants() -> None:
    # Every module in this package that is not private is imported: a variant module registers
    # itself (`base`, the one public module that is not a variant, registers nothing), so adding
    # a variant means adding one file. Plugin modules (settings.plugin_modules, the
    # zsl_search.variants entry points) register theirs the same way.
    from .. import models, settings

    for info in pkgutil.iter_modules(models.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{models.__name__}.{info.name}")
    load_plugins(settings.plugin_modules())


@functools.cache
def _entry_point_modules() -> tuple[str, ...]:
    from importlib.metadata import entry_points

    return tuple(ep.value for ep in entry_points(group="zsl_search.variants"))


def load_plugins(modules: list[str] | tuple[str, ...]) -> None:
    """Import variant modules that live outside this package: ``modules`` and every module of
    the ``zsl_search.variants`` entry-point group (importing a module registers its variants).

    Raises:
        ConfigError: a module cannot be found or raises while importing (the message names it,
            and the exception's type and first line).
    """
    for name in (*modules, *_entry_point_modules()):
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise ConfigError(f"variant plugin {name!r} cannot be imported ({e}); "
                              "check ZSL_SEARCH_PLUGINS and that the module is on the Python path") from None
        except SystemExit as e:  # it would end every command, silently, with its code
            raise ConfigError(f"variant plugin {name!r} called sys.exit({e.code!r}) while importing; a plugin module "
                              "must only define and register variants: fix it, or drop it from ZSL_SEARCH_PLUGINS") from None
        except Exception as e:  # the plugin's own code failed (a bug or a SyntaxError in it): not ours to trace
            first = next(iter(str(e).splitlines()), "")
            raise ConfigError(f"variant plugin {name!r} failed while importing ({type(e).__name__}: {first}); "
                              f"fix the module, or run `python -c \"import {name}\"` to see the full traceback, "
                              "or drop it from ZSL_SEARCH_PLUGINS") from None


def variant_names() -> list[str]:
    """Names of all registered variants, sorted."""
    _load_builtin_variants()
    return sorted(_REGISTRY)


def defaults_names() -> list[str]:
    """Names of the per-dataset default sets some registered variant has (e.g. ``CUB``, ``PF60``),
    sorted: what ``dataset.defaults`` and ``--defaults`` may name, besides ``reference``."""
    _load_builtin_variants()
    return sorted({key for v in _REGISTRY.values() for key in v.dataset_defaults})


def defaults_line(dataset: str | None, variants: list[str] | None = None) -> str:
    """Which hyperparameter defaults each of ``variants`` (default: every registered one) starts
    from on ``dataset``'s defaults, grouped, for telling the user: ``defaults: PF60 (fclswgan,
    cgan), reference (zswgan, filmwgan, cosgan)``."""
    used: dict[str, list[str]] = {}
    for name in variant_names() if variants is None else variants:
        used.setdefault(get_variant(name).defaults_source(dataset), []).append(name)
    return "defaults: " + ", ".join(f"{k} ({', '.join(v)})" for k, v in used.items())


def check_defaults_name(name: str | None, *, where: str) -> None:
    """Raise `ConfigError` naming ``where`` when ``name`` is set but no variant has defaults by it
    (a typo would otherwise train silently with the reference defaults). A benchmark with no
    defaults of its own (APY) is no typo: it gets the reference ones, as its data would."""
    from ..data._synth import KNOWN_DATASETS  # the benchmarks' shapes; data imports models lazily too

    if name is None or name.upper() in ("REFERENCE", *KNOWN_DATASETS) or name.upper() in defaults_names():
        return
    bare = sorted(set(KNOWN_DATASETS) - set(defaults_names()))  # benchmarks that get them
    close = difflib.get_close_matches(name.upper(), [*defaults_names(), *bare], n=1)
    guess = f" (did you mean {close[0]}?)" if close else ""
    raise ConfigError(f"{where}: no variant has defaults called {name!r}{guess}; use one of "
                      f"{', '.join(defaults_names())}, or 'reference' (the f-CLSWGAN settings, which a dataset "
                      f"with no defaults of its own gets, as {' and '.join(bare) or 'any other'} does)")


def get_variant(name: str) -> Variant:
    """The registered variant called ``name``. Raises `ConfigError` listing the valid names."""
    _load_builtin_variants()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown variant {name!r}; valid variants: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]
