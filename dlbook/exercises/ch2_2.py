"""Checks for the exercises of chapter 2.2 (model design and optimisation).

* :func:`check_lr_suggestion`: the learning rate a range test suggests from its smoothed loss
  curve, checked against ``dlbook.train.lr_finder.LRRangeResult.suggestion``.
* :func:`check_adamw_step`: one step of AdamW (decoupled weight decay), checked against
  ``torch.optim.AdamW``; Adam with L2 in the gradient (``torch.optim.Adam(weight_decay=...)``) is named.
* :func:`check_conv_params`: the parameter count of a convolution, checked against ``nn.Conv2d``.

Example:
    >>> from dlbook.exercises import report
    >>> report(check_conv_params(lambda c_in, c_out, k, bias=True, groups=1:
    ...        c_out * (c_in // groups) * k * k + (c_out if bias else 0)))
    2.2 exercise 3 (parameters of a convolution): correct
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from dlbook.exercises import Check, Problem, attempt, run_check


def range_test_curve(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A range test's learning rates (1e-6 to 1, log-spaced) and a smoothed loss that falls, then blows up."""
    rng = np.random.default_rng(seed)
    lrs = np.logspace(-6, 0, n)
    x = np.log10(lrs)
    loss = 2.3 - 1.5 / (1 + np.exp(-2.5 * (x + 3.5))) + np.where(x > -1.6, 4 * (x + 1.6) ** 2, 0.0)
    return lrs, loss + rng.normal(0, 0.01, n)


def check_lr_suggestion(fn: Callable[[np.ndarray, np.ndarray], float]) -> Check:
    """Check ``fn(lrs, smoothed_losses) -> lr``: the rate at the smoothed loss's minimum divided by 10.

    Example:
        >>> check_lr_suggestion(lambda lrs, loss: float(lrs[np.argmin(loss)])).passed
        False
    """
    from dlbook.train.lr_finder import LRRangeResult

    def body(problems: list[Problem]) -> None:
        for seed in (0, 1):
            lrs, loss = range_test_curve(seed=seed)
            got = attempt(fn, lrs.copy(), loss.copy(), what="your function on a range test's curve")
            try:
                value = float(got)
            except (TypeError, ValueError):
                problems.append(Problem(f"returns a {type(got).__name__}, expected one learning rate"))
                return
            expected = LRRangeResult(lrs=list(lrs), losses=list(loss), smoothed=list(loss)).suggestion
            if np.isclose(value, expected, rtol=1e-9):
                continue
            at_min = float(lrs[np.argmin(loss)])
            fix = "take the learning rate where the smoothed loss is lowest and divide it by 10"
            if np.isclose(value, at_min):
                fix = ("that is the minimum itself, where training already starts to fail: divide it by 10")
            elif np.isclose(value, float(lrs[np.argmax(loss)]) / 10) or np.isclose(value, float(lrs[-1]) / 10):
                fix = "use the minimum of the loss (np.argmin), not its maximum or the last step; " + fix
            problems.append(Problem(f"suggests {value:.3g}; dlbook's range test suggests {expected:.3g}", fix))
            return

    return run_check("2.2 exercise 1 (range-test suggestion)", body)


def _reference_step(p: torch.Tensor, g: torch.Tensor, lr: float, weight_decay: float, cls: type) -> torch.Tensor:
    param = nn.Parameter(p.clone())
    opt = cls([param], lr=lr, weight_decay=weight_decay)
    param.grad = g.clone()
    opt.step()
    return param.detach()


def check_adamw_step(fn: Callable[[torch.Tensor, torch.Tensor, float, float], torch.Tensor]) -> Check:
    """Check ``fn(param, grad, lr, weight_decay) -> new_param``: AdamW's first step, against ``torch.optim.AdamW``.

    Betas (0.9, 0.999) and eps 1e-8, PyTorch's defaults; the state starts at zero (the first step).

    Example:
        >>> check_adamw_step(lambda p, g, lr, wd: p - lr * g).passed
        False
    """

    def body(problems: list[Problem]) -> None:
        gen = torch.Generator().manual_seed(0)
        p = torch.randn(50, generator=gen) * 3
        g = torch.randn(50, generator=gen) * 0.01
        for lr, wd in ((1e-3, 0.1), (1e-2, 0.5)):
            got = attempt(fn, p.clone(), g.clone(), lr, wd, what=f"your step with lr={lr}, weight_decay={wd}")
            if not isinstance(got, torch.Tensor) or got.shape != p.shape:
                problems.append(Problem(f"returns {type(got).__name__} {tuple(getattr(got, 'shape', ()))}, "
                                        f"expected a tensor of shape {tuple(p.shape)}"))
                return
            want = _reference_step(p, g, lr, wd, torch.optim.AdamW)
            if torch.allclose(got.detach(), want, rtol=1e-5, atol=1e-7):
                continue
            fix = ("AdamW: p <- p - lr * wd * p (decoupled), then the Adam update lr * m_hat / (sqrt(v_hat) + eps) "
                   "with m_hat = g and v_hat = g**2 on the first step")
            if torch.allclose(got.detach(), _reference_step(p, g, lr, wd, torch.optim.Adam), rtol=1e-5, atol=1e-7):
                fix = ("that is Adam with L2: wd * p was added to the gradient, so Adam's normalisation divides "
                       "it away and every weight shrinks by about lr whatever its size; " + fix)
            problems.append(Problem(f"with lr={lr}, weight_decay={wd} the new weights differ from "
                                    f"torch.optim.AdamW's by up to {(got.detach() - want).abs().max():.3g}", fix))
            return

    return run_check("2.2 exercise 2 (AdamW, one step)", body)


CONV_CASES = [(3, 64, 3, True, 1), (64, 128, 3, False, 1), (1, 6, 5, True, 1), (32, 32, 3, True, 32),
              (16, 32, 1, True, 1), (64, 64, 3, False, 4), (3, 96, 11, True, 1)]


def check_conv_params(fn: Callable[..., int]) -> Check:
    """Check ``fn(c_in, c_out, k, bias=True, groups=1)``: the parameters of ``nn.Conv2d(c_in, c_out, k, ...)``.

    Example:
        >>> check_conv_params(lambda c_in, c_out, k, bias=True, groups=1: c_in * c_out * k * k).passed
        False
    """

    def body(problems: list[Problem]) -> None:
        for c_in, c_out, k, bias, groups in CONV_CASES:
            call = f"conv_params({c_in}, {c_out}, {k}, bias={bias}, groups={groups})"
            got = attempt(fn, c_in, c_out, k, bias=bias, groups=groups, what=call)
            want = sum(p.numel() for p in nn.Conv2d(c_in, c_out, k, bias=bias, groups=groups).parameters())
            if got == want and isinstance(got, (int, np.integer)):
                continue
            fix = "c_out * (c_in // groups) * k * k weights, plus c_out biases when bias=True"
            if got == want - c_out * bias:
                fix = "count the biases too: one per output channel; " + fix
            elif groups > 1 and got == c_out * c_in * k * k + c_out * bias:
                fix = "each group sees only c_in // groups input channels; " + fix
            problems.append(Problem(f"{call} returns {got!r}, nn.Conv2d has {want:,} parameters", fix))
            return

    return run_check("2.2 exercise 3 (parameters of a convolution)", body)
