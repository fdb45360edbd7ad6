"""Search-space distributions a variant declares for its hyperparameters.

They are plain frozen dataclasses so a variant file stays declarative and a search spec can
fix, narrow or replace any of them without touching the search code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Float", "Int", "Categorical", "Distribution"]


@dataclass(frozen=True)
class Float:
    """A float in ``[low, high]``, sampled on a log scale when ``log``."""

    low: float
    high: float
    log: bool = False

    def contains(self, value: Any) -> bool:
        return isinstance(value, (int, float)) and self.low <= value <= self.high


@dataclass(frozen=True)
class Int:
    """An integer in ``[low, high]`` (inclusive), on a log scale when ``log``."""

    low: int
    high: int
    log: bool = False

    def contains(self, value: Any) -> bool:
        return isinstance(value, int) and self.low <= value <= self.high


@dataclass(frozen=True)
class Categorical:
    """One of ``choices`` (ints, floats, strings or bools)."""

    choices: tuple[Any, ...]

    def contains(self, value: Any) -> bool:
        return value in self.choices


Distribution = Float | Int | Categorical
