"""Callbacks: plain objects with a few hooks, named like Lightning's.

A callback overrides any of ``on_fit_start``, ``on_train_epoch_end``,
``on_fit_end`` (each receives ``(trainer, model)``) and ``on_train_batch_end``
(``(trainer, model, loss)``). To stop training, set ``trainer.should_stop``.
"""

from __future__ import annotations

import copy
import math
import os
import tempfile
from pathlib import Path

import torch


class Callback:
    """Base class: every hook does nothing."""

    def on_fit_start(self, trainer, model) -> None: ...

    def on_train_batch_end(self, trainer, model, loss: float) -> None: ...

    def on_train_epoch_end(self, trainer, model) -> None: ...

    def on_fit_end(self, trainer, model) -> None: ...

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None: ...


def _better(mode: str, value: float, best: float, min_delta: float) -> bool:
    return value < best - min_delta if mode == "min" else value > best + min_delta


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs; optionally restore the best weights.

    Args:
        monitor: a key of the epoch record, e.g. ``"val_accuracy"`` or ``"val_loss"``.
        mode: ``"max"`` or ``"min"``.
        patience: epochs without improvement before stopping.
        min_delta: the smallest change that counts as an improvement.
        restore_best: load the best epoch's weights back into the model at the end.

    Example:
        >>> stop = EarlyStopping(monitor="val_accuracy", mode="max", patience=3)
    """

    def __init__(self, monitor: str = "val_loss", mode: str = "min", patience: int = 3,
                 min_delta: float = 0.0, restore_best: bool = True):
        if mode not in ("min", "max"):
            raise ValueError(f"mode={mode!r}; use 'min' or 'max'")
        self.monitor, self.mode, self.patience = monitor, mode, patience
        self.min_delta, self.restore_best = min_delta, restore_best
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch, self.wait, self.best_state = -1, 0, None

    def on_train_epoch_end(self, trainer, model) -> None:
        record = trainer.history.records[-1]
        if self.monitor not in record:
            raise KeyError(f"EarlyStopping monitors {self.monitor!r}, but the epoch record has only "
                           f"{sorted(record)}; pass a val_loader to fit() or monitor another key")
        value = record[self.monitor]
        if _better(self.mode, value, self.best, self.min_delta):
            self.best, self.best_epoch, self.wait = value, record["epoch"], 0
            if self.restore_best:
                self.best_state = copy.deepcopy(model.state_dict())
        else:
            self.wait += 1
            if self.wait >= self.patience:
                trainer.should_stop = True

    def on_fit_end(self, trainer, model) -> None:
        if self.restore_best and self.best_state is not None:
            model.load_state_dict(self.best_state)

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait, "best_state": self.best_state}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.wait, self.best_state = state["wait"], state["best_state"]


class Checkpoint(Callback):
    """Save a resumable checkpoint after every ``every`` epochs, atomically (temp file, then rename).

    Resume with ``trainer.fit(..., resume_from=path)``. Files are loaded with
    ``weights_only=True``, so a checkpoint cannot run code when loaded.

    Args:
        path: the checkpoint file to write.
        every: save every this many epochs (the last epoch is always saved).
    """

    def __init__(self, path: str | os.PathLike, every: int = 1):
        self.path, self.every = Path(path), every

    def on_train_epoch_end(self, trainer, model) -> None:
        epoch = trainer.history.records[-1]["epoch"]
        if epoch % self.every == 0 or trainer.should_stop or epoch == trainer.max_epochs:
            trainer.save_checkpoint(self.path)


class LRSchedule(Callback):
    """Step a ``torch.optim.lr_scheduler`` every batch (one-cycle, warm-up) or every epoch (step, cosine).

    The scheduler steps *after* each batch (or epoch), the last one included, so a
    schedule defined over ``n`` steps is stepped ``n`` times. For ``OneCycleLR`` give
    ``total_steps = n + 1``: with exactly ``n`` it ends one step past its own end, and
    the learning rate it reports after training (as logged in the ``History``) comes out
    wrong, negative with linear annealing. Every batch still trains at the intended rate.

    Example:
        >>> steps = epochs * len(loader)  # doctest: +SKIP
        >>> sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=steps + 1)  # doctest: +SKIP
        >>> LRSchedule(sched, interval="batch")  # doctest: +SKIP
    """

    def __init__(self, scheduler, interval: str = "batch"):
        if interval not in ("batch", "epoch"):
            raise ValueError(f"interval={interval!r}; use 'batch' or 'epoch'")
        self.scheduler, self.interval = scheduler, interval

    def on_train_batch_end(self, trainer, model, loss: float) -> None:
        if self.interval == "batch":
            self.scheduler.step()

    def on_train_epoch_end(self, trainer, model) -> None:
        if self.interval == "epoch":
            self.scheduler.step()

    def state_dict(self) -> dict:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.scheduler.load_state_dict(state)


def atomic_save(obj, path: str | os.PathLike) -> None:
    """``torch.save`` to a temp file in the same folder, then rename: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
