"""The training loop shared by every GAN variant."""

from ._trainer import Trainer, TrainResult, train

__all__ = ["Trainer", "TrainResult", "train"]
