"""Stratified train/validation splits: every class keeps its share in both parts.

Example:
    >>> labels = torch.arange(10).repeat(5)              # 5 examples of each of 10 classes
    >>> train_idx, val_idx = stratified_split(labels, val_size=10, seed=0)
    >>> labels[val_idx].bincount().tolist()
    [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


def stratified_split(labels: torch.Tensor | np.ndarray | Sequence[int], val_fraction: float | None = None,
                     *, val_size: int | None = None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Split example indices into train and validation parts with the class proportions kept.

    Each class contributes ``n_class * val_size / n`` validation examples, rounded so
    that the counts add up to exactly ``val_size`` (largest remainders get the extra
    ones; ties go to the smaller class label). Which examples of a class go to
    validation is random but fixed by ``seed``.

    Args:
        labels: class label of every example, shape ``(N,)``.
        val_fraction: share of examples for validation, in (0, 1). Give this or ``val_size``.
        val_size: number of validation examples, in [1, N).
        seed: seed of the choice.

    Returns:
        ``(train_idx, val_idx)``: int64 index tensors, each sorted ascending, disjoint,
        together covering ``0..N-1``.

    Raises:
        ValueError: neither or both of ``val_fraction`` / ``val_size``, or out of range.

    Example:
        >>> y = torch.tensor([0] * 90 + [1] * 10)
        >>> tr, va = stratified_split(y, 0.2)
        >>> len(tr), len(va), y[va].bincount().tolist()
        (80, 20, [18, 2])
    """
    y = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    y = y.reshape(-1).astype(np.int64)
    n = len(y)
    if (val_fraction is None) == (val_size is None):
        raise ValueError("give exactly one of val_fraction (e.g. 0.1) and val_size (e.g. 5000)")
    if val_fraction is not None:
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction={val_fraction}; it must be in (0, 1)")
        val_size = int(round(val_fraction * n))
    if not 1 <= int(val_size) < n:
        raise ValueError(f"val_size={val_size}; it must be in [1, {n - 1}] for {n} examples")
    # numpy, not torch: these are tiny integer ops, and torch's thread pool only slows them down
    classes, counts = np.unique(y, return_counts=True)
    quota = counts * val_size / n
    take = np.floor(quota).astype(np.int64)
    extra = int(val_size - take.sum())
    if extra:
        # largest remainders first; a stable sort keeps the smaller label first among ties
        take[np.argsort(-(quota - take), kind="stable")[:extra]] += 1
    rng = np.random.default_rng(seed)
    val_mask = np.zeros(n, dtype=bool)
    for c, k in zip(classes, take):
        members = np.flatnonzero(y == c)
        val_mask[rng.permutation(members)[:k]] = True
    return (torch.from_numpy(np.flatnonzero(~val_mask).astype(np.int64)),
            torch.from_numpy(np.flatnonzero(val_mask).astype(np.int64)))
