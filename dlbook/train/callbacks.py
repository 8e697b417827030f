"""Callbacks: plain objects with a few hooks, named like Lightning's.

A callback overrides any of ``on_fit_start``, ``on_train_epoch_end``,
``on_fit_end`` (each receives ``(trainer, model)``) and ``on_train_batch_end``
(``(trainer, model, loss)``). To stop training, set ``trainer.should_stop``.

A callback with state (``state_dict``) is saved in checkpoints under its
``state_key``: its ``name`` if given, else a stable default such as
``"EarlyStopping[val_loss]"``, so resuming does not depend on the callbacks' order.
At the end of an epoch the trainer runs :class:`Checkpoint` callbacks after all
others, so a checkpoint sees ``should_stop`` and every other callback's new state.
"""

from __future__ import annotations

import copy
import math
import os
import time
from pathlib import Path
from typing import Callable

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from dlbook.train.inference import predict


class Callback:
    """Base class: every hook does nothing."""

    #: The key this callback's state is saved under; None for the class's default.
    name: str | None = None

    @property
    def state_key(self) -> str:
        return self.name or type(self).__name__

    def on_fit_start(self, trainer, model) -> None: ...

    def on_train_batch_end(self, trainer, model, loss: float) -> None: ...

    def on_train_epoch_end(self, trainer, model) -> None: ...

    def on_fit_end(self, trainer, model) -> None: ...

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None: ...


def _monitored(record: dict, monitor: str, who: str) -> float:
    """The monitored value of an epoch record, or a KeyError that says how to get it."""
    if monitor not in record:
        raise KeyError(f"{who} monitors {monitor!r}, but the epoch record has only {sorted(record)}; "
                       "pass a val_loader to fit() or monitor another key")
    return record[monitor]


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
        module: whose weights are kept at the best epoch and restored, when ``monitor`` scores another
            module than the trained model: e.g. ``ema.average.module`` with ``"ema_val_accuracy"``
            from a :class:`WeightAverage` ``ema`` (default: the trained model).
        name: the key its state is saved under (default ``"EarlyStopping[<monitor>]"``).

    Example:
        >>> stop = EarlyStopping(monitor="val_accuracy", mode="max", patience=3)
    """

    def __init__(self, monitor: str = "val_loss", mode: str = "min", patience: int = 3,
                 min_delta: float = 0.0, restore_best: bool = True, module=None, name: str | None = None):
        if mode not in ("min", "max"):
            raise ValueError(f"mode={mode!r}; use 'min' or 'max'")
        self.name = name or f"EarlyStopping[{monitor}]"
        self.monitor, self.mode, self.patience = monitor, mode, patience
        self.min_delta, self.restore_best, self.module = min_delta, restore_best, module
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch, self.wait, self.best_state = -1, 0, None

    def on_train_epoch_end(self, trainer, model) -> None:
        record = trainer.history.records[-1]
        value = _monitored(record, self.monitor, "EarlyStopping")
        if _better(self.mode, value, self.best, self.min_delta):
            self.best, self.best_epoch, self.wait = value, record["epoch"], 0
            if self.restore_best:
                self.best_state = copy.deepcopy((self.module or model).state_dict())
        else:
            self.wait += 1
            if self.wait >= self.patience:
                trainer.should_stop = True

    def on_fit_end(self, trainer, model) -> None:
        if self.restore_best and self.best_state is not None:
            (self.module or model).load_state_dict(self.best_state)

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait, "best_state": self.best_state}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.wait, self.best_state = state["wait"], state["best_state"]


class Checkpoint(Callback):
    """Save a resumable checkpoint every ``every`` epochs, and the best one so far if ``monitor`` is given.

    ``path`` always holds the latest epoch; with ``monitor`` the best epoch is also kept
    at ``<stem>.best<suffix>`` (e.g. ``run.best.pt``). Files are written with
    :func:`dlbook.files.save_checked` (atomic, with a payload SHA-256, loaded with
    ``weights_only=True``), so a crash or a full disk leaves the previous file intact
    and a flipped bit is an error naming the file. Weights that hold NaN or inf are
    never written. The trainer runs this callback after all others at the end of an
    epoch, so the stopping epoch is always saved, whatever the order of the callbacks.
    Resume with ``trainer.fit(..., resume_from=path)``.

    Args:
        path: the checkpoint file to write.
        every: save every this many epochs (the last epoch, or the one that stops the run, is always saved).
        monitor: a key of the epoch record, e.g. ``"val_accuracy"``; None keeps no best file.
        mode: ``"max"`` or ``"min"``, the better direction of ``monitor``.
        name: the key its state is saved under (default ``"Checkpoint[<file name>]"``).

    Example:
        >>> ckpt = Checkpoint("runs/lenet.pt", monitor="val_accuracy", mode="max")
        >>> ckpt.best_path.name
        'lenet.best.pt'
    """

    def __init__(self, path: str | os.PathLike, every: int = 1, monitor: str | None = None, mode: str = "min",
                 name: str | None = None):
        if every < 1:
            raise ValueError(f"every={every}; save at least every epoch (every=1) or every few (every=5)")
        if mode not in ("min", "max"):
            raise ValueError(f"mode={mode!r}; use 'min' or 'max'")
        self.path, self.every, self.monitor, self.mode = Path(path), every, monitor, mode
        self.best_path = self.path.with_name(f"{self.path.stem}.best{self.path.suffix}")
        self.best = math.inf if mode == "min" else -math.inf
        self.name = name or f"Checkpoint[{self.path.name}]"

    def on_train_epoch_end(self, trainer, model) -> None:
        record = trainer.history.records[-1]
        epoch = record["epoch"]
        if self.monitor is not None:
            value = _monitored(record, self.monitor, "Checkpoint")
            if math.isfinite(value) and _better(self.mode, value, self.best, 0.0):
                self.best = value
                trainer.save_checkpoint(self.best_path)
        if epoch % self.every == 0 or trainer.should_stop or epoch == trainer.max_epochs:
            trainer.save_checkpoint(self.path)

    def state_dict(self) -> dict:
        return {"best": self.best} if self.monitor is not None else {}

    def load_state_dict(self, state: dict) -> None:
        self.best = state["best"]


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

    ``name`` is the key its state is saved under in checkpoints (default
    ``"LRSchedule[<scheduler class>]"``); give two schedules distinct names.
    """

    def __init__(self, scheduler, interval: str = "batch", name: str | None = None):
        if interval not in ("batch", "epoch"):
            raise ValueError(f"interval={interval!r}; use 'batch' or 'epoch'")
        self.scheduler, self.interval = scheduler, interval
        self.name = name or f"LRSchedule[{type(scheduler).__name__}]"

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


class TimeBudget(Callback):
    """Fit the epochs to a wall-clock budget, re-planned from the epochs as they are timed.

    A speed measured before training (a few steps, without validation) misses the time
    the validation passes, the data shuffling and the machine's slower spells take. This
    callback times the real epochs instead. After each epoch it takes the slower of the
    mean epoch so far and the last one (from one epoch's end to the next, so the work
    of the callbacks at an epoch's end counts too), works out how many more whole epochs fit in
    ``margin`` of the time left, sets ``trainer.max_epochs`` to that, and moves the end of
    ``schedule`` (a :func:`dlbook.train.linear_warmup_decay`) with it, so the learning rate
    still reaches 0 on the last step, with no jump. ``fit(epochs=...)`` is the first plan.
    When the time is spent, training stops. A plan that has been reached is final: by then
    the learning rate is 0, and an epoch added after it would train at 0. ``plans`` lists
    ``(epoch, epochs planned)`` after every change of plan.

    The time counts from ``fit`` (the epochs and their validation, not what runs before).
    A run resumed from a checkpoint goes on with the time it had already used.

    Args:
        seconds: the budget for the whole run.
        schedule: the ``LambdaLR`` to re-plan, stepped every batch; None plans only the epochs.
        margin: the share of the time left to plan for; the rest absorbs epochs slower than
            the ones seen so far.
        name: the key its state is saved under (default ``"TimeBudget"``).
        clock: the seconds counter the budget reads (default :func:`time.perf_counter`). Pass one
            that stands still during work the budget should leave out, such as the test-set
            evaluations the time-to-accuracy benchmark runs off its training clock.

    Example:
        >>> budget = TimeBudget(45 * 60, margin=0.95)
        >>> budget.epochs_that_fit(done=1, elapsed=82.0, last=82.0)   # 82 s per epoch
        31
    """

    def __init__(self, seconds: float, schedule=None, margin: float = 0.95, name: str | None = None,
                 clock: Callable[[], float] | None = None):
        if not seconds > 0 or not 0 < margin <= 1:
            raise ValueError(f"need seconds > 0 (got {seconds}) and 0 < margin <= 1 (got {margin})")
        if schedule is not None and not all(hasattr(f, "replan") for f in getattr(schedule, "lr_lambdas", [None])):
            raise TypeError(f"TimeBudget moves the end of a linear_warmup_decay schedule, not of a "
                            f"{type(schedule).__name__}; build the schedule with dlbook.train.linear_warmup_decay, "
                            "or pass schedule=None to plan only the epochs")
        self.seconds, self.schedule, self.margin, self.clock = seconds, schedule, margin, clock
        self.name = name or "TimeBudget"
        self.used, self.plans, self._start = 0.0, [], None

    def epochs_that_fit(self, done: int, elapsed: float, last: float) -> int:
        """The whole epochs (``done`` included) that fit, after ``done`` epochs took ``elapsed`` seconds."""
        per_epoch = max(elapsed / done, last)
        return done + max(0, math.floor((self.seconds - elapsed) * self.margin / per_epoch))

    def _now(self) -> float:
        return self.clock() if self.clock is not None else time.perf_counter()

    def on_fit_start(self, trainer, model) -> None:
        self._start = self._now() - self.used

    def on_train_epoch_end(self, trainer, model) -> None:
        before, self.used = self.used, self._now() - self._start
        done = len(trainer.history.records)
        if done >= trainer.max_epochs:  # the plan is reached and the schedule with it: more epochs would train at 0
            return
        planned = self.epochs_that_fit(done, self.used, self.used - before)  # last: on this clock, since the last epoch's end
        if planned == trainer.max_epochs:
            return
        if planned <= done:  # no time for another epoch
            trainer.should_stop = True
            planned = done
        trainer.max_epochs = planned
        self.plans.append((done, planned))
        if self.schedule is not None and planned > done:
            steps_per_epoch = trainer.global_step // done
            for factor in {id(f): f for f in self.schedule.lr_lambdas}.values():
                factor.replan(trainer.global_step, planned * steps_per_epoch)

    def state_dict(self) -> dict:
        return {"used": self.used, "plans": list(self.plans)}

    def load_state_dict(self, state: dict) -> None:
        self.used, self.plans = state["used"], [tuple(p) for p in state["plans"]]


class WeightAverage(Callback):
    """Keep an exponential moving average of the weights, updated after every training step.

    ``average`` is a :class:`torch.optim.swa_utils.AveragedModel` of ``model`` with
    ``use_buffers=True``: the BatchNorm statistics are averaged with the weights, so the
    averaged model is evaluated as it is (no ``update_bn`` pass). Its ``module`` is a
    model like the trained one: evaluate it with :func:`dlbook.train.predict`, and choose
    between it and the last weights on validation. Each step's weights count with a
    weight of ``1 - decay``, so the average spans about ``1 / (1 - decay)`` steps. When
    training starts, the average moves to the trainer's device and memory format.

    With ``val_loader``, the average is also scored after every epoch, with the trainer's loss
    and metrics, into the epoch record as ``<prefix>val_loss``, ``<prefix>val_accuracy``...
    (``ema_val_accuracy`` by default), before the callbacks after it in the list run: an
    :class:`EarlyStopping` placed after it can monitor the average (``module=ema.average.module``),
    whose validation curve is far smoother than the trained weights' while the learning rate is high.

    Args:
        model: the model being trained.
        decay: the EMA's decay per step, in (0, 1).
        val_loader: batches to score the average on after every epoch; None scores nothing.
        prefix: what the keys of that score start with; give two scored averages distinct ones.
        name: the key its state is saved under (default ``"WeightAverage[<decay>]"``).

    Example:
        >>> from torch import nn
        >>> ema = WeightAverage(nn.Linear(2, 1), decay=0.9)
        >>> type(ema.average.module).__name__
        'Linear'
    """

    def __init__(self, model: torch.nn.Module, decay: float = 0.995, val_loader=None, prefix: str = "ema_",
                 name: str | None = None):
        if not 0 < decay < 1:
            raise ValueError(f"decay={decay}; use a share in (0, 1), e.g. 0.995 to average about 200 steps")
        self.decay, self.val_loader, self.prefix = decay, val_loader, prefix
        self.average = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
        self.name = name or f"WeightAverage[{decay}]"

    def on_fit_start(self, trainer, model) -> None:
        if trainer.channels_last:
            self.average.to(trainer.device, memory_format=torch.channels_last)
        else:
            self.average.to(trainer.device)

    def on_train_batch_end(self, trainer, model, loss: float) -> None:
        self.average.update_parameters(model)

    def on_train_epoch_end(self, trainer, model) -> None:
        if self.val_loader is None:
            return
        outputs, targets = predict(self.average.module, self.val_loader, device=trainer.device,
                                   precision=trainer.precision, channels_last=trainer.channels_last)
        record = trainer.history.records[-1]
        record[f"{self.prefix}val_loss"] = float(trainer.loss_fn(outputs, targets.to(outputs.device)))
        record.update({f"{self.prefix}val_{k}": float(fn(outputs, targets)) for k, fn in trainer.metrics.items()})

    def state_dict(self) -> dict:
        return {"average": self.average.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.average.load_state_dict(state["average"])
