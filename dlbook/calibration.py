"""Calibration: does a confidence of 0.9 mean right nine times in ten? ECE, reliability bins, temperature scaling.

Paper: Guo, Pleiss, Sun & Weinberger, "On Calibration of Modern Neural Networks", ICML 2017.

* :func:`reliability_bins` sorts the predictions into ``n_bins`` **equal-width** bins of
  confidence (the top softmax probability) on [0, 1], right-closed: bin ``b`` holds
  ``b / n < confidence <= (b + 1) / n`` (a confidence of exactly 0 goes to the first bin).
  Per bin it gives the count, the mean confidence and the accuracy; a reliability
  diagram draws accuracy against confidence (:func:`dlbook.viz.plot_reliability_diagram`).
* :func:`expected_calibration_error` is ``sum_b (n_b / N) |accuracy_b - confidence_b|``
  over those bins (15 by default, as in Guo et al.). Its value depends on the binning:
  always state ``n_bins`` next to an ECE.
* :func:`fit_temperature` fits one temperature ``T`` on held-out *validation* logits by
  minimising the negative log-likelihood of ``softmax(logits / T)`` over ``log T`` (a
  bounded 1-D search). Dividing by ``T > 0`` never changes the arg-max, so accuracy is
  unchanged; only the confidences move. Compute the logits with the model in eval mode
  (:func:`dlbook.train.predict` does), so dropout and BatchNorm behave as at test time.

Example:
    >>> import torch
    >>> probs = torch.tensor([[0.9, 0.1], [0.55, 0.45], [0.3, 0.7]])
    >>> round(expected_calibration_error(probs, torch.tensor([0, 1, 1]), n_bins=5), 4)
    0.3167
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

#: The interval searched for the temperature, [1 / 100, 100], wider than any network needs.
T_BOUNDS = (1e-2, 1e2)


@dataclass(frozen=True)
class ReliabilityBins:
    """Per-bin counts, mean confidence and accuracy of equal-width confidence bins (NaN where a bin is empty)."""

    edges: Tensor  # (n_bins + 1,) from 0 to 1
    counts: Tensor  # (n_bins,) int64
    confidence: Tensor  # (n_bins,) float64 mean top probability in the bin
    accuracy: Tensor  # (n_bins,) float64 share of correct predictions in the bin

    @property
    def ece(self) -> float:
        """The expected calibration error, the count-weighted mean gap ``|accuracy - confidence|`` over the bins."""
        filled = self.counts > 0
        gaps = (self.accuracy[filled] - self.confidence[filled]).abs()
        return (gaps * self.counts[filled].double()).sum().item() / self.counts.sum().item()

    @property
    def mce(self) -> float:
        """The maximum calibration error, the largest gap over the non-empty bins."""
        filled = self.counts > 0
        return (self.accuracy[filled] - self.confidence[filled]).abs().max().item()


def _check_probs(probs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    probs = torch.as_tensor(probs).detach().cpu().double()
    targets = torch.as_tensor(targets).detach().cpu().long().reshape(-1)
    if probs.dim() != 2:
        raise ValueError(f"probs must be (N, K) class probabilities, got shape {tuple(probs.shape)}")
    if probs.shape[0] != targets.shape[0]:
        raise ValueError(f"{probs.shape[0]} rows of probabilities but {targets.shape[0]} targets")
    if probs.shape[0] == 0:
        raise ValueError("no examples: calibration needs at least one prediction")
    if not torch.isfinite(probs).all() or probs.min() < 0 or probs.max() > 1 or \
            (probs.sum(1) - 1).abs().max() > 1e-3:
        raise ValueError("each row of probs must hold probabilities that sum to 1 (these look like logits or "
                         "scores); pass logits.softmax(dim=1)")
    if int(targets.min()) < 0 or int(targets.max()) >= probs.shape[1]:
        raise ValueError(f"targets must lie in [0, {probs.shape[1] - 1}] for {probs.shape[1]} classes")
    return probs, targets


def _check_n_bins(n_bins: int) -> None:
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins={n_bins!r}; use a positive int (15 is the usual choice, after Guo et al. 2017)")


def reliability_bins(probs: Tensor, targets: Tensor, n_bins: int = 15) -> ReliabilityBins:
    """Sort predictions into ``n_bins`` equal-width, right-closed confidence bins on [0, 1].

    Args:
        probs: ``(N, K)`` class probabilities (``logits.softmax(dim=1)``).
        targets: ``(N,)`` integer labels.
        n_bins: the number of bins.

    Returns:
        A :class:`ReliabilityBins` (its ``.ece`` is :func:`expected_calibration_error`).

    Example:
        >>> bins = reliability_bins(torch.tensor([[0.9, 0.1], [0.6, 0.4]]), torch.tensor([0, 1]), n_bins=2)
        >>> bins.counts.tolist(), bins.accuracy.tolist()
        ([0, 2], [nan, 0.5])
    """
    _check_n_bins(n_bins)
    probs, targets = _check_probs(probs, targets)
    confidence, predicted = probs.max(dim=1)
    correct = (predicted == targets).double()
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    index = torch.bucketize(confidence, edges[1:-1], right=False)  # edges[b] < c <= edges[b + 1]
    counts = torch.bincount(index, minlength=n_bins)
    sums = torch.zeros(n_bins, dtype=torch.float64)
    conf_sum = sums.index_add(0, index, confidence)
    correct_sum = sums.index_add(0, index, correct)
    denom = counts.double()
    nan = torch.full_like(denom, float("nan"))
    return ReliabilityBins(edges=edges, counts=counts,
                           confidence=torch.where(counts > 0, conf_sum / denom.clamp(min=1), nan),
                           accuracy=torch.where(counts > 0, correct_sum / denom.clamp(min=1), nan))


def expected_calibration_error(probs: Tensor, targets: Tensor, n_bins: int = 15) -> float:
    """ECE with ``n_bins`` equal-width confidence bins: ``sum_b (n_b / N) |accuracy_b - confidence_b|``.

    Args:
        probs: ``(N, K)`` class probabilities; targets: ``(N,)`` labels; n_bins: bins on [0, 1].

    Example:
        >>> probs = torch.tensor([[0.9, 0.1], [0.55, 0.45], [0.3, 0.7]])
        >>> round(expected_calibration_error(probs, torch.tensor([0, 1, 1]), n_bins=5), 4)
        0.3167
    """
    return reliability_bins(probs, targets, n_bins).ece


def fit_temperature(logits: Tensor, targets: Tensor) -> float:
    """The temperature ``T`` that minimises the NLL of ``softmax(logits / T)`` on these (validation) logits.

    A bounded 1-D search (Brent's method in ``log T`` over :data:`T_BOUNDS`): the NLL is
    convex in ``1 / T``, so the search finds the global minimum. ``T > 1`` softens an
    over-confident model, ``T < 1`` sharpens an under-confident one. Fit on the
    validation split, then report calibration on the test split with ``logits / T``.

    Args:
        logits: ``(N, K)`` raw scores of the model in eval mode (not probabilities).
        targets: ``(N,)`` integer labels.

    Returns:
        ``T`` as a float (with a warning if it reached a bound of :data:`T_BOUNDS`, e.g. when
        nearly every prediction is wrong).

    Raises:
        ValueError: for bad shapes, for probabilities instead of logits, or when every prediction
            is correct, since the NLL then falls without end as ``T`` goes to 0.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> true = 2 * torch.randn(2000, 3, generator=g)
        >>> labels = torch.multinomial(true.softmax(1), 1, generator=g)[:, 0]
        >>> round(fit_temperature(3 * true, labels), 1)   # logits three times too sharp
        3.0
    """
    from scipy.optimize import minimize_scalar

    logits = torch.as_tensor(logits).detach().cpu().double()
    if logits.dim() != 2 or logits.shape[1] < 2:
        raise ValueError(f"logits must be (N, K) with K >= 2 classes, got shape {tuple(logits.shape)}")
    if not torch.isfinite(logits).all():
        raise ValueError("logits hold NaN or inf; check the model's outputs")
    try:
        _check_probs(logits, targets)
    except ValueError:
        pass
    else:
        raise ValueError("these rows are probabilities (in [0, 1], summing to 1), not logits: temperature scaling "
                         "divides logits; pass the model's raw outputs")
    targets = torch.as_tensor(targets).detach().cpu().long().reshape(-1)
    if targets.shape[0] != logits.shape[0] or targets.numel() == 0:
        raise ValueError(f"{logits.shape[0]} rows of logits but {targets.shape[0]} targets (need at least one)")
    if int(targets.min()) < 0 or int(targets.max()) >= logits.shape[1]:
        raise ValueError(f"targets must lie in [0, {logits.shape[1] - 1}] for {logits.shape[1]} classes")

    if bool((logits.argmax(1) == targets).all()):
        raise ValueError("every prediction in these logits is correct, so the NLL keeps falling as T -> 0 and no "
                         "temperature minimises it; fit on a larger validation split that holds some errors")

    def nll(log_t: float) -> float:
        return torch.nn.functional.cross_entropy(logits / math.exp(log_t), targets).item()

    lo, hi = math.log(T_BOUNDS[0]), math.log(T_BOUNDS[1])
    result = minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-6})
    if min(result.x - lo, hi - result.x) < 1e-3:
        warnings.warn(f"the fitted temperature {math.exp(result.x):.3g} reached the search bound {T_BOUNDS}: the "
                      "validation logits separate the classes perfectly (or carry no signal), so the NLL has no "
                      "interior minimum; use a larger validation set", stacklevel=2)
    return math.exp(result.x)


__all__ = ["ReliabilityBins", "T_BOUNDS", "expected_calibration_error", "fit_temperature", "reliability_bins"]
