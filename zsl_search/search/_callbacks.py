"""Tune callbacks of a search (imported only when a search runs: they need Ray)."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from typing import Any

from ray.tune import Callback

__all__ = ["ProgressCallback", "LeaderboardCallback", "trial_row"]


def trial_row(*, trial_id: str, config: dict[str, Any], result: dict[str, Any], error: bool, spec: Any,
              dataset: str) -> dict[str, Any]:
    """One leaderboard row from a trial's config and last result. H/U/S are those of the trial's
    best epoch, which is chosen on the protocol's own (validation) split."""
    variant = config.get("variant", result.get("variant", "?"))
    epoch = int(result.get("epoch", 0))
    status = "ERROR" if error else ("COMPLETE" if epoch >= spec.budget.max_epochs else "EARLY_STOPPED")
    _, fixed = spec.variant_space(variant)
    return {
        "trial_id": trial_id, "search": spec.name, "dataset": dataset, "protocol": spec.protocol,
        "variant": variant, "status": status, "epochs": epoch, "best_epoch": int(result.get("best_epoch", 0)),
        "H": float(result.get("best_H", 0.0)), "U": float(result.get("best_U", 0.0)),
        "S": float(result.get("best_S", 0.0)), "zsl_acc": float(result.get("best_zsl_acc", 0.0)),
        "retrieval_map": float(result.get("best_retrieval_map", 0.0)),
        "seconds": float(result.get("time_total_s", 0.0)), "seed": spec.seed, "node_id": result.get("node_id"),
        "params": {**fixed, **config.get(variant, {})}, "created_at": datetime.now(timezone.utc),
    }


class LeaderboardCallback(Callback):
    """Writes the search's leaderboard each time a trial finishes (not only at the end)."""

    def __init__(self, *, spec: Any, dataset: str, start_order: int = 0) -> None:
        self.spec, self.dataset, self.order = spec, dataset, start_order
        self.written: set[str] = set()
        self._writer: Any = None

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks with the experiment; the writer (a lock, a cache) is rebuilt.
        return {**self.__dict__, "_writer": None}

    @property
    def writer(self) -> Any:
        from ..leaderboard import LeaderboardWriter

        if self._writer is None:
            self._writer = LeaderboardWriter(self.spec.storage, self.spec.name)
        return self._writer

    def next_row(self, *, trial_id: str, config: dict[str, Any], result: dict[str, Any], error: bool) -> dict[str, Any]:
        """The leaderboard row of a finished trial, numbered in completion order."""
        self.order += 1
        self.written.add(trial_id)
        row = trial_row(trial_id=trial_id, config=config, result=result, error=error, spec=self.spec,
                        dataset=self.dataset)
        return {**row, "completed_order": self.order}

    def _write(self, trial: Any, error: bool) -> None:
        self.writer.write([self.next_row(trial_id=trial.trial_id, config=trial.config,
                                         result=trial.last_result or {}, error=error)])

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._write(trial, error=False)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._write(trial, error=True)


class ProgressCallback(Callback):
    """One line per finished trial; Tune's own tables are off."""

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

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.done += 1
        if self.enabled:
            print(f"[{self.done}/{self.total}] trial {trial.trial_id} failed; see its error.txt in the results",
                  file=sys.stderr, flush=True)
