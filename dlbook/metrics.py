"""Classification metrics on tensors, checked against scikit-learn in the tests.

The label metrics (accuracy, confusion matrix, precision/recall/F1) take ``outputs``
as logits/probabilities ``(N, K)`` or predicted labels ``(N,)``, and integer
``targets`` ``(N,)``. The ranking metrics (:func:`roc_curve`, :func:`precision_recall_curve`,
:func:`roc_auc`, :func:`average_precision`) take *scores*: ``(N,)`` for the positive
class of a binary problem, or ``(N, K)`` probabilities for one-vs-rest curves per class.
Calibration (ECE, reliability diagrams, temperature scaling) is in :mod:`dlbook.calibration`.

Example:
    >>> import torch
    >>> accuracy(torch.tensor([[2.0, 1.0], [0.0, 3.0]]), torch.tensor([0, 0]))
    0.5
"""

from __future__ import annotations

import torch


def _labels(outputs: torch.Tensor) -> torch.Tensor:
    outputs = torch.as_tensor(outputs)
    if outputs.dim() == 2:
        return outputs.argmax(dim=1)
    if outputs.dim() == 1:
        return outputs.long()
    raise ValueError(f"outputs must be (N, K) scores or (N,) labels, got shape {tuple(outputs.shape)}")


def _check(pred: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    targets = torch.as_tensor(targets).long().reshape(-1)
    if pred.shape[0] != targets.shape[0]:
        raise ValueError(f"{pred.shape[0]} predictions but {targets.shape[0]} targets")
    if targets.numel() == 0:
        raise ValueError("no examples: metrics need at least one prediction")
    return targets


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction of predictions equal to the targets."""
    pred = _labels(outputs).cpu()
    targets = _check(pred, targets.cpu())
    return (pred == targets).float().mean().item()


def confusion_matrix(outputs: torch.Tensor, targets: torch.Tensor, num_classes: int | None = None) -> torch.Tensor:
    """``(K, K)`` counts; row = true class, column = predicted class (scikit-learn's convention)."""
    pred = _labels(outputs).cpu()
    targets = _check(pred, torch.as_tensor(targets).cpu())
    if num_classes is None:
        num_classes = int(max(pred.max().item(), targets.max().item())) + 1
        if torch.as_tensor(outputs).dim() == 2:
            num_classes = max(num_classes, torch.as_tensor(outputs).shape[1])
    index = targets * num_classes + pred
    return torch.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


def precision_recall_f1(outputs: torch.Tensor, targets: torch.Tensor, num_classes: int | None = None,
                        average: str | None = "macro") -> dict:
    """Precision, recall and F1 per class (``average=None``) or averaged (``"macro"``, ``"micro"``, ``"weighted"``).

    A class never predicted has precision 0 (and never present, recall 0), as
    scikit-learn does with ``zero_division=0``.

    Returns:
        ``{"precision": ..., "recall": ..., "f1": ..., "support": ...}`` with floats, or
        ``(K,)`` tensors when ``average`` is None.
    """
    cm = confusion_matrix(outputs, targets, num_classes).double()
    tp = cm.diag()
    predicted, support = cm.sum(0), cm.sum(1)
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), torch.zeros_like(tp))
    recall = torch.where(support > 0, tp / support.clamp(min=1), torch.zeros_like(tp))
    denom = precision + recall
    f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp(min=1e-12), torch.zeros_like(tp))
    if average is None:
        return {"precision": precision, "recall": recall, "f1": f1, "support": support.long()}
    if average == "micro":
        p = tp.sum() / cm.sum()
        return {"precision": p.item(), "recall": p.item(), "f1": p.item(), "support": int(cm.sum())}
    if average == "macro":
        weights = torch.full_like(tp, 1.0 / len(tp))
    elif average == "weighted":
        weights = support / support.sum()
    else:
        raise ValueError(f"average={average!r}; use None, 'macro', 'micro' or 'weighted'")
    return {"precision": (precision * weights).sum().item(), "recall": (recall * weights).sum().item(),
            "f1": (f1 * weights).sum().item(), "support": int(support.sum())}


def f1_score(outputs: torch.Tensor, targets: torch.Tensor, average: str = "macro") -> float:
    """Averaged F1 (macro by default), usable as a Trainer metric."""
    return precision_recall_f1(outputs, targets, average=average)["f1"]


def balanced_accuracy(outputs: torch.Tensor, targets: torch.Tensor, num_classes: int | None = None) -> float:
    """The mean of the per-class recalls over the classes present in ``targets`` (scikit-learn's definition).

    Plain accuracy weights every example equally, so a model that always predicts the
    majority class of a 95:5 split scores 0.95; balanced accuracy gives every class the
    same weight, and that model scores 0.5 (chance for two classes).

    Example:
        >>> balanced_accuracy(torch.tensor([0, 0, 0, 0]), torch.tensor([0, 0, 0, 1]))   # always the majority
        0.5
    """
    cm = confusion_matrix(outputs, targets, num_classes).double()
    support = cm.sum(1)
    present = support > 0
    return (cm.diag()[present] / support[present]).mean().item()


def classification_report(outputs, targets, class_names: list[str]):
    """Per-class precision/recall/F1/support as a pandas DataFrame, with macro and weighted rows."""
    import pandas as pd

    per = precision_recall_f1(outputs, targets, num_classes=len(class_names), average=None)
    frame = pd.DataFrame({k: v.numpy() for k, v in per.items()}, index=class_names)
    for avg in ("macro", "weighted"):
        row = precision_recall_f1(outputs, targets, num_classes=len(class_names), average=avg)
        frame.loc[f"{avg} avg"] = [row["precision"], row["recall"], row["f1"], row["support"]]
    frame["support"] = frame["support"].astype(int)
    return frame.round(4)


# -- ranking metrics: ROC and precision-recall ------------------------------------------------------------

def _binary(scores, targets) -> tuple[torch.Tensor, torch.Tensor]:
    """Float64 scores and 0/1 float64 labels, both ``(N,)``, checked."""
    scores = torch.as_tensor(scores).detach().cpu().double()
    targets = torch.as_tensor(targets).detach().cpu()
    if scores.dim() != 1 or targets.dim() != 1 or scores.shape != targets.shape:
        raise ValueError(f"binary scores and targets must both be (N,), got {tuple(scores.shape)} and "
                         f"{tuple(targets.shape)}; for K classes pass (N, K) scores to roc_auc/average_precision")
    if scores.numel() == 0:
        raise ValueError("no examples: a curve needs at least one positive and one negative")
    if not torch.isfinite(scores).all():
        raise ValueError("scores hold NaN or inf; check the model's outputs")
    if not ((targets == 0) | (targets == 1)).all():
        raise ValueError(f"binary targets must be 0 or 1, got values {torch.unique(targets)[:5].tolist()}; for K "
                         "classes pass (N, K) scores to roc_auc/average_precision")
    return scores, targets.double()


def _counts(scores, targets) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """True and false positives when predicting ``score >= t``, at each distinct score ``t`` (descending)."""
    scores, targets = _binary(scores, targets)
    order = torch.sort(scores, descending=True, stable=True).indices
    scores, targets = scores[order], targets[order]
    last_of_tie = torch.cat([torch.nonzero(scores[1:] != scores[:-1]).reshape(-1), torch.tensor([len(scores) - 1])])
    tps = targets.cumsum(0)[last_of_tie]
    fps = (last_of_tie + 1).double() - tps
    return tps, fps, scores[last_of_tie]


def roc_curve(scores: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ROC curve of a binary problem: false- and true-positive rates at every distinct threshold.

    Predicting positive when ``score >= threshold``; thresholds run from ``inf`` (nothing
    positive, the point (0, 0)) down to the lowest score (everything positive, (1, 1)).
    Every point is kept (scikit-learn's ``roc_curve(..., drop_intermediate=False)``).

    Args:
        scores: ``(N,)`` scores of the positive class (logits or probabilities: only their order matters).
        targets: ``(N,)`` labels, 1 for positive and 0 for negative; both must occur.

    Returns:
        ``(fpr, tpr, thresholds)``, float64 ``(M,)`` tensors.

    Example:
        >>> fpr, tpr, thr = roc_curve(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]))
        >>> fpr.tolist(), tpr.tolist()
        ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0])
    """
    tps, fps, thresholds = _counts(scores, targets)
    if tps[-1] == 0 or fps[-1] == 0:
        raise ValueError(f"the targets hold only {'negatives' if tps[-1] == 0 else 'positives'}: a ROC curve needs "
                         "both classes (pick a split that contains both)")
    zero = torch.zeros(1, dtype=torch.float64)
    return (torch.cat([zero, fps / fps[-1]]), torch.cat([zero, tps / tps[-1]]),
            torch.cat([torch.tensor([float("inf")], dtype=torch.float64), thresholds]))


def precision_recall_curve(scores: torch.Tensor, targets: torch.Tensor
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Precision and recall of a binary problem at every distinct threshold (as scikit-learn returns them).

    Thresholds ascend; ``precision[i]``, ``recall[i]`` are those of ``score >= thresholds[i]``,
    and a last point (precision 1, recall 0, no threshold) closes the curve.

    Args:
        scores: ``(N,)`` scores of the positive class.
        targets: ``(N,)`` labels in {0, 1}, with at least one positive.

    Returns:
        ``(precision (M + 1,), recall (M + 1,), thresholds (M,))``, float64.

    Example:
        >>> p, r, t = precision_recall_curve(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]))
        >>> [round(v, 3) for v in p.tolist()], r.tolist()
        ([0.5, 0.667, 0.5, 1.0, 1.0], [1.0, 1.0, 0.5, 0.5, 0.0])
    """
    tps, fps, thresholds = _counts(scores, targets)
    if tps[-1] == 0:
        raise ValueError("the targets hold no positives, so recall is undefined; pick a split with positives")
    precision = tps / (tps + fps)  # tps + fps >= 1 at every threshold
    recall = tps / tps[-1]
    one, zero = torch.ones(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
    return torch.cat([precision.flip(0), one]), torch.cat([recall.flip(0), zero]), thresholds.flip(0)


def _binary_auc(scores, targets) -> float:
    fpr, tpr, _ = roc_curve(scores, targets)
    return torch.trapezoid(tpr, fpr).item()


def _binary_ap(scores, targets) -> float:
    precision, recall, _ = precision_recall_curve(scores, targets)
    # AP = sum_n (R_n - R_{n-1}) P_n: the step function, no interpolation (scikit-learn's definition)
    return -(torch.diff(recall) * precision[:-1]).sum().item()


def _one_vs_rest(metric, scores, targets, average: str | None):
    scores = torch.as_tensor(scores).detach().cpu()
    if scores.dim() == 1:
        return metric(scores, targets)
    if scores.dim() != 2:
        raise ValueError(f"scores must be (N,) binary scores or (N, K) class scores, got {tuple(scores.shape)}")
    targets = _check(scores[:, 0], torch.as_tensor(targets).cpu())
    k = scores.shape[1]
    if int(targets.min()) < 0 or int(targets.max()) >= k:
        raise ValueError(f"targets must lie in [0, {k - 1}] for (N, {k}) scores; got {torch.unique(targets).tolist()}")
    onehot = torch.nn.functional.one_hot(targets, k)
    if average == "micro":
        return metric(scores.reshape(-1), onehot.reshape(-1))
    if average not in (None, "macro", "weighted"):
        raise ValueError(f"average={average!r}; use None, 'macro', 'micro' or 'weighted'")
    missing = [c for c in range(k) if onehot[:, c].sum() == 0]
    if missing:
        raise ValueError(f"classes {missing} have no examples, so their one-vs-rest curve is undefined; "
                         "evaluate on a split that holds every class")
    per_class = torch.tensor([metric(scores[:, c], onehot[:, c]) for c in range(k)], dtype=torch.float64)
    if average is None:
        return per_class
    weights = onehot.sum(0).double() / len(targets) if average == "weighted" else torch.full((k,), 1.0 / k)
    return (per_class * weights.double()).sum().item()


def roc_auc(scores: torch.Tensor, targets: torch.Tensor, average: str | None = "macro") -> float | torch.Tensor:
    """Area under the ROC curve (trapezoidal): the chance a random positive scores above a random negative.

    Args:
        scores: ``(N,)`` positive-class scores with 0/1 ``targets``, or ``(N, K)`` class probabilities
            with integer ``targets`` for one-vs-rest AUCs.
        targets: ``(N,)`` labels.
        average: for ``(N, K)``: ``"macro"`` (mean over classes), ``"weighted"`` (by support),
            ``"micro"`` (all one-vs-rest pairs pooled) or None (a ``(K,)`` tensor).

    Example:
        >>> roc_auc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1]))
        0.75
    """
    return _one_vs_rest(_binary_auc, scores, targets, average)


def average_precision(scores: torch.Tensor, targets: torch.Tensor,
                      average: str | None = "macro") -> float | torch.Tensor:
    """Average precision: the area under the precision-recall curve as a step function, ``sum (R_n - R_n-1) P_n``.

    Arguments as in :func:`roc_auc`. Unlike the ROC AUC, its chance level is the share of
    positives, so it shows how a rare class fares.

    Example:
        >>> round(average_precision(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1])), 4)
        0.8333
    """
    return _one_vs_rest(_binary_ap, scores, targets, average)
