"""A model-agnostic Trainer that fits on two screens (after minGPT's and fastai's).

The loop: move a batch to the device, run the forward pass under autocast
(bf16 on a CPU that supports it, AMP on CUDA), back-propagate (with a
``GradScaler`` only for float16), clip, check that loss and gradients are
finite, step, and let callbacks react. Early stopping, checkpoints and LR
schedules are callbacks (:mod:`dlbook.train.callbacks`); what a checkpoint holds
and how a run resumes is in :mod:`dlbook.train.checkpoint`; prediction is
:func:`dlbook.train.inference.predict`.

Example:
    >>> trainer = Trainer(model, torch.optim.Adam(model.parameters()), nn.CrossEntropyLoss(),
    ...                   metrics={"accuracy": accuracy}, callbacks=[EarlyStopping("val_accuracy", "max")])  # doctest: +SKIP
    >>> history = trainer.fit(train_loader, val_loader, epochs=10)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Callable, Iterable, Literal, Mapping

import torch
from torch import nn

from dlbook.train import checkpoint as ckpt
from dlbook.train.callbacks import Callback, Checkpoint
from dlbook.train.device import autocast, autocast_dtype, call_model, default_device, to_device
from dlbook.train.diagnose import optimizer_coverage
from dlbook.train.history import History
from dlbook.train.inference import EmptyLoaderError, predict

#: A metric, ``fn(outputs, targets) -> float``.
Metric = Callable[[torch.Tensor, torch.Tensor], float]
#: What the Trainer prints, ``True`` (a bar and a line per epoch), ``"epochs"`` (the lines) or ``False``.
Progress = Literal[True, False, "epochs"]


class Trainer:
    """Fit any ``nn.Module`` on batches of ``(inputs, targets)``.

    Args:
        model: the network; called as ``model(inputs)``, or ``model(*inputs)`` when inputs is a tuple.
        optimizer: a ``torch.optim`` optimizer over the model's parameters.
        loss_fn: ``loss_fn(outputs, targets)`` → scalar tensor.
        device: defaults to CUDA if present, else CPU.
        precision: ``"auto"`` (bf16 autocast on capable CPUs and CUDA, fp16 AMP on older GPUs), ``"bf16"``,
            ``"fp16"``, ``"fp32"``; the same name as :func:`dlbook.train.predict` (read ``trainer.precision``).
        metrics: ``{name: fn(outputs, targets) -> float}`` computed on each split.
        callbacks: :class:`~dlbook.train.callbacks.Callback` objects.
        grad_clip: clip the global gradient norm to this value (None: no clipping).
        channels_last: store the model and 4-D inputs channels-last (faster convolutions on CPU and GPU).
        progress: ``True`` for a tqdm bar plus one line per epoch, ``"epochs"`` for the lines only, ``False`` for silence.
        on_nonfinite: what to do when the loss is finite but a gradient (after unscaling and clipping) is NaN
            or inf: ``"raise"`` a FloatingPointError (default), or ``"skip"`` the optimizer step and count it
            in the epoch record's ``skipped_steps``. With float16 the ``GradScaler`` skips such steps itself
            (that is how it finds its scale); they are counted, never raised. A non-finite loss always raises.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: Callable,
                 *, device: torch.device | str | None = None, precision: str = "auto",
                 metrics: Mapping[str, Metric] | None = None, callbacks: Iterable[Callback] = (),
                 grad_clip: float | None = None, channels_last: bool = False, progress: Progress = True,
                 on_nonfinite: Literal["raise", "skip"] = "raise"):
        if not (progress is True or progress is False or progress == "epochs"):
            raise ValueError(f"progress={progress!r}; use True (bar and lines), 'epochs' (lines) or False (silent)")
        if on_nonfinite not in ("raise", "skip"):
            raise ValueError(f"on_nonfinite={on_nonfinite!r}; use 'raise' or 'skip'")
        coverage = optimizer_coverage(model, optimizer)
        if coverage.foreign:
            raise ValueError(coverage.message())
        self.device = torch.device(device) if device is not None else default_device()
        self.channels_last = channels_last
        self.model = model.to(self.device, memory_format=torch.channels_last) if channels_last else model.to(self.device)
        self.optimizer, self.loss_fn = optimizer, loss_fn
        self.precision = precision
        self._amp_dtype = autocast_dtype(self.device, precision)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self._amp_dtype == torch.float16)
        self.metrics = dict(metrics or {})
        self.callbacks = list(callbacks)
        self.grad_clip, self.progress, self.on_nonfinite = grad_clip, progress, on_nonfinite
        self.history, self.should_stop, self.max_epochs, self.global_step = History(), False, 0, 0

    # -- the loop -------------------------------------------------------------------------
    def fit(self, train_loader, val_loader=None, epochs: int = 1, resume_from=None) -> History:
        """Train for up to ``epochs`` epochs (fewer if a callback stops it); return the history.

        A callback may change the plan by setting ``trainer.max_epochs`` (:class:`dlbook.train.TimeBudget`
        fits the epochs to a wall-clock budget that way).

        ``resume_from`` continues a run saved by :class:`Checkpoint` exactly where it stopped: the
        checkpoint is checked against this trainer first, then weights, optimizer, callbacks, history
        and the process-wide RNG states (Python, NumPy, torch) are restored, so the run continues as if
        never interrupted. ``epochs`` counts from the start of the run, so it must exceed the epochs
        already in the checkpoint.
        """
        if epochs < 1:
            raise ValueError(f"epochs={epochs}; train for at least one epoch")
        if resume_from is not None:
            state = ckpt.read_checkpoint(resume_from, map_location=self.device)
            ckpt.check_compatible(self, state, resume_from)
            if len(state["history"]) >= epochs:
                raise ValueError(f"{resume_from} already holds {len(state['history'])} epochs, so fit(epochs={epochs}) "
                                 f"leaves nothing to train; pass epochs > {len(state['history'])} to train further")
            ckpt.restore(self, state, rng=True)
        start_epoch = len(self.history.records)
        if start_epoch >= epochs:
            raise ValueError(f"this trainer has already trained {start_epoch} epochs and fit(epochs={epochs}) counts "
                             f"from the start of the run, so nothing is left to train; pass epochs > {start_epoch}")
        for what, loader in (("train_loader", train_loader), ("val_loader", val_loader)):
            if isinstance(loader, Iterator) and epochs - start_epoch > 1:
                raise ValueError(f"{what} is a one-shot iterator (e.g. a generator): it would be empty from epoch "
                                 f"{start_epoch + 2} on. Pass a re-iterable loader (a list, a DataLoader, a "
                                 "TensorLoader) or train for one epoch at a time")
        self.max_epochs, self.should_stop = epochs, False
        for cb in self.callbacks:
            cb.on_fit_start(self, self.model)
        per_epoch = _len_or_none(train_loader)
        bar = self._progress_bar(total=None if per_epoch is None else (epochs - start_epoch) * per_epoch)
        # Checkpoints run last, so they see should_stop and every other callback's state for this epoch.
        at_epoch_end = sorted(self.callbacks, key=lambda cb: isinstance(cb, Checkpoint))
        epoch = start_epoch
        while epoch < self.max_epochs:  # a callback may change max_epochs (TimeBudget does)
            epoch += 1
            if bar is not None and per_epoch is not None:
                bar.total = (self.max_epochs - start_epoch) * per_epoch
            if hasattr(train_loader, "set_epoch"):
                train_loader.set_epoch(epoch)
            tic = time.perf_counter()
            record = {"epoch": epoch, **self._train_epoch(train_loader, bar, epoch)}
            if val_loader is not None:
                try:
                    record.update({f"val_{k}": v for k, v in self.evaluate(val_loader).items()})
                except EmptyLoaderError:
                    raise ValueError(f"the validation loader yielded no batches in epoch {epoch}; pass a non-empty "
                                     "val_loader, or val_loader=None to train without validation") from None
            record["lr"] = self.optimizer.param_groups[0]["lr"]
            record["time_s"] = time.perf_counter() - tic
            self.history.append(record)
            for cb in at_epoch_end:
                cb.on_train_epoch_end(self, self.model)
            self._log(self.history.records[-1])  # with what the callbacks added (e.g. WeightAverage's scores)
            if self.should_stop:
                break
        if bar is not None:
            bar.close()
        for cb in self.callbacks:
            cb.on_fit_end(self, self.model)
        return self.history

    def _train_epoch(self, loader, bar, epoch: int) -> dict:
        self.model.train()
        total, count, skipped, outputs_all, targets_all = 0.0, 0, 0, [], []
        for inputs, targets in loader:
            inputs = to_device(inputs, self.device, self.channels_last)
            targets = to_device(targets, self.device)
            with autocast(self.device, self._amp_dtype):
                outputs = call_model(self.model, inputs)
                loss = self.loss_fn(outputs, targets)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)  # a no-op unless float16
            grads = [p.grad for p in self.model.parameters() if p.grad is not None]
            if self.grad_clip is not None:
                norm = nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            else:
                norm = nn.utils.get_total_norm(grads)
            # The loss and the gradient norm reach the host together: one device sync per step.
            loss_value, norm_value = torch.stack([loss.detach().float(), norm.float().to(loss.device)]).tolist()
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"loss is {loss_value} at step {self.global_step} (epoch {epoch}): lower the "
                                         "learning rate, clip gradients (grad_clip=1.0) or check the inputs")
            finite = math.isfinite(norm_value)
            if not finite and self.on_nonfinite == "raise" and not self.scaler.is_enabled():
                raise FloatingPointError(
                    f"the loss is finite ({loss_value:.4g}) but a gradient is NaN or inf at step {self.global_step} "
                    f"(epoch {epoch}); no step was taken, so the weights are still finite. Look for log(0), "
                    "sqrt(0) or a division by zero in the model or loss, lower the learning rate, or pass "
                    "on_nonfinite='skip' to skip such steps")
            if finite or self.scaler.is_enabled():
                self.scaler.step(self.optimizer)  # a float16 scaler skips a step with inf gradients itself
            skipped += not finite
            self.scaler.update()
            self.global_step += 1
            n = _batch_size(targets)
            total, count = total + loss_value * n, count + n
            if self.metrics:
                outputs_all.append(outputs.detach().float().cpu())
                targets_all.append(targets.detach().cpu())
            for cb in self.callbacks:
                cb.on_train_batch_end(self, self.model, loss_value)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss_value:.4f}", refresh=False)
        if count == 0:
            raise ValueError(f"the training loader yielded no batches in epoch {epoch}: it is empty (check the "
                             "dataset and batch size, e.g. drop_last with fewer samples than one batch)")
        record = {"train_loss": total / count}
        if self.on_nonfinite == "skip" or self.scaler.is_enabled():
            record["skipped_steps"] = skipped
        if self.metrics:
            out, tgt = torch.cat(outputs_all), torch.cat(targets_all)
            record.update({f"train_{k}": float(fn(out, tgt)) for k, fn in self.metrics.items()})
        return record

    def predict(self, loader, tta=None) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`dlbook.train.predict` with this trainer's device, precision and memory format."""
        return predict(self.model, loader, device=self.device, precision=self.precision,
                       channels_last=self.channels_last, tta=tta)

    def evaluate(self, loader) -> dict:
        """Loss and metrics over ``loader`` (computed on all outputs at once, so exact)."""
        outputs, targets = self.predict(loader)
        result = {"loss": float(self.loss_fn(outputs, targets.to(outputs.device)))}
        result.update({k: float(fn(outputs, targets)) for k, fn in self.metrics.items()})
        return result

    # -- checkpoints (see dlbook.train.checkpoint) -----------------------------------------
    def save_checkpoint(self, path) -> None:
        """Everything needed to resume: weights, optimizer, scaler, callbacks, history and RNG states.

        Raises FloatingPointError (and writes nothing) if the weights hold NaN or inf, and
        :class:`dlbook.files.DiskFullError` naming the folder on a full disk; either way the
        previous file at ``path`` survives.
        """
        ckpt.save_trainer(self, path)

    def load_checkpoint(self, path) -> None:
        """Restore weights, optimizer, scaler, callbacks and history from ``path``, after checking them all.

        The process-wide RNG states are left alone (only ``fit(resume_from=...)`` restores them).
        Raises :class:`dlbook.files.CorruptFileError` for a damaged file and ValueError, naming what
        differs, when the checkpoint does not match this trainer; nothing is changed then.
        """
        state = ckpt.read_checkpoint(path, map_location=self.device)
        ckpt.check_compatible(self, state, path)
        ckpt.restore(self, state, rng=False)

    # -- output ---------------------------------------------------------------------------
    def _progress_bar(self, total):
        if self.progress is not True:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, desc="training", unit="batch", leave=True, mininterval=1.0)

    def _log(self, record: dict) -> None:
        if not self.progress:
            return
        parts = [f"epoch {record['epoch']:>3}"]
        parts += [f"{k} {v}" if isinstance(v, int) else f"{k} {v:.4f}"
                  for k, v in record.items() if k not in ("epoch", "time_s", "lr")]
        parts += [f"lr {record['lr']:.2e}", f"{record['time_s']:.1f}s"]
        print("  ".join(parts), flush=True)


def _len_or_none(loader):
    try:
        return len(loader)
    except TypeError:
        return None


def _batch_size(targets) -> int:
    return targets.shape[0] if isinstance(targets, torch.Tensor) and targets.dim() > 0 else 1
