"""Training: a model-agnostic Trainer, callbacks, checkpoints, inference, and the one mixed-precision path.

Modules: ``trainer`` (the loop), ``callbacks`` (early stopping, checkpoints, LR schedules, a time budget, weight averaging),
``checkpoint`` (what a checkpoint holds, checked resume), ``inference`` (``eval_mode``, ``predict``),
``device`` (device and precision), ``optim`` (weight-decay parameter groups), ``schedules``
(``linear_warmup_decay``, re-plannable), ``lr_finder`` (the learning-rate range test), ``throughput`` (the one timed training step and the
profiler's phase split), ``history`` (per-epoch records), ``diagnose`` (checks for the
common training failures: optimizer coverage, overfitting one batch, collapsed predictions), ``transfer`` (freezing, head replacement, per-part learning
rates, linear probe), ``ddp`` (the script
``torchrun -m dlbook.train.ddp`` launches: DistributedDataParallel with a DistributedSampler). Timing helpers are in :mod:`dlbook.timing`.
"""

from dlbook.train.callbacks import Callback, Checkpoint, EarlyStopping, LRSchedule, TimeBudget, WeightAverage
from dlbook.train.device import (autocast, autocast_dtype, call_model, cpu_supports_bf16, default_device, describe_device,
                                 seed_everything, to_device)
from dlbook.train.diagnose import optimizer_coverage, overfit_one_batch, prediction_shares
from dlbook.train.history import History
from dlbook.train.inference import eval_mode, predict
from dlbook.train.lr_finder import LRRangeResult, lr_range_test
from dlbook.train.optim import param_groups
from dlbook.train.schedules import WarmupLinearDecay, linear_warmup_decay
from dlbook.train.trainer import Trainer

__all__ = [
    "Callback", "Checkpoint", "EarlyStopping", "History", "LRRangeResult", "LRSchedule", "Trainer", "autocast", "autocast_dtype", "call_model",
    "cpu_supports_bf16", "default_device", "describe_device", "eval_mode", "linear_warmup_decay", "lr_range_test", "optimizer_coverage",
    "overfit_one_batch", "param_groups", "predict", "prediction_shares", "seed_everything", "TimeBudget", "to_device",
    "WarmupLinearDecay", "WeightAverage",
]
