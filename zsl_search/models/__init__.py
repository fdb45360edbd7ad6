"""GAN variants: a registry of feature generators, one module per variant.

Example:
    >>> from zsl_search.models import get_variant
    >>> v = get_variant("fclswgan")
    >>> params = v.make_params({"lr_g": "2e-4"}, dataset="CUB")
"""

from ._registry import GAN, Batch, CommonParams, Variant, get_variant, load_plugins, register, variant_names
from ._space import Categorical, Distribution, Float, Int

__all__ = [
    "GAN",
    "Batch",
    "CommonParams",
    "Variant",
    "get_variant",
    "register",
    "variant_names",
    "load_plugins",
    "Categorical",
    "Distribution",
    "Float",
    "Int",
]
