"""Chapter 1's exercise checks accept correct answers and reject the usual slips, naming each."""

import torch
import torch.nn.functional as F

from dlbook.exercises.ch1 import check_cross_entropy, check_evaluate, check_gd_step
from exercise_asserts import rejected  # noqa: E402




def test_cross_entropy():
    def stable(logits, targets):
        z = logits - logits.max(dim=1, keepdim=True).values
        return -(z - z.exp().sum(1, keepdim=True).log())[torch.arange(len(targets)), targets].mean()

    def naive(logits, targets):
        p = logits.exp() / logits.exp().sum(1, keepdim=True)
        return -p[torch.arange(len(targets)), targets].log().mean()

    assert check_cross_entropy(stable).passed and check_cross_entropy(F.cross_entropy).passed
    rejected(check_cross_entropy(naive), "overflow")
    rejected(check_cross_entropy(lambda l, t: F.cross_entropy(l, t, reduction="sum")), "sum")
    rejected(check_cross_entropy(lambda l, t: F.cross_entropy(l, t, reduction="none")), "one number")


def test_gd_step():
    def step(w, b, x, y, lr, factor=2.0, sign=1.0, mean=True):
        r = x @ w + b - y
        n = len(x) if mean else 1
        return w - sign * lr * factor * x.T @ r / n, b - sign * lr * factor * r.sum() / n

    assert check_gd_step(step).passed
    rejected(check_gd_step(lambda *a: step(*a, sign=-1.0)), "uphill")
    rejected(check_gd_step(lambda *a: step(*a, factor=1.0)), "factor 2")
    rejected(check_gd_step(lambda *a: step(*a, mean=False)), "mean, not the sum")


def test_evaluate():
    def right(model, loader):
        model.eval()
        correct = total = 0
        with torch.no_grad():
            for x, y in loader:
                correct += int((model(x).argmax(1) == y).sum())
                total += len(y)
        return correct / total

    def batch_means(model, loader):   # the starter's slips: training mode, autograd, mean of batch means
        accs = [float((model(x).argmax(1) == y).float().mean()) for x, y in loader]
        return sum(accs) / len(accs)

    def only_mean(model, loader):
        model.eval()
        with torch.no_grad():
            accs = [float((model(x).argmax(1) == y).float().mean()) for x, y in loader]
        return sum(accs) / len(accs)

    assert check_evaluate(right).passed
    rejected(check_evaluate(batch_means), "training mode", "autograd")
    rejected(check_evaluate(only_mean), "counts double")
    rejected(check_evaluate(lambda m, l: "high"), "expected the accuracy")
