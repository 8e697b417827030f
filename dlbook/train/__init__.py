"""Training: a model-agnostic Trainer, callbacks, and the one mixed-precision path."""

from dlbook.train.callbacks import Callback, Checkpoint, EarlyStopping, LRSchedule, atomic_save
from dlbook.train.device import (autocast, autocast_dtype, cpu_supports_bf16, default_device, describe_device,
                                 seed_everything)
from dlbook.train.history import History
from dlbook.train.trainer import Trainer, to_device

__all__ = [
    "Callback", "Checkpoint", "EarlyStopping", "History", "LRSchedule", "Trainer", "atomic_save", "autocast",
    "autocast_dtype", "cpu_supports_bf16", "default_device", "describe_device", "seed_everything", "to_device",
]
