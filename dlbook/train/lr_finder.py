"""The learning-rate range test (Smith 2017, "Cyclical Learning Rates for Training Neural Networks", WACV),
in the exponential form popularised by fastai's ``lr_find``.

Train for a few hundred batches at most while the learning rate grows geometrically from ``start_lr``
to ``end_lr``, one step per batch; record the loss, smooth it with a bias-corrected exponential
moving average, and stop once the smoothed loss exceeds ``diverge`` times its minimum. The curve
falls where the rate is large enough to learn and explodes where it is too large; a good rate lies
on the falling part. The model and optimizer are restored afterwards, so training starts from the
same weights as if the test never ran.

Example:
    >>> _ = torch.manual_seed(0)
    >>> x = torch.randn(256, 4); y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0])
    >>> model = nn.Linear(4, 1); opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> batches = [(x[i:i + 32], y[i:i + 32, None]) for i in range(0, 256, 32)]
    >>> result = lr_range_test(model, opt, nn.MSELoss(), batches, start_lr=1e-4, end_lr=10, steps=50)
    >>> 1e-4 < result.suggestion < 10, result.diverged
    (True, True)
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn

from dlbook.timing import forever
from dlbook.train.device import autocast, autocast_dtype, call_model, to_device


@dataclass
class LRRangeResult:
    """What a range test saw: one entry per step taken.

    ``suggestion`` is :attr:`min_lr_div10`, the rate at the smoothed loss's minimum divided by 10.
    The minimum is a robust landmark: the smoothing lags the raw loss, so the minimum sits close to
    where training starts to fail, and a tenth of it is safely on the falling part (Smith's "one
    order of magnitude below the maximum"; fastai's ``lr_min``). :attr:`steepest_lr`, the rate where
    the smoothed loss falls fastest per decade, is the other classic choice; on a short or noisy
    curve it can land on a bump, which is why it is not the default.
    """

    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)
    diverged: bool = False  # stopped because the smoothed loss exceeded diverge x its minimum (or went NaN)

    @property
    def min_lr_div10(self) -> float:
        """The learning rate at the smoothed loss's minimum, divided by 10."""
        self._check_steps()
        return self.lrs[int(np.argmin(self.smoothed))] / 10

    @property
    def steepest_lr(self) -> float:
        """The learning rate where the smoothed loss falls fastest against log10(lr), before its minimum.

        The first tenth of the steps is skipped: there the average holds only a few batches and its
        noise would pass for a slope.
        """
        self._check_steps()
        start, stop = len(self.lrs) // 10, int(np.argmin(self.smoothed)) + 1
        if stop - start < 2:
            return self.lrs[stop - 1]
        slope = np.gradient(np.asarray(self.smoothed[start:stop]), np.log10(self.lrs[start:stop]))
        return self.lrs[start + int(np.argmin(slope))]

    @property
    def suggestion(self) -> float:
        """The suggested learning rate, :attr:`min_lr_div10` (see the class docstring for why)."""
        return self.min_lr_div10

    def _check_steps(self) -> None:
        if len(self.lrs) < 2:
            raise ValueError(f"the test took {len(self.lrs)} step(s), too few for a suggestion: lower start_lr "
                             "(the loss diverged at once) or check the loss")

    def plot(self, ax=None):
        """Loss against learning rate (log scale): raw in light grey, smoothed, and both suggestions."""
        import matplotlib.pyplot as plt

        ax = ax if ax is not None else plt.subplots(figsize=(6, 3.5))[1]
        ax.plot(self.lrs, self.losses, color="0.8", lw=1, label="loss")
        ax.plot(self.lrs, self.smoothed, color="C0", lw=2, label="smoothed loss")
        if len(self.lrs) >= 2:
            ax.axvline(self.suggestion, color="C2", ls="--", label=f"min / 10 = {self.suggestion:.2g}")
            ax.axvline(self.steepest_lr, color="C1", ls=":", label=f"steepest = {self.steepest_lr:.2g}")
        ax.set(xscale="log", xlabel="learning rate", ylabel="training loss")
        if self.smoothed:                             # the raw loss explodes at the end; the smoothed one is capped
            ax.set_ylim(top=1.1 * max(self.smoothed))
        ax.legend(fontsize="small")
        return ax


def lr_range_test(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: Callable, loader: Iterable,
                  *, start_lr: float = 1e-7, end_lr: float = 10.0, steps: int = 100, smooth: float = 0.98,
                  diverge: float = 4.0, device: torch.device | str | None = None,
                  precision: str = "fp32") -> LRRangeResult:
    """Raise the learning rate geometrically each batch and record the loss; restore the model and optimizer.

    Every parameter group gets the same rate ``start_lr * (end_lr / start_lr) ** (i / (steps - 1))`` at
    step i. A loader shorter than ``steps`` batches starts again. Afterwards the model's weights and
    buffers, gradients, train/eval modes, the optimizer's state and rates and torch's global RNG are exactly as
    before (the loader's own state, such as a shuffle epoch, is not).

    Args:
        model: the model, already on ``device`` or moved there (it stays there).
        optimizer: an optimizer over the model's parameters; momentum and Adam state count.
        loss_fn: ``loss_fn(outputs, targets)`` -> scalar tensor.
        loader: batches ``(inputs, targets)``; a tuple ``inputs`` is called as ``model(*inputs)``.
        start_lr, end_lr: the range, ``0 < start_lr < end_lr``.
        steps: batches at most (the test stops early when the loss diverges), >= 2.
        smooth: weight of the moving average of the loss, in [0, 1); 0 keeps the raw loss.
        diverge: stop when the smoothed loss exceeds this multiple of its minimum, > 1.
        device: where to run; default the device of the model's parameters.
        precision: ``"auto"``, ``"bf16"``, ``"fp16"`` or ``"fp32"`` (one path with the Trainer).

    Returns:
        :class:`LRRangeResult` with ``lrs``, ``losses``, ``smoothed``, ``suggestion`` and ``plot()``.

    Example:
        >>> model = nn.Linear(2, 1); opt = torch.optim.Adam(model.parameters())
        >>> data = [(torch.randn(8, 2), torch.randn(8, 1))] * 2
        >>> r = lr_range_test(model, opt, nn.MSELoss(), data, start_lr=1e-3, end_lr=1e-1, steps=5)
        >>> len(r.lrs), [round(lr, 4) for lr in r.lrs[:2]], opt.param_groups[0]["lr"]
        (5, [0.001, 0.0032], 0.001)
    """
    if not (isinstance(start_lr, (int, float)) and isinstance(end_lr, (int, float)) and 0 < start_lr < end_lr):
        raise ValueError(f"start_lr={start_lr!r}, end_lr={end_lr!r}; need 0 < start_lr < end_lr (e.g. 1e-7 and 10)")
    if not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps={steps!r}; the test needs an int of at least 2 steps (100 is typical)")
    if not 0.0 <= smooth < 1.0:
        raise ValueError(f"smooth={smooth!r}; it must be in [0, 1) (0.98 is typical, 0 disables smoothing)")
    if not diverge > 1.0:
        raise ValueError(f"diverge={diverge!r}; it must be > 1 (the test stops when the smoothed loss exceeds "
                         "diverge x its minimum)")
    params = list(model.parameters())
    if not params:
        raise ValueError("the model has no parameters, so there is no learning rate to test")
    device = torch.device(device) if device is not None else params[0].device
    model.to(device)
    amp_dtype = autocast_dtype(device, precision)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)

    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    saved_grads = [None if p.grad is None else p.grad.detach().clone() for p in params]
    saved_modes = [m.training for m in model.modules()]
    saved_rng = torch.get_rng_state()
    saved_cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    result, avg, best = LRRangeResult(), 0.0, math.inf
    try:
        model.train()
        batches = forever(loader)
        for i in range(steps):
            lr = start_lr * (end_lr / start_lr) ** (i / (steps - 1))
            for group in optimizer.param_groups:
                group["lr"] = lr
            inputs, targets = next(batches)
            inputs, targets = to_device(inputs, device), to_device(targets, device)
            with autocast(device, amp_dtype):
                outputs = call_model(model, inputs)
                loss = loss_fn(outputs, targets)
            value = float(loss.detach())
            if not math.isfinite(value):
                result.diverged = True
                break
            avg = smooth * avg + (1 - smooth) * value
            smoothed = avg / (1 - smooth ** (i + 1))              # bias correction: the average starts at 0
            result.lrs.append(lr)
            result.losses.append(value)
            result.smoothed.append(smoothed)
            best = min(best, smoothed)
            if smoothed > diverge * best:
                result.diverged = True
                break
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
    finally:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_optimizer)
        for p, grad in zip(params, saved_grads):
            p.grad = grad
        for m, mode in zip(model.modules(), saved_modes):
            m.training = mode
        torch.set_rng_state(saved_rng)
        if saved_cuda_rng is not None:
            torch.cuda.set_rng_state_all(saved_cuda_rng)
    return result
