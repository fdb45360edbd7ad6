"""For the search tests: what they read back (Tune's own result logs and Optuna's journal, not
our code), and a signal to a search running in the test process."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

# Networks and classifiers small enough for a test search to take seconds.
SMALL = {"hidden": 32, "syn_num": 20, "cls_epochs": 2, "cls_pretrain_epochs": 2}


def reports(experiment: Path) -> dict[str, list[int]]:
    """Every trial's reported epochs, from Tune's own result.json files (not from our code)."""
    out = {}
    for path in experiment.glob("*/result.json"):
        epochs = [json.loads(line)["epoch"] for line in path.read_text().splitlines() if line.strip()]
        out[path.parent.name.split("-")[0]] = epochs
    return out


def optuna_states(storage: Path, name: str) -> list[str]:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    journal = JournalStorage(JournalFileBackend(str(storage / name / "optuna.journal")))
    return [t.state.name for t in optuna.load_study(study_name=name, storage=journal).trials]


@contextlib.contextmanager
def sigterm_once(ready: Callable[[], bool]) -> Iterator[None]:
    """SIGTERM to this very process once ``ready()``, as ``kill PID`` to a driver running the
    search in-process (no driver of its own to start: no Ray start, no imports). Around it
    SIGTERM is ignored, so a late one could never end the test process; the search must hand
    that handler back."""
    done = threading.Event()

    def send() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not done.is_set() and not ready():
            time.sleep(0.05)
        if not done.is_set():
            os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sender = threading.Thread(target=send, daemon=True)
    try:
        sender.start()
        yield
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    finally:
        done.set()
        sender.join()  # a signal it is about to send still lands on SIG_IGN, never on `previous`
        signal.signal(signal.SIGTERM, previous)
