from __future__ import annotations

import torch

from .errors import ConfigError


def resolve_device(device: str, *, flag: str | None = None) -> torch.device:
    """Map ``auto|cpu|cuda|cuda:N`` to a torch device; ``auto`` picks CUDA when present. Errors
    name ``flag`` (e.g. ``--device``) where the value came from one."""
    where, auto = (f"{flag} {device}", f"{flag} auto") if flag else (f"device={device!r}", "device=auto")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"{where}: CUDA is not available here; use {auto} or cpu")
        try:
            dev = torch.device(device)
        except RuntimeError:
            dev = None
        if dev is not None and dev.type == "cuda":
            count = torch.cuda.device_count()
            if dev.index is not None and dev.index >= count:
                # torch would fail later, mid-training, with "invalid device ordinal"
                raise ConfigError(f"{where}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
            return dev
    raise ConfigError(f"{where}: expected auto, cpu, cuda or cuda:N")
