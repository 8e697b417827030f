"""dlbook.metrics agrees with scikit-learn."""

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from dlbook.metrics import accuracy, classification_report, confusion_matrix, f1_score, precision_recall_f1


@pytest.fixture
def preds():
    g = torch.Generator().manual_seed(0)
    targets = torch.randint(0, 5, (500,), generator=g)
    logits = torch.randn(500, 5, generator=g) + 1.5 * torch.nn.functional.one_hot(targets, 5)
    logits[:, 4] -= 10  # class 4 is never predicted: tests zero division
    return logits, targets


def test_accuracy_and_confusion_matrix(preds):
    logits, targets = preds
    pred = logits.argmax(1).numpy()
    assert accuracy(logits, targets) == pytest.approx(skm.accuracy_score(targets, pred))
    assert np.array_equal(confusion_matrix(logits, targets).numpy(), skm.confusion_matrix(targets, pred, labels=range(5)))


@pytest.mark.parametrize("average", ["macro", "micro", "weighted", None])
def test_precision_recall_f1(preds, average):
    logits, targets = preds
    pred = logits.argmax(1).numpy()
    ours = precision_recall_f1(logits, targets, average=average)
    p, r, f, _ = skm.precision_recall_fscore_support(targets, pred, average=average, zero_division=0, labels=range(5))
    for name, ref in (("precision", p), ("recall", r), ("f1", f)):
        value = ours[name].numpy() if average is None else ours[name]
        assert np.allclose(value, ref), name


def test_f1_and_report(preds):
    logits, targets = preds
    assert f1_score(logits, targets) == pytest.approx(skm.f1_score(targets, logits.argmax(1), average="macro"))
    report = classification_report(logits, targets, [f"c{i}" for i in range(5)])
    assert list(report.index[-2:]) == ["macro avg", "weighted avg"] and report["support"].iloc[:5].sum() == 500


def test_bad_input_is_explained():
    with pytest.raises(ValueError, match="3 predictions but 2 targets"):
        accuracy(torch.zeros(3, 2), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="at least one"):
        accuracy(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long))
