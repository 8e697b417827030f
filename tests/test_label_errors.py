"""Confident learning: planted label flips are found, a confident correct model finds none, ranking and checks."""

import doctest

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict

import dlbook.data.label_errors as le
from dlbook.data.label_errors import confident_joint, find_label_issues, label_quality_scores, per_class_thresholds


def test_docstring_examples():
    failures, _ = doctest.testmod(le, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert failures == 0


def _noisy_blobs(n=2000, k=5, flip=0.1, seed=0):
    rng = np.random.default_rng(seed)
    true = rng.integers(0, k, n)
    centres = rng.normal(0, 3.0, (k, 10))
    x = centres[true] + rng.normal(0, 1.0, (n, 10))
    given = true.copy()
    flipped = rng.choice(n, int(flip * n), replace=False)
    given[flipped] = (true[flipped] + rng.integers(1, k, len(flipped))) % k     # always another class
    return x, given, np.sort(flipped)


def test_out_of_fold_probabilities_find_the_planted_flips():
    x, given, flipped = _noisy_blobs()
    probs = cross_val_predict(LogisticRegression(max_iter=500), x, given, cv=5, method="predict_proba")
    issues = find_label_issues(torch.from_numpy(probs), torch.from_numpy(given))
    found = set(issues.tolist())
    recall = len(found & set(flipped.tolist())) / len(flipped)
    precision = len(found & set(flipped.tolist())) / len(found)
    assert recall > 0.9 and precision > 0.8, (recall, precision)
    # the confident joint's off-diagonal holds exactly the candidates
    cj = confident_joint(probs, given)
    assert cj.sum() - cj.diagonal().sum() == len(issues)
    assert cj.sum() <= len(given) and cj.shape == (5, 5)


def test_a_confident_correct_model_gives_no_candidates():
    labels = torch.arange(4).repeat(10)
    probs = torch.nn.functional.one_hot(labels, 4).float()
    assert find_label_issues(probs, labels).numel() == 0
    assert torch.equal(confident_joint(probs, labels), torch.diag(torch.full((4,), 10)))
    assert torch.equal(per_class_thresholds(probs, labels), torch.ones(4))


def test_candidates_are_ranked_by_self_confidence_or_margin():
    x, given, _ = _noisy_blobs(n=600, seed=1)
    probs = torch.from_numpy(cross_val_predict(LogisticRegression(max_iter=500), x, given, cv=3,
                                               method="predict_proba")).float()
    labels = torch.from_numpy(given)
    for rank_by in ("self_confidence", "normalized_margin"):
        issues = find_label_issues(probs, labels, rank_by=rank_by)
        scores = label_quality_scores(probs, labels, rank_by)[issues]
        assert len(issues) > 10 and (scores[1:] >= scores[:-1]).all(), rank_by
    by_sc, by_margin = find_label_issues(probs, labels), find_label_issues(probs, labels, "normalized_margin")
    assert set(by_sc.tolist()) == set(by_margin.tolist())              # same set, maybe another order
    sc = probs[by_sc, labels[by_sc]]
    assert torch.equal(sc, sc.sort().values)


def test_the_highest_probability_among_passing_classes_wins():
    probs = torch.tensor([[0.5, 0.3, 0.2], [0.5, 0.2, 0.3], [0.2, 0.3, 0.5], [0.1, 0.35, 0.55], [0.2, 0.4, 0.4]])
    labels = torch.tensor([0, 0, 1, 1, 2])
    t = per_class_thresholds(probs, labels)
    assert torch.allclose(t, torch.tensor([0.5, 0.325, 0.4]))
    # example 2 (labelled 1) passes only class 2; example 3 passes 1 and 2, and 2 has the higher probability;
    # example 4 (labelled 2) passes 1 and 2 with equal probability: the first maximum, class 1, wins
    cj = confident_joint(probs, labels)
    assert cj.tolist() == [[2, 0, 0], [0, 0, 2], [0, 1, 0]]
    assert find_label_issues(probs, labels).tolist() == [2, 3, 4]          # p[y] = 0.3, 0.35, 0.4


def test_bad_inputs_raise_clearly():
    p, y = torch.full((4, 2), 0.5), torch.tensor([0, 1, 0, 1])
    with pytest.raises(ValueError, match="not logits"):
        find_label_issues(torch.randn(4, 2) * 3, y)
    with pytest.raises(ValueError, match="sum to"):
        find_label_issues(torch.full((4, 2), 0.3), y)
    with pytest.raises(ValueError, match="outside"):
        find_label_issues(p, torch.tensor([0, 1, 2, 1]))
    with pytest.raises(ValueError, match="one label per row"):
        find_label_issues(p, y[:3])
    with pytest.raises(ValueError, match="empty"):
        find_label_issues(p[:0], y[:0])
    with pytest.raises(ValueError, match=r"class\(es\) \[1\]"):
        per_class_thresholds(p, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="integer class labels"):
        confident_joint(p, y.float())
    with pytest.raises(ValueError, match="K >= 2"):
        find_label_issues(torch.ones(4, 1), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="rank_by"):
        find_label_issues(p, y, rank_by="margin")
