"""Likely label errors by confident learning (Northcutt, Jiang & Chuang 2021, JAIR 70, "Confident Learning:
Estimating Uncertainty in Dataset Labels"), implemented from the paper's definitions.

Given out-of-sample predicted probabilities ``p`` (e.g. from k-fold cross-validation: a model must
not score examples it trained on) and the given labels ``y``:

1. the threshold of class j is the mean probability of j over the examples labelled j,
   ``t_j = mean(p[y == j, j])``: how confident the model is, on average, in its own class;
2. an example labelled i *confidently belongs* to class j when ``p[j] >= t_j``; when several
   classes pass, the one of highest probability wins;
3. the confident joint ``C[i][j]`` counts the examples labelled i that confidently belong to j.
   Examples off its diagonal (confidently another class than their label) are the candidates;
4. candidates are ranked by self-confidence ``p[y]`` (lowest first) or by the normalised margin
   ``p[y] - max_{j != y} p[j]`` (most negative first).

cleanlab, the authors' library, is AGPL; this module shares no code with it.

Example:
    >>> probs = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.1, 0.9], [0.95, 0.05]])
    >>> labels = torch.tensor([0, 0, 1, 1, 1])                   # the last one looks like a 0
    >>> find_label_issues(probs, labels).tolist()
    [4]
"""

from __future__ import annotations

from typing import Literal

import torch

RankBy = Literal["self_confidence", "normalized_margin"]


def _check(probs, labels, every_class: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    p, y = torch.as_tensor(probs), torch.as_tensor(labels)
    if p.dim() != 2 or not p.is_floating_point():
        raise ValueError(f"probs has shape {tuple(p.shape)} and dtype {p.dtype}; pass float probabilities (N, K)")
    if p.shape[0] == 0:
        raise ValueError("probs is empty: pass predicted probabilities for at least one example")
    if p.shape[1] < 2:
        raise ValueError(f"probs has {p.shape[1]} column; confident learning needs K >= 2 classes")
    if y.dim() != 1 or y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(f"labels has shape {tuple(y.shape)} and dtype {y.dtype}; pass integer class labels (N,)")
    if len(y) != len(p):
        raise ValueError(f"probs has {len(p)} rows but labels has {len(y)} entries: one label per row")
    p, y = p.detach().float().cpu(), y.detach().long().cpu()
    if not torch.isfinite(p).all() or p.min() < 0 or p.max() > 1:
        raise ValueError("probs has values outside [0, 1] (or NaN): pass softmax probabilities "
                         "(logits.softmax(dim=1)), not logits")
    sums = p.sum(1)
    if (sums - 1).abs().max() > 1e-3:
        raise ValueError(f"rows of probs sum to between {sums.min():.4g} and {sums.max():.4g}, not 1: pass softmax "
                         "probabilities (logits.softmax(dim=1)), not logits or per-class sigmoids")
    if y.min() < 0 or y.max() >= p.shape[1]:
        raise ValueError(f"labels lie in [{int(y.min())}, {int(y.max())}], outside [0, {p.shape[1]}) for "
                         f"{p.shape[1]} columns of probs")
    missing = (torch.bincount(y, minlength=p.shape[1]) == 0).nonzero().flatten().tolist()
    if every_class and missing:
        raise ValueError(f"no example is labelled with class(es) {missing}, so their thresholds (the mean "
                         "probability over their examples) are undefined: drop those columns of probs and renumber "
                         "the labels, or include examples of every class")
    return p, y


def per_class_thresholds(probs, labels) -> torch.Tensor:
    """The threshold of each class: the mean predicted probability of class j over the examples labelled j.

    Args:
        probs: float ``(N, K)`` out-of-sample softmax probabilities.
        labels: int ``(N,)`` given labels in ``[0, K)``; every class needs at least one example.

    Returns:
        float32 ``(K,)``.

    Example:
        >>> per_class_thresholds(torch.tensor([[0.9, 0.1], [0.7, 0.3], [0.4, 0.6]]), torch.tensor([0, 0, 1]))
        tensor([0.8000, 0.6000])
    """
    p, y = _check(probs, labels)
    return _thresholds(p, y)


def _thresholds(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    k = p.shape[1]
    sums = torch.zeros(k).index_add_(0, y, p[torch.arange(len(y)), y])
    return sums / torch.bincount(y, minlength=k)


def _confident_class(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per example, the class it confidently belongs to (highest p among those reaching their threshold), or -1."""
    passes = p >= _thresholds(p, y)                               # (N, K)
    masked = torch.where(passes, p, torch.full_like(p, -1.0))     # (N, K): failing classes can never win
    best = masked.argmax(1)
    return torch.where(passes.any(1), best, torch.full_like(best, -1))


def confident_joint(probs, labels) -> torch.Tensor:
    """The confident joint: ``C[i][j]`` counts examples labelled i that confidently belong to class j.

    Examples that reach no class's threshold are not counted, so ``C.sum() <= N``. A clean dataset
    and a good model give a nearly diagonal matrix; mass in row i, column j says "labelled i, looks like j".

    Args:
        probs: float ``(N, K)`` out-of-sample softmax probabilities.
        labels: int ``(N,)`` given labels.

    Returns:
        int64 ``(K, K)``, rows the given label, columns the confident class.

    Example:
        >>> p = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.1, 0.9], [0.95, 0.05]])
        >>> confident_joint(p, torch.tensor([0, 0, 1, 1, 1])).tolist()
        [[1, 0], [1, 2]]
    """
    p, y = _check(probs, labels)
    j = _confident_class(p, y)
    k = p.shape[1]
    counted = j >= 0
    return torch.bincount(y[counted] * k + j[counted], minlength=k * k).view(k, k)   # (K, K)


def label_quality_scores(probs, labels, rank_by: RankBy = "self_confidence") -> torch.Tensor:
    """A score per example, lower = more suspect: ``p[y]`` or ``p[y] - max_{j != y} p[j]``.

    Args:
        probs: float ``(N, K)`` softmax probabilities.
        labels: int ``(N,)`` given labels.
        rank_by: ``"self_confidence"`` (in [0, 1]) or ``"normalized_margin"`` (in [-1, 1]).

    Example:
        >>> p = torch.tensor([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1]])
        >>> label_quality_scores(p, torch.tensor([0, 1]), "normalized_margin")
        tensor([ 0.5000, -0.3000])
    """
    p, y = _check(probs, labels, every_class=False)              # no thresholds here, so no class is needed
    return _scores(p, y, rank_by)


def _scores(p: torch.Tensor, y: torch.Tensor, rank_by: str) -> torch.Tensor:
    if rank_by not in ("self_confidence", "normalized_margin"):
        raise ValueError(f"rank_by={rank_by!r}; use 'self_confidence' or 'normalized_margin'")
    rows = torch.arange(len(y))
    given = p[rows, y]
    if rank_by == "self_confidence":
        return given
    others = p.clone()
    others[rows, y] = -1.0                                        # exclude the given class from the max
    return given - others.max(1).values


def find_label_issues(probs, labels, rank_by: RankBy = "self_confidence") -> torch.Tensor:
    """Indices of the likely label errors (off the confident joint's diagonal), most suspect first.

    Args:
        probs: float ``(N, K)`` *out-of-sample* softmax probabilities (k-fold cross-validation: a
            model scoring its own training examples has memorised their labels and finds little).
        labels: int ``(N,)`` given labels in ``[0, K)``; every class needs at least one example.
        rank_by: ``"self_confidence"`` (lowest ``p[y]`` first) or ``"normalized_margin"``
            (lowest ``p[y] - max_{j != y} p[j]`` first). Ties keep index order.

    Returns:
        int64 ``(E,)`` indices into the N examples; empty when none is off the diagonal.

    Raises:
        ValueError: probs not probabilities (e.g. logits), labels out of range or of another
            length, or a class without examples.

    Example:
        >>> find_label_issues(torch.eye(3)[[0, 1, 2, 0]], torch.tensor([0, 1, 2, 0])).tolist()   # confident and right
        []
    """
    p, y = _check(probs, labels)
    scores = _scores(p, y, rank_by)                               # checks rank_by before the work
    j = _confident_class(p, y)
    candidates = ((j >= 0) & (j != y)).nonzero().flatten()
    order = torch.sort(scores[candidates], stable=True).indices
    return candidates[order]
