"""Tune's saved state of a search on a local disk, kept restorable when a driver is killed.

At every sync Tune's driver writes each state file it holds (``tuner.pkl``, every session's
``experiment_state-*.json``, the searcher's and the trial generator's states) over the copy in
the experiment directory, in place. A driver killed during that write (SIGKILL, a lost machine)
leaves them truncated, often empty, and `resume_search` could not start. So the complete ones
are copied to ``.tune-state/`` when a driver starts, every 10 s while it runs (`TuneStateCopies`)
and when it ends (Tune reads and writes only the files at the top of the directory), and before
a restore each damaged file is put back from its copy. A damaged file with no copy (the state a
killed driver was writing for its own session, in its first seconds) is moved aside
(``<name>.damaged``), so Tune resumes from the session before it. Either way the state may name
checkpoints that trials have since replaced: `StaleCheckpointRepair` finds them. On S3 an
upload replaces an object whole or not at all, so only local storage needs this.
"""

from __future__ import annotations

import json
import os
import pickletools
from pathlib import Path

from .._files import atomic_write

__all__ = ["keep_tune_state", "repair_tune_state", "TUNE_STATE_COPIES"]

TUNE_STATE_COPIES = ".tune-state"


def _state_files(experiment: Path) -> list[Path]:
    # What Tune reads back on restore: the directory's own .json and .pkl files.
    if not experiment.is_dir():
        return []
    return sorted(p for p in experiment.iterdir() if p.suffix in (".json", ".pkl") and p.is_file())


def _complete(data: bytes) -> bool:
    """Whether ``data`` is a whole JSON document or a whole pickle, whatever its file's name says
    (Tune's ``search_gen_state-*.json`` are pickles): a file cut short by a killed write is
    neither (a pickle ends with its one STOP opcode)."""
    if not data:
        return False
    try:
        json.loads(data)
        return True
    except ValueError:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        pass
    try:
        for _ in pickletools.genops(data):  # opcodes only: nothing is imported or built
            pass
    except ValueError:
        return False
    return True


def keep_tune_state(experiment: str | Path) -> None:
    """Copy every complete Tune state file of ``experiment`` (a local directory) to
    ``.tune-state/``; an incomplete one never replaces its copy. A copy that cannot be written
    (a full disk) is skipped: the copies protect a search, they never end one."""
    experiment = Path(experiment)
    copies = experiment / TUNE_STATE_COPIES
    try:
        files = _state_files(experiment)
    except OSError:
        return
    for path in files:
        try:
            data = path.read_bytes()
            copy = copies / path.name
            if _complete(data) and not (copy.exists() and copy.read_bytes() == data):
                copies.mkdir(exist_ok=True)
                atomic_write(copy, lambda p: p.write_bytes(data))
        except OSError:
            continue


def repair_tune_state(experiment: str | Path) -> list[str]:
    """Put back each damaged Tune state file of ``experiment`` from its copy, or move it aside
    when it has none; returns what was done, one line per file."""
    experiment = Path(experiment)
    done = []
    for path in _state_files(experiment):
        if _complete(path.read_bytes()):
            continue
        copy = experiment / TUNE_STATE_COPIES / path.name
        kept = copy.read_bytes() if copy.exists() else b""
        if _complete(kept):
            atomic_write(path, lambda p: p.write_bytes(kept))
            done.append(f"{path.name} was cut short by a killed driver; put back from {TUNE_STATE_COPIES}/")
        elif path.name != "tuner.pkl":  # without it nothing restores: `_restored_tuner` says so
            os.replace(path, path.with_name(path.name + ".damaged"))
            done.append(f"{path.name} was cut short by a killed driver and has no copy; moved aside to "
                        f"{path.name}.damaged (Tune resumes from the state saved before it)")
    return done
