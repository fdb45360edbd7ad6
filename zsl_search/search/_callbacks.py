"""Tune callbacks of a search (imported only when a search runs: they need Ray)."""

from __future__ import annotations

import sys
from typing import Any

from ray.tune import Callback

__all__ = ["ProgressCallback"]


class ProgressCallback(Callback):
    """One line per finished trial; Tune's own tables are off (verbose=0)."""

    def __init__(self, *, total: int, enabled: bool = True) -> None:
        self.total, self.enabled, self.done = total, enabled, 0

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.done += 1
        if not self.enabled:
            return
        r = trial.last_result or {}
        print(f"[{self.done}/{self.total}] trial {trial.trial_id} {r.get('variant', '?'):9s} "
              f"epochs={r.get('epoch', 0):<3} best H={r.get('best_H', 0.0):.4f} "
              f"(U={r.get('best_U', 0.0):.4f} S={r.get('best_S', 0.0):.4f})", file=sys.stderr, flush=True)
