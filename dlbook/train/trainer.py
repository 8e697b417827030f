"""A model-agnostic Trainer that fits on two screens (after minGPT's and fastai's).

The loop: move a batch to the device, run the forward pass under autocast
(bf16 on a CPU that supports it, AMP on CUDA), back-propagate (with a
``GradScaler`` only for float16), clip, step, and let callbacks react. Early
stopping, checkpoints and LR schedules are callbacks (:mod:`dlbook.train.callbacks`).

Example:
    >>> trainer = Trainer(model, torch.optim.Adam(model.parameters()), nn.CrossEntropyLoss(),
    ...                   metrics={"accuracy": accuracy}, callbacks=[EarlyStopping("val_accuracy", "max")])  # doctest: +SKIP
    >>> history = trainer.fit(train_loader, val_loader, epochs=10)  # doctest: +SKIP
"""

from __future__ import annotations

import random
import time
from typing import Callable, Iterable, Mapping

import numpy as np
import torch
from torch import nn

from dlbook.train.callbacks import Callback, atomic_save
from dlbook.train.device import autocast, autocast_dtype, default_device, to_device
from dlbook.train.inference import predict
from dlbook.train.history import History

Metric = Callable[[torch.Tensor, torch.Tensor], float]


class Trainer:
    """Fit any ``nn.Module`` on batches of ``(inputs, targets)``.

    Args:
        model: the network; called as ``model(inputs)``, or ``model(*inputs)`` when inputs is a tuple.
        optimizer: a ``torch.optim`` optimizer over the model's parameters.
        loss_fn: ``loss_fn(outputs, targets)`` → scalar tensor.
        device: defaults to CUDA if present, else CPU.
        precision: ``"auto"`` (bf16 autocast on capable CPUs and CUDA, fp16 AMP on older GPUs), ``"bf16"``, ``"fp16"``, ``"fp32"``.
        metrics: ``{name: fn(outputs, targets) -> float}`` computed on each split.
        callbacks: :class:`~dlbook.train.callbacks.Callback` objects.
        grad_clip: clip the global gradient norm to this value (None: no clipping).
        channels_last: store the model and 4-D inputs channels-last (faster convolutions on CPU and GPU).
        progress: ``True`` for a tqdm bar plus one line per epoch, ``"epochs"`` for the lines only, ``False`` for silence.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: Callable,
                 *, device: torch.device | str | None = None, precision: str = "auto",
                 metrics: Mapping[str, Metric] | None = None, callbacks: Iterable[Callback] = (),
                 grad_clip: float | None = None, channels_last: bool = False, progress: bool | str = True):
        self.device = torch.device(device) if device is not None else default_device()
        self.channels_last = channels_last
        self.model = model.to(self.device, memory_format=torch.channels_last) if channels_last else model.to(self.device)
        self.optimizer, self.loss_fn = optimizer, loss_fn
        self.precision = precision
        self._amp_dtype = autocast_dtype(self.device, precision)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self._amp_dtype == torch.float16)
        self.metrics = dict(metrics or {})
        self.callbacks = list(callbacks)
        self.grad_clip, self.progress = grad_clip, progress
        self.history, self.should_stop, self.max_epochs, self.global_step = History(), False, 0, 0

    # -- the loop -------------------------------------------------------------------------
    def fit(self, train_loader, val_loader=None, epochs: int = 1, resume_from=None) -> History:
        """Train for up to ``epochs`` epochs (fewer if a callback stops it); return the history.

        ``resume_from`` continues a run saved by :class:`Checkpoint` exactly where it stopped.
        """
        if epochs < 1:
            raise ValueError(f"epochs={epochs}; train for at least one epoch")
        self.max_epochs, self.should_stop = epochs, False
        if resume_from is not None:
            self.load_checkpoint(resume_from)
        start_epoch = len(self.history.records)
        for cb in self.callbacks:
            cb.on_fit_start(self, self.model)
        bar = self._progress_bar(total=(epochs - start_epoch) * _len_or_none(train_loader))
        for epoch in range(start_epoch + 1, epochs + 1):
            if hasattr(train_loader, "set_epoch"):
                train_loader.set_epoch(epoch)
            tic = time.perf_counter()
            record = {"epoch": epoch, **self._train_epoch(train_loader, bar)}
            if val_loader is not None:
                record.update({f"val_{k}": v for k, v in self.evaluate(val_loader).items()})
            record["lr"] = self.optimizer.param_groups[0]["lr"]
            record["time_s"] = time.perf_counter() - tic
            self.history.append(record)
            for cb in self.callbacks:
                cb.on_train_epoch_end(self, self.model)
            self._log(record)
            if self.should_stop:
                break
        if bar is not None:
            bar.close()
        for cb in self.callbacks:
            cb.on_fit_end(self, self.model)
        return self.history

    def _train_epoch(self, loader, bar) -> dict:
        self.model.train()
        total, count, outputs_all, targets_all = 0.0, 0, [], []
        for inputs, targets in loader:
            inputs = to_device(inputs, self.device, self.channels_last)
            targets = to_device(targets, self.device)
            with autocast(self.device, self._amp_dtype):
                outputs = self._forward(inputs)
                loss = self.loss_fn(outputs, targets)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at step {self.global_step}: lower the "
                                         "learning rate, clip gradients (grad_clip=1.0) or check the inputs")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if self.grad_clip is not None:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.global_step += 1
            n = _batch_size(targets)
            total, count = total + loss.item() * n, count + n
            if self.metrics:
                outputs_all.append(outputs.detach().float().cpu())
                targets_all.append(targets.detach().cpu())
            for cb in self.callbacks:
                cb.on_train_batch_end(self, self.model, loss.item())
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        record = {"train_loss": total / max(count, 1)}
        if self.metrics and outputs_all:
            out, tgt = torch.cat(outputs_all), torch.cat(targets_all)
            record.update({f"train_{k}": float(fn(out, tgt)) for k, fn in self.metrics.items()})
        return record

    def _forward(self, inputs):
        return self.model(*inputs) if isinstance(inputs, (tuple, list)) else self.model(inputs)

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

    # -- checkpoints ----------------------------------------------------------------------
    def save_checkpoint(self, path) -> None:
        """Everything needed to resume: weights, optimizer, scaler, callbacks, history and RNG states."""
        atomic_save({
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(), "history": self.history.records,
            "global_step": self.global_step,
            "callbacks": [cb.state_dict() for cb in self.callbacks],
            "rng": {"torch": torch.get_rng_state(), "numpy": _numpy_state(), "python": _python_state()},
        }, path)

    def load_checkpoint(self, path) -> None:
        """Restore a checkpoint written by :meth:`save_checkpoint` (loaded with ``weights_only=True``)."""
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
        except FileNotFoundError:
            raise
        except Exception as exc:  # truncated or not a checkpoint at all
            raise RuntimeError(f"cannot read checkpoint {path}: {exc}. It may be incomplete or from another "
                               "program; delete it and train from scratch, or pick an earlier checkpoint") from exc
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.history = History(list(state["history"]))
        self.global_step = state["global_step"]
        for cb, cb_state in zip(self.callbacks, state["callbacks"]):
            cb.load_state_dict(cb_state)
        torch.set_rng_state(state["rng"]["torch"].cpu())
        np.random.set_state(_numpy_restore(state["rng"]["numpy"]))
        random.setstate(_python_restore(state["rng"]["python"]))

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
        parts += [f"{k} {v:.4f}" for k, v in record.items() if k not in ("epoch", "time_s", "lr")]
        parts += [f"lr {record['lr']:.2e}", f"{record['time_s']:.1f}s"]
        print("  ".join(parts), flush=True)


def _len_or_none(loader):
    try:
        return len(loader)
    except TypeError:
        return None


def _batch_size(targets) -> int:
    return targets.shape[0] if isinstance(targets, torch.Tensor) and targets.dim() > 0 else 1


# RNG states as plain tensors and lists, so that checkpoints load with weights_only=True.
def _numpy_state():
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss), "gauss": float(gauss)}


def _numpy_restore(s):
    return ("MT19937", s["keys"].cpu().numpy().astype(np.uint32), s["pos"], s["has_gauss"], s["gauss"])


def _python_state():
    version, internal, gauss = random.getstate()
    return {"version": version, "internal": list(internal), "gauss": gauss}


def _python_restore(s):
    return (s["version"], tuple(s["internal"]), s["gauss"])
