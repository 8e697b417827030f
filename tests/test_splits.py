"""group_split keeps every group on one side; time_split cuts a series by position."""

import doctest

import numpy as np
import pytest
import torch

import dlbook.data.splits as splits
from dlbook.data.splits import group_split, time_split


def test_docstring_examples():
    failures, _ = doctest.testmod(splits, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert failures == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_group_straddles_the_split_and_sizes_add_up(seed):
    rng = np.random.default_rng(seed)
    groups = torch.from_numpy(rng.integers(0, 300, size=2000))   # clusters of varying size, some singletons
    tr, va = group_split(groups, 0.2, seed=seed)
    assert set(groups[tr].tolist()).isdisjoint(groups[va].tolist())
    assert torch.equal(torch.cat([tr, va]).sort().values, torch.arange(2000))
    assert len(va) <= 400 and len(va) > 300                         # close to the target, never above it
    assert torch.equal(tr, tr.sort().values) and torch.equal(va, va.sort().values)


def test_group_split_fills_exactly_with_singletons_and_depends_on_seed():
    groups = list(range(50)) + [99] * 50                            # 50 singletons and one big cluster
    tr, va = group_split(groups, val_size=10, seed=0)
    assert len(va) == 10 and 99 not in [groups[i] for i in va.tolist()]
    assert group_split(groups, val_size=10, seed=1)[1].tolist() != va.tolist()
    assert group_split(groups, val_size=10, seed=0)[1].tolist() == va.tolist()


def test_group_split_with_only_large_groups_takes_the_smallest():
    groups = [0] * 5 + [1] * 3 + [2] * 6
    _, va = group_split(groups, val_size=2)
    assert va.tolist() == [5, 6, 7]


def test_time_split_is_ordered_and_covers_the_series():
    tr, va, te = time_split(100, val_size=0.15, test_size=20)
    assert (len(tr), len(va), len(te)) == (65, 15, 20)
    assert torch.equal(torch.cat([tr, va, te]), torch.arange(100))
    assert tr.max() < va.min() and va.max() < te.min()


def test_bad_arguments_raise_clearly():
    with pytest.raises(ValueError, match="exactly one"):
        group_split([0, 1, 2])
    with pytest.raises(ValueError, match="one group"):
        group_split([7, 7, 7, 7], 0.5)
    with pytest.raises(ValueError, match="empty"):
        group_split([], val_size=1)
    with pytest.raises(ValueError, match="val_size"):
        group_split([0, 1, 2], val_size=3)
    with pytest.raises(ValueError, match="leaves no training"):
        time_split(10, 5, 5)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        time_split(10, 1.5, 2)
    with pytest.raises(ValueError, match="int >= 1"):
        time_split(10, 0, 2)
    with pytest.raises(ValueError, match="at least 3"):
        time_split(2, 1, 1)
