"""Train/validation splits: stratified (every class keeps its share), by group (no group straddles), by time.

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
    val_size = _val_size(n, val_fraction, val_size)
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


def group_split(groups: torch.Tensor | np.ndarray | Sequence[int], val_fraction: float | None = None,
                *, val_size: int | None = None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Split example indices so that every group lies wholly on one side (scikit-learn's ``GroupShuffleSplit`` idea).

    Near-duplicates on both sides of a split make validation a memory test; give each cluster one
    group id (e.g. :func:`dlbook.data.duplicates.duplicate_groups`) and no cluster straddles the split.
    Groups are visited in a random order fixed by ``seed`` and go to validation while they fit in
    what is left of ``val_size``, so validation gets at most ``val_size`` examples, and exactly that
    many when singleton groups can fill the gap; if every group is larger than ``val_size``, the
    smallest group alone validates. Classes are not balanced.

    Args:
        groups: a group id per example, shape ``(N,)``.
        val_fraction: share of examples for validation, in (0, 1). Give this or ``val_size``.
        val_size: target number of validation examples, in [1, N).
        seed: seed of the group order.

    Returns:
        ``(train_idx, val_idx)``: sorted, disjoint int64 index tensors covering ``0..N-1``; both non-empty.

    Raises:
        ValueError: neither or both of ``val_fraction`` / ``val_size``, out of range, or one group only.

    Example:
        >>> g = torch.tensor([0, 0, 0, 1, 2, 2, 3, 4, 5, 5])
        >>> tr, va = group_split(g, val_size=3, seed=0)
        >>> len(va) <= 3, set(g[tr].tolist()).isdisjoint(g[va].tolist())
        (True, True)
    """
    g = groups.detach().cpu().numpy() if isinstance(groups, torch.Tensor) else np.asarray(groups)
    g = g.reshape(-1)
    n = len(g)
    if n == 0:
        raise ValueError("groups is empty: pass a group id per example")
    val_size = _val_size(n, val_fraction, val_size)
    ids, inverse, counts = np.unique(g, return_inverse=True, return_counts=True)
    if len(ids) < 2:
        raise ValueError(f"all {n} examples are in one group, so no split can keep groups whole")
    rng = np.random.default_rng(seed)
    to_val = np.zeros(len(ids), dtype=bool)
    left = val_size
    for i in rng.permutation(len(ids)):
        if counts[i] <= left:
            to_val[i], left = True, left - counts[i]
    if not to_val.any():                      # every group is larger than val_size: take the smallest one
        to_val[np.argmin(counts)] = True
    val_mask = to_val[inverse]
    return (torch.from_numpy(np.flatnonzero(~val_mask).astype(np.int64)),
            torch.from_numpy(np.flatnonzero(val_mask).astype(np.int64)))


def time_split(n: int, val_size: int | float,
               test_size: int | float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split a series by position: the oldest part trains, the next validates, the newest tests.

    A random split of a series lets the model see the future of every validation point; a split by
    position asks the question a forecast faces. Sizes are counts, or fractions of ``n`` when floats.

    Args:
        n: length of the series (examples in time order).
        val_size, test_size: examples (int >= 1) or shares (float in (0, 1)) for validation and test.

    Returns:
        ``(train_idx, val_idx, test_idx)``: consecutive int64 ranges, in that order.

    Example:
        >>> [t.tolist() for t in time_split(10, val_size=2, test_size=0.3)]
        [[0, 1, 2, 3, 4], [5, 6], [7, 8, 9]]
    """
    if not isinstance(n, int) or n < 3:
        raise ValueError(f"n={n!r}; a time split needs an int of at least 3 examples")
    sizes = []
    for name, size in (("val_size", val_size), ("test_size", test_size)):
        if isinstance(size, float):
            if not 0.0 < size < 1.0:
                raise ValueError(f"{name}={size}; a float share must be in (0, 1)")
            size = max(1, int(round(size * n)))
        if not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"{name}={size!r}; give an int >= 1 or a float share in (0, 1)")
        sizes.append(int(size))
    n_train = n - sum(sizes)
    if n_train < 1:
        raise ValueError(f"val_size + test_size = {sum(sizes)} leaves no training examples of {n}")
    ends = np.cumsum([n_train, *sizes])
    return tuple(torch.arange(int(start), int(end)) for start, end in zip([0, *ends[:-1]], ends))


def _val_size(n: int, val_fraction: float | None, val_size: int | None) -> int:
    if (val_fraction is None) == (val_size is None):
        raise ValueError("give exactly one of val_fraction (e.g. 0.1) and val_size (e.g. 5000)")
    if val_fraction is not None:
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction={val_fraction}; it must be in (0, 1)")
        val_size = int(round(val_fraction * n))
    if not 1 <= int(val_size) < n:
        raise ValueError(f"val_size={val_size}; it must be in [1, {n - 1}] for {n} examples")
    return int(val_size)
