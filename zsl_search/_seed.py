"""The one seed range every command and spec accepts."""

from __future__ import annotations

from .errors import ConfigError

MAX_SEED = 2**32 - 1  # numpy's legacy, Optuna's and PyTorch's seeds: 32-bit


def check_seed(seed: int, *, flag: str = "--seed") -> None:
    """Raise `ConfigError` naming ``flag`` unless ``seed`` is an integer in 0 .. 2**32 - 1
    (numpy refuses a negative seed with a traceback deep inside the generator)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"{flag} {seed!r}: must be an integer from 0 to {MAX_SEED} (2**32 - 1); pass another seed")
