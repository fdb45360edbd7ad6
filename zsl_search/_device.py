from __future__ import annotations

import torch

from .errors import ConfigError


def resolve_device(device: str) -> torch.device:
    """Map ``auto|cpu|cuda|cuda:N`` to a torch device; ``auto`` picks CUDA when present."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device={device!r}: CUDA is not available here; use device=auto or cpu")
        return torch.device(device)
    raise ConfigError(f"device={device!r}: expected auto, cpu, cuda or cuda:N")
