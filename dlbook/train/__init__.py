"""Training: a model-agnostic Trainer, callbacks, inference, and the one mixed-precision path."""

from dlbook.train.callbacks import Callback, Checkpoint, EarlyStopping, LRSchedule
from dlbook.train.device import (autocast, autocast_dtype, cpu_supports_bf16, default_device, describe_device,
                                 seed_everything, to_device)
from dlbook.train.history import History
from dlbook.train.inference import eval_mode, predict
from dlbook.train.trainer import Trainer

__all__ = [
    "Callback", "Checkpoint", "EarlyStopping", "History", "LRSchedule", "Trainer", "autocast",
    "autocast_dtype", "cpu_supports_bf16", "default_device", "describe_device", "eval_mode", "predict",
    "seed_everything", "to_device",
]
