"""Checks for the exercises of chapter 1 (background: the whole loop once).

* :func:`check_cross_entropy`: the loss every classifier in the book trains with, from logits,
  checked against ``torch.nn.functional.cross_entropy``, with logits large enough to overflow a
  naive softmax.
* :func:`check_gd_step`: one gradient-descent step of linear regression by hand, checked against
  autograd and ``torch.optim.SGD`` on the same data.
* :func:`check_evaluate`: the "find the bug" exercise on an evaluation loop (training mode left on,
  batch accuracies averaged although the last batch is smaller), checked against
  ``dlbook.train.predict``.

Example:
    >>> import torch.nn.functional as F
    >>> from dlbook.exercises import report
    >>> report(check_cross_entropy(F.cross_entropy))
    1 exercise 1 (cross-entropy from logits): correct
"""

from __future__ import annotations

import copy
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from dlbook.data import TensorLoader
from dlbook.exercises import Check, Problem, attempt, run_check


def check_cross_entropy(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Check:
    """Check ``fn(logits, targets)``: the mean negative log-probability of the true classes.

    Logits ``(B, C)``, targets ``(B,)`` of class indices. Compared with ``F.cross_entropy`` on small
    logits and on logits of size 1000, where ``exp`` overflows unless the maximum is subtracted first.
    """

    def body(problems: list[Problem]) -> None:
        g = torch.Generator().manual_seed(0)
        for what, scale in (("ordinary logits", 1.0), ("logits of size 1000", 1000.0)):
            logits = torch.randn(16, 10, generator=g, dtype=torch.float64) * scale
            targets = torch.randint(0, 10, (16,), generator=g)
            want = F.cross_entropy(logits, targets)
            got = attempt(fn, logits.clone(), targets.clone(), what=f"cross_entropy({what})")
            got = torch.as_tensor(got, dtype=torch.float64)
            if got.numel() != 1:
                problems.append(Problem(f"{what}: returned shape {tuple(got.shape)}, expected one number",
                                        "average the per-example losses: .mean()"))
                return
            if not torch.isfinite(got):
                problems.append(Problem(f"{what}: returned {got.item()}: exp overflowed",
                                        "subtract each row's maximum before exp (log-sum-exp): "
                                        "logits - logits.max(dim=1, keepdim=True).values"))
                return
            if torch.isclose(got, want * len(targets), rtol=1e-6):
                problems.append(Problem(f"{what}: returned the sum over the batch, {got.item():.4f}, not the mean "
                                        f"{want.item():.4f}", "divide by the batch size, or use .mean()"))
                return
            if not torch.isclose(got, want, rtol=1e-6, atol=1e-9):
                problems.append(Problem(f"{what}: returned {got.item():.6g}, expected {want.item():.6g}",
                                        "-(log_softmax(logits)[range(B), targets]).mean()"))
                return

    return run_check("1 exercise 1 (cross-entropy from logits)", body)


def check_gd_step(fn: Callable[..., tuple[torch.Tensor, torch.Tensor]]) -> Check:
    """Check ``fn(w, b, x, y, lr)``: new ``(w, b)`` after one gradient-descent step on the mean squared error.

    The model is ``x @ w + b``, ``x`` of shape ``(N, D)``, ``w`` ``(D,)``, ``b`` a scalar tensor; the loss
    ``((x @ w + b - y) ** 2).mean()``. Compared with autograd and ``torch.optim.SGD`` from the same values.
    """

    def body(problems: list[Problem]) -> None:
        g = torch.Generator().manual_seed(1)
        x = torch.randn(40, 3, generator=g, dtype=torch.float64)
        y = x @ torch.tensor([1.5, -2.0, 0.5], dtype=torch.float64) + 0.3
        w0, b0 = torch.zeros(3, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)
        w, b = w0.clone().requires_grad_(), b0.clone().requires_grad_()
        opt = torch.optim.SGD([w, b], lr=0.1)
        ((x @ w + b - y) ** 2).mean().backward()
        opt.step()
        out = attempt(fn, w0.clone(), b0.clone(), x.clone(), y.clone(), 0.1, what="gd_step(w, b, x, y, lr=0.1)")
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            problems.append(Problem(f"it returned a {type(out).__name__}, expected the pair (new_w, new_b)"))
            return
        new_w, new_b = (torch.as_tensor(t, dtype=torch.float64).detach() for t in out)
        if new_w.shape != w.shape or new_b.numel() != 1:
            problems.append(Problem(f"new_w has shape {tuple(new_w.shape)} and new_b {tuple(new_b.shape)}; "
                                    "expected (3,) and one number"))
            return
        if torch.allclose(new_w, w.detach(), atol=1e-10) and torch.isclose(new_b.reshape(()), b.detach(), atol=1e-10):
            return
        step_w, want_w = new_w - w0, w.detach() - w0
        if torch.allclose(step_w, -want_w, atol=1e-10):
            problems.append(Problem("the step goes uphill: the parameters moved along the gradient",
                                    "subtract lr * gradient"))
        elif torch.allclose(step_w, want_w / 2, atol=1e-10):
            problems.append(Problem("the step is half as long as it should be: the derivative of the square "
                                    "brings a factor 2", "grad_w = 2 * x.T @ (x @ w + b - y) / N"))
        elif torch.allclose(step_w, want_w * len(x), atol=1e-8):
            problems.append(Problem("the step is N times too long: the loss is the mean, not the sum",
                                    "divide the gradient by N = len(x)"))
        else:
            problems.append(Problem(f"new_w = {new_w.tolist()}, expected {w.detach().tolist()}",
                                    "grad_w = 2 * x.T @ (x @ w + b - y) / N, grad_b = 2 * (x @ w + b - y).mean()"))

    return run_check("1 exercise 2 (one gradient-descent step)", body)


def _probe_model() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(6, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 3))


def check_evaluate(fn: Callable[[nn.Module, object], float]) -> Check:
    """Check ``fn(model, loader)``: the accuracy of ``model`` over every example the loader yields.

    The model has batch normalisation and dropout, and is handed over in training mode; the loader's
    last batch is smaller than the others. The answer must be the evaluation-mode accuracy over all
    examples, computed without autograd; a forward hook sees the mode and autograd at every call.
    """
    from dlbook.train import predict

    def body(problems: list[Problem]) -> None:
        model = _probe_model()
        g = torch.Generator().manual_seed(4)
        x = torch.randn(20, 6, generator=g)
        model.train()
        for _ in range(5):  # running statistics unlike any one batch's
            model(torch.randn(32, 6, generator=g) * 3 + 1)
        with torch.no_grad():
            y = model.eval()(x).argmax(1)
            y[::3] = (y[::3] + 1) % 3  # a third wrong, spread over the batches
        loader = TensorLoader(x, y, batch_size=8)  # 20 examples: the last batch holds 4, as real ones often do
        outputs, targets = predict(copy.deepcopy(model), loader, device="cpu", precision="fp32")
        want = int((outputs.argmax(1) == targets).sum()) / len(targets)
        m = copy.deepcopy(model).train()
        seen: list[tuple[bool, bool]] = []  # (training mode, autograd on) at every forward call
        m.register_forward_pre_hook(lambda module, args: seen.append((module.training, torch.is_grad_enabled())))
        got = attempt(fn, m, loader, what="evaluate(model, loader)")
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = float(got)
        if not isinstance(got, (int, float)):
            problems.append(Problem(f"it returned a {type(got).__name__}, expected the accuracy as a number"))
            return
        if not seen:
            problems.append(Problem("the model was never called", "predict every batch the loader yields"))
            return
        if any(training for training, _ in seen):
            problems.append(Problem("the model ran in training mode: dropout dropped units at random and batch "
                                    "normalisation used each batch's own statistics, so the accuracy changes from "
                                    "call to call", "call model.eval() before predicting"))
        if any(grad for _, grad in seen):
            problems.append(Problem("the forward passes ran with autograd on, storing every activation for a "
                                    "backward pass that never comes", "wrap the loop in torch.no_grad()"))
        if abs(got - want) < 1e-6:
            return
        with torch.no_grad():
            batch_means = [float((model.eval()(xb).argmax(1) == yb).float().mean()) for xb, yb in loader]
        if abs(got - sum(batch_means) / len(batch_means)) < 1e-6:
            problems.append(Problem(f"{got:.4f} is the mean of the batch accuracies, but the last batch holds 4 "
                                    f"examples, not 8, so each of them counts double; the accuracy over all 20 is "
                                    f"{want:.4f}", "count the correct predictions and the examples over all batches, "
                                    "then divide"))
        elif not problems:
            problems.append(Problem(f"returned {got:.4f}, expected {want:.4f}",
                                    "model.eval(), torch.no_grad(), then correct / total over all batches"))

    return run_check("1 exercise 3 (an evaluation loop)", body)


__all__ = ["check_cross_entropy", "check_evaluate", "check_gd_step"]
