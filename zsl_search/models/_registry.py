"""The variant registry: each GAN variant is one module that calls `register` at import time."""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ._space import Distribution

__all__ = ["CommonParams", "GAN", "Batch", "Variant", "register", "get_variant", "variant_names", "load_plugins"]


@dataclass(frozen=True)
class CommonParams:
    """Hyperparameters every variant has. Defaults are the f-CLSWGAN reference values for a
    dataset without per-dataset settings; variants override them by subclassing."""

    epochs: int = 30
    batch_size: int = 64
    lr_g: float = 1e-4  # TTUR: the generator and critic get separate rates and betas
    lr_d: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lr_decay: str = "none"  # "linear": decay both rates linearly to 0 over the second half
    n_critic: int = 5
    cls_weight: float = 0.01  # weight of the frozen seen-class classifier's NLL in the G loss
    syn_num: int = 300  # synthetic features per unseen class for the final classifier
    nz: int = 0  # noise dim; 0 means "the attribute dimension", as in f-CLSWGAN
    hidden: int = 4096
    cls_pretrain_epochs: int = 50  # frozen classifier for the cls loss
    cls_epochs: int = 25  # final GZSL softmax classifier

    def __post_init__(self) -> None:
        for name in ("epochs", "n_critic", "cls_epochs", "cls_pretrain_epochs"):
            _check(name, getattr(self, name) >= 0, ">= 0")
        for name in ("batch_size", "syn_num", "hidden"):
            _check(name, getattr(self, name) >= 1, ">= 1")
        for name in ("lr_g", "lr_d"):
            _check(name, getattr(self, name) > 0, "> 0")
        for name in ("beta1", "beta2"):
            _check(name, 0 <= getattr(self, name) < 1, "in [0, 1)")
        _check("cls_weight", self.cls_weight >= 0, ">= 0")
        _check("nz", self.nz >= 0, ">= 0 (0 = attribute dimension)")
        _check("lr_decay", self.lr_decay in ("none", "linear"), "one of none, linear")


def _check(name: str, ok: bool, rule: str) -> None:
    if not ok:
        raise ConfigError(f"hyperparameter {name!r} must be {rule}")


@dataclass
class Batch:
    """What a variant's losses see for one step. ``att`` is the seen-class attribute table."""

    real: torch.Tensor  # (B, D)
    y: torch.Tensor  # (B,) local seen labels
    a: torch.Tensor  # (B, A) attributes of y
    att: torch.Tensor  # (n_seen, A)
    rng: torch.Generator
    progress: float  # fraction of training done, in [0, 1]


class GAN(nn.Module):
    """Base class for a variant's networks and losses.

    Subclasses set ``self.generator`` (``forward(z, a) -> x``) and ``self.critic`` and implement
    the two losses. The shared loop (``zsl_search.train``) owns the optimisers, the noise, the
    batches and the frozen-classifier loss; ``critic_parameters`` may include extra modules that
    train with the critic (e.g. a semantic encoder).
    """

    generator: nn.Module
    critic: nn.Module

    def __init__(self, *, feat_dim: int, att_dim: int, n_seen: int, params: CommonParams) -> None:
        super().__init__()
        self.feat_dim, self.att_dim, self.n_seen, self.params = feat_dim, att_dim, n_seen, params
        self.nz = params.nz or att_dim

    def critic_parameters(self) -> list[nn.Parameter]:
        return list(self.critic.parameters())

    def critic_loss(self, batch: Batch, fake: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def generator_loss(self, batch: Batch, fake: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


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
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError
            return int(float(raw)) if isinstance(raw, str) else int(raw)
        if type_name == "float":
            return float(raw)
        return str(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"hyperparameter {key!r}: {raw!r} is not a valid {type_name}") from None


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
    # Every module in this package that is not private is a variant; importing it registers it,
    # so adding a variant means adding one file. Plugin modules (settings.plugin_modules, the
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
        ConfigError: a module cannot be imported (the message names it).
    """
    for name in (*modules, *_entry_point_modules()):
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise ConfigError(f"variant plugin {name!r} cannot be imported ({e}); "
                              "check ZSL_SEARCH_PLUGINS and that the module is on the Python path") from None


def variant_names() -> list[str]:
    """Names of all registered variants, sorted."""
    _load_builtin_variants()
    return sorted(_REGISTRY)


def get_variant(name: str) -> Variant:
    """The registered variant called ``name``. Raises `ConfigError` listing the valid names."""
    _load_builtin_variants()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown variant {name!r}; valid variants: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]
