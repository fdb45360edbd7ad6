"""zsl-search: distributed, honest hyperparameter search for GAN-based generalized zero-shot learning.

Subpackages, one concept each: ``data`` (xlsa17 loading, protocols, synthetic data), ``models``
(the GAN variant registry), ``train`` (the shared loop), ``eval`` (GZSL metrics), ``store``
(the per-node feature store), ``search`` (specs and Ray Tune + Optuna), ``leaderboard``.
"""

__version__ = "0.1.0"

from .errors import ConfigError, DataError, SpecError, StorageError, ZslSearchError

__all__ = ["__version__", "ZslSearchError", "DataError", "ConfigError", "SpecError", "StorageError"]
