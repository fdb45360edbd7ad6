"""GAN variants: a registry of feature generators, one module per variant.

- `zsl_search.models.base` is what a variant is built from: the contract a variant implements
  (`GAN`: networks and two losses; its docstring says when the training loop calls what),
  its hyperparameters (`CommonParams`), the shared networks and losses, two GANs ready to
  subclass (`ConcatGAN`: the f-CLSWGAN networks; `WGANGP`: those with WGAN-GP losses), the
  shared search spaces (`COMMON_SPACE`, `WGAN_SPACE`) and small-data defaults.
- Every other public module here (``fclswgan``, ``zswgan``, ``filmwgan``, ``cgan``,
  ``cosgan``) is one variant: a params dataclass, a `GAN` subclass and one `register` call
  with its per-dataset defaults and search space. Variant modules import from `base` only,
  never from each other.

To add a variant, add one such file here, or keep it anywhere importable and name its module
in ``ZSL_SEARCH_PLUGINS`` (or a ``zsl_search.variants`` entry point): importing it registers
it, and `variant_names`, the CLI, the search and the contract tests pick it up.

Example:
    >>> from zsl_search.models import get_variant
    >>> v = get_variant("fclswgan")
    >>> params = v.make_params({"lr_g": "2e-4"}, dataset="CUB")
"""

from ._registry import (Variant, check_defaults_name, defaults_line, defaults_names, get_variant, load_plugins, register,
                        variant_names)
from ._space import Categorical, Distribution, Float, Int
from .base import GAN, WGANGP, Batch, CommonParams, ConcatGAN, WGANParams

__all__ = [
    "GAN",
    "Batch",
    "CommonParams",
    "ConcatGAN",
    "WGANGP",
    "WGANParams",
    "Variant",
    "get_variant",
    "register",
    "variant_names",
    "defaults_names",
    "defaults_line",
    "check_defaults_name",
    "load_plugins",
    "Categorical",
    "Distribution",
    "Float",
    "Int",
]
