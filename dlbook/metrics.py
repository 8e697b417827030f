"""Classification metrics on tensors, checked against scikit-learn in the tests.

All functions take ``outputs`` as logits/probabilities ``(N, K)`` or predicted
labels ``(N,)``, and integer ``targets`` ``(N,)``.

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
