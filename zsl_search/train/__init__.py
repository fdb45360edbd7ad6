"""The training loop shared by every GAN variant (`Trainer`), and `FusedTrainer`: K runs of one
variant with the same shapes trained as one batched model, each member its solo run."""

from ._fused import PER_MEMBER, FusedTrainer, can_fuse, pack_key
from ._trainer import Trainer, TrainResult, check_checkpoint, pretrain_classifier, train

__all__ = ["Trainer", "TrainResult", "train", "pretrain_classifier", "check_checkpoint", "FusedTrainer", "can_fuse",
           "pack_key", "PER_MEMBER"]
