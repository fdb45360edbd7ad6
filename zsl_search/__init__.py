"""zsl-search: distributed, honest hyperparameter search for GAN-based generalized zero-shot learning.

Subpackages, one concept each: ``data`` (xlsa17 loading, protocols, synthetic data), ``models``
(``base``: what a variant is built from; the registry; one module per variant), ``train`` (the
shared loop, and fused trial arrays), ``eval`` (GZSL metrics), ``store`` (the per-node feature
store), ``search`` (specs and Ray Tune + Optuna), ``leaderboard``, ``storage`` (the `Storage`
contract, backends by URI scheme) and ``cli``; ``settings`` reads every environment variable,
``errors`` holds every exception.
"""

__version__ = "0.1.0"

from .errors import ConfigError, DataError, SpecError, StorageError, ZslSearchError

__all__ = ["__version__", "ZslSearchError", "DataError", "ConfigError", "SpecError", "StorageError"]
