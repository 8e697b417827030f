"""Checks for the exercises of chapter 2.3 (training and evaluation).

* :func:`check_confusion_metrics`: accuracy and macro precision, recall and F1 from a confusion
  matrix, checked against scikit-learn on the labels the matrix counts.
* :func:`check_ece`: expected calibration error with 15 bins, checked against
  ``dlbook.calibration.expected_calibration_error``.
* :func:`check_memory_per_gpu`: the training state per GPU under DDP and FSDP (ZeRO-3), checked
  against chapter 2.3's formula (16 bytes per parameter: bf16 weights and gradients, fp32 master
  weights and Adam's two moments).

Example:
    >>> from dlbook.exercises import report
    >>> report(check_memory_per_gpu(lambda n_params, n_gpus: (16 * n_params, 16 * n_params / n_gpus)))
    2.3 exercise 3 (DDP vs FSDP memory): correct
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from dlbook.exercises import Check, Problem, attempt, run_check

KEYS = ("accuracy", "precision", "recall", "f1")
BYTES_PER_PARAM = {"bf16 weights": 2, "bf16 gradients": 2, "fp32 master weights": 4,
                   "Adam first moment (fp32)": 4, "Adam second moment (fp32)": 4}

CONFUSION = np.array([[50, 3, 7], [10, 20, 0], [4, 6, 12]])   # rows: true class, columns: predicted


def _labels_from(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    true = np.concatenate([np.full(int(cm[i].sum()), i) for i in range(len(cm))])
    pred = np.concatenate([np.repeat(np.arange(len(cm)), cm[i]) for i in range(len(cm))])
    return true, pred


def check_confusion_metrics(fn: Callable[[np.ndarray], dict]) -> Check:
    """Check ``fn(cm) -> {"accuracy", "precision", "recall", "f1"}`` (macro averages) against scikit-learn.

    ``cm[i, j]`` counts the examples of true class ``i`` predicted as ``j``.

    Example:
        >>> check_confusion_metrics(lambda cm: {"accuracy": 0.5, "precision": 0.5, "recall": 0.5, "f1": 0.5}).passed
        False
    """
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    def body(problems: list[Problem]) -> None:
        true, pred = _labels_from(CONFUSION)
        p, r, f, _ = precision_recall_fscore_support(true, pred, average="macro", zero_division=0)
        expected = {"accuracy": accuracy_score(true, pred), "precision": p, "recall": r, "f1": f}
        got = attempt(fn, CONFUSION.copy(), what="your function on a 3-class confusion matrix")
        if not isinstance(got, dict) or set(KEYS) - set(got):
            problems.append(Problem(f"returns {type(got).__name__} {sorted(got) if isinstance(got, dict) else ''}, "
                                    f"expected a dict with keys {list(KEYS)}"))
            return
        cm = CONFUSION
        swapped = {"precision": float(np.mean(np.diag(cm) / cm.sum(1))), "recall": float(np.mean(np.diag(cm) / cm.sum(0)))}
        for key in KEYS:
            value = float(got[key])
            if abs(value - expected[key]) <= 1e-6:
                continue
            fix = {"accuracy": "the diagonal's sum over the matrix's sum",
                   "precision": "per class: diagonal / column sum (all predicted as that class), then the mean",
                   "recall": "per class: diagonal / row sum (all truly of that class), then the mean",
                   "f1": "per class 2PR / (P + R), then the mean (macro F1 is not 2PR/(P+R) of the macro P and R)"}[key]
            if key in swapped and abs(value - swapped[key]) <= 1e-6:
                fix = "rows and columns are swapped: rows are the true class, columns the prediction; " + fix
            problems.append(Problem(f"{key} is {value:.4f}, scikit-learn gives {expected[key]:.4f}", fix))

    return run_check("2.3 exercise 1 (metrics from a confusion matrix)", body)


def check_ece(fn: Callable[[torch.Tensor, torch.Tensor], float], probs: torch.Tensor, targets: torch.Tensor) -> Check:
    """Check ``fn(probs, targets) -> float``, the 15-bin ECE, against ``dlbook.calibration``.

    Example:
        >>> probs = torch.softmax(torch.randn(100, 3, generator=torch.Generator().manual_seed(0)), 1)
        >>> targets = torch.randint(0, 3, (100,), generator=torch.Generator().manual_seed(1))
        >>> check_ece(lambda p, t: 0.0, probs, targets).passed
        False
    """
    from dlbook.calibration import expected_calibration_error

    if not isinstance(probs, torch.Tensor) or probs.dim() != 2 or len(probs) != len(targets):
        raise ValueError(f"check_ece needs probs of shape (N, K) and N targets, got "
                         f"{tuple(getattr(probs, 'shape', ()))} and {len(targets)} targets")

    def body(problems: list[Problem]) -> None:
        got = attempt(fn, probs.clone(), targets.clone(), what=f"your function on {len(probs)} predictions")
        try:
            value = float(got)
        except (TypeError, ValueError):
            problems.append(Problem(f"returns a {type(got).__name__}, expected one number"))
            return
        expected = expected_calibration_error(probs, targets, n_bins=15)
        if abs(value - expected) <= 1e-5:
            return
        conf, pred = probs.max(1)
        acc = (pred == targets).float()
        fix = ("15 equal bins of the confidence (the top probability) on [0, 1]; in each bin |accuracy - mean "
               "confidence|, weighted by the bin's share of the examples, summed")
        if abs(value - abs(acc.mean() - conf.mean()).item()) <= 1e-5:
            fix = "that is one bin for all examples: " + fix
        elif abs(value - 100 * expected) <= 1e-3:
            fix = "that is in percent: return a fraction"
        problems.append(Problem(f"your ECE is {value:.4f}, dlbook.calibration gives {expected:.4f}", fix))

    return run_check("2.3 exercise 2 (expected calibration error)", body)


def check_memory_per_gpu(fn: Callable[[float, int], tuple[float, float]]) -> Check:
    """Check ``fn(n_params, n_gpus) -> (ddp_bytes, fsdp_bytes)`` per GPU, chapter 2.3's mixed-precision Adam.

    Example:
        >>> check_memory_per_gpu(lambda n, g: (4 * n, 4 * n / g)).passed
        False
    """
    per_param = sum(BYTES_PER_PARAM.values())

    def body(problems: list[Problem]) -> None:
        for n_params, n_gpus in ((7e9, 8), (1.3e9, 4), (70e9, 64), (9_231_114, 2)):
            got = attempt(fn, n_params, n_gpus, what=f"your function for {n_params:.3g} parameters on {n_gpus} GPUs")
            if not isinstance(got, tuple) or len(got) != 2:
                problems.append(Problem(f"returns a {type(got).__name__}, expected a pair (ddp_bytes, fsdp_bytes)"))
                return
            ddp, fsdp = float(got[0]), float(got[1])
            want_ddp, want_fsdp = per_param * n_params, per_param * n_params / n_gpus
            where = f"for {n_params:.3g} parameters on {n_gpus} GPUs"
            if not np.isclose(ddp, want_ddp, rtol=1e-6):
                fix = f"DDP keeps the whole state on every GPU: {per_param} bytes per parameter ({BYTES_PER_PARAM})"
                if np.isclose(ddp, want_ddp / n_gpus, rtol=1e-6):
                    fix = "DDP does not shard: every GPU holds a full copy; " + fix
                problems.append(Problem(f"DDP: {ddp:.4g} bytes {where}, expected {want_ddp:.4g}", fix))
            if not np.isclose(fsdp, want_fsdp, rtol=1e-6):
                fix = "FSDP (ZeRO-3) shards weights, gradients and optimizer state: the whole state / n_gpus"
                if np.isclose(fsdp, 2 * n_params + 14 * n_params / n_gpus, rtol=1e-6):
                    fix = "that is ZeRO-2 (weights replicated); " + fix
                problems.append(Problem(f"FSDP: {fsdp:.4g} bytes {where}, expected {want_fsdp:.4g}", fix))
            if problems:
                return

    return run_check("2.3 exercise 3 (DDP vs FSDP memory)", body)
