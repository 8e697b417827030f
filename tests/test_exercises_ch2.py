"""The checks of chapters 2.1-2.3 accept correct answers and reject the usual slips, naming them.

The correct answers here are written independently of the exercise notebooks' solutions.
"""

import numpy as np
import pytest
import torch

from dlbook.exercises import ch2_1, ch2_2, ch2_3
from exercise_asserts import rejected

pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------- 2.1

def test_scaler_accepts_training_statistics_and_names_leaks():
    def good(tr, te):
        m, s = tr.mean(0), tr.std(0)
        return (tr - m) / s, (te - m) / s

    def leaky(tr, te):
        both = np.vstack([tr, te])
        return (tr - both.mean(0)) / both.std(0), (te - both.mean(0)) / both.std(0)

    def own(tr, te):
        return (tr - tr.mean(0)) / tr.std(0), (te - te.mean(0)) / te.std(0)

    assert ch2_1.check_scaler(good).passed
    rejected(ch2_1.check_scaler(leaky), "all rows", "fit on x_train only")
    rejected(ch2_1.check_scaler(own), "their own mean")
    rejected(ch2_1.check_scaler(lambda tr, te: (tr, te)), "StandardScaler")


def test_time_split_rejects_a_random_split():
    def by_date(dates, f):
        order = np.argsort(dates, kind="stable")
        k = int(round(len(dates) * (1 - f)))
        return order[:k], order[k:]

    assert ch2_1.check_time_split(by_date).passed
    perm = np.random.default_rng(3).permutation(100)
    rejected(ch2_1.check_time_split(lambda d, f: (perm[:80], perm[80:])), "future")
    rejected(ch2_1.check_time_split(lambda d, f: (np.arange(80), np.arange(79, 100))), "not a split")


def test_stratified_split_against_sklearn_and_a_plain_random_split():
    from sklearn.model_selection import train_test_split

    def strat(y, f):
        return tuple(train_test_split(np.arange(len(y)), test_size=f, stratify=y, random_state=0))

    assert ch2_1.check_stratified_split(strat).passed
    y = ch2_1._labels()
    order = np.argsort(y, kind="stable")   # all of class 0 first: the last 60 rows are class 1 and 2 only
    rejected(ch2_1.check_stratified_split(lambda y, f: (order[:240], order[240:])), "class 0", "stratify")


# --------------------------------------------------------------------------- 2.2

def test_lr_suggestion_is_a_tenth_of_the_minimum():
    assert ch2_2.check_lr_suggestion(lambda lrs, loss: lrs[int(np.argmin(loss))] / 10).passed
    rejected(ch2_2.check_lr_suggestion(lambda lrs, loss: lrs[int(np.argmin(loss))]), "divide it by 10")
    rejected(ch2_2.check_lr_suggestion(lambda lrs, loss: lrs[-1] / 10), "minimum")


def adamw_by_hand(p, g, lr, wd, betas=(0.9, 0.999), eps=1e-8):
    m = (1 - betas[0]) * g / (1 - betas[0])
    v = (1 - betas[1]) * g * g / (1 - betas[1])
    return p * (1 - lr * wd) - lr * m / (v.sqrt() + eps)


def test_adamw_step_accepts_the_formula_and_names_adam_with_l2():
    assert ch2_2.check_adamw_step(adamw_by_hand).passed

    def adam_l2(p, g, lr, wd):
        return adamw_by_hand(p, g + wd * p, lr, 0.0)

    rejected(ch2_2.check_adamw_step(adam_l2), "Adam with L2", "torch.optim.AdamW")
    rejected(ch2_2.check_adamw_step(lambda p, g, lr, wd: p - lr * g), "decoupled")


def test_conv_params_against_the_formula_and_the_usual_slips():
    assert ch2_2.check_conv_params(lambda ci, co, k, bias=True, groups=1: co * ci // groups * k * k + co * bias).passed
    rejected(ch2_2.check_conv_params(lambda ci, co, k, bias=True, groups=1: co * ci * k * k), "biases")
    rejected(ch2_2.check_conv_params(lambda ci, co, k, bias=True, groups=1: co * ci * k * k + co * bias),
             "c_in // groups")


# --------------------------------------------------------------------------- 2.3

def metrics_by_hand(cm):
    cm = np.asarray(cm, dtype=float)
    tp = np.diag(cm)
    p, r = tp / cm.sum(0), tp / cm.sum(1)
    return {"accuracy": tp.sum() / cm.sum(), "precision": p.mean(), "recall": r.mean(),
            "f1": np.mean(2 * p * r / (p + r))}


def test_confusion_metrics_names_swapped_axes_and_macro_f1_of_means():
    assert ch2_3.check_confusion_metrics(metrics_by_hand).passed
    rejected(ch2_3.check_confusion_metrics(lambda cm: metrics_by_hand(np.asarray(cm).T)), "swapped")

    def f1_of_means(cm):
        out = metrics_by_hand(cm)
        out["f1"] = 2 * out["precision"] * out["recall"] / (out["precision"] + out["recall"])
        return out

    rejected(ch2_3.check_confusion_metrics(f1_of_means), "f1 is")


def ece_by_hand(probs, targets, n_bins=15):
    conf, pred = probs.max(1)
    acc = (pred == targets).double()
    total = 0.0
    edges = torch.linspace(0, 1, n_bins + 1)
    for i in range(n_bins):
        inside = (conf > edges[i]) & (conf <= edges[i + 1])
        if inside.any():
            total += inside.double().mean() * (acc[inside].mean() - conf[inside].double().mean()).abs()
    return float(total)


def test_ece_against_a_by_hand_loop_and_one_bin():
    gen = torch.Generator().manual_seed(0)
    probs = torch.softmax(3 * torch.randn(400, 4, generator=gen), 1)
    targets = torch.multinomial(probs.pow(0.5), 1, generator=gen).squeeze(1)   # over- and under-confident bins
    assert ch2_3.check_ece(ece_by_hand, probs, targets).passed
    rejected(ch2_3.check_ece(lambda p, t: ece_by_hand(p, t, n_bins=1), probs, targets), "one bin")
    rejected(ch2_3.check_ece(lambda p, t: 100 * ece_by_hand(p, t), probs, targets), "percent")
    with pytest.raises(ValueError, match="check_ece"):
        ch2_3.check_ece(ece_by_hand, probs[:, 0], targets)


def test_memory_per_gpu_matches_the_chapters_7b_numbers():
    def mem(n, g):
        state = n * (2 + 2 + 4 + 4 + 4)
        return state, state / g

    assert ch2_3.check_memory_per_gpu(mem).passed
    ddp, fsdp = mem(7e9, 8)
    assert (ddp / 1e9, fsdp / 1e9) == (112.0, 14.0)   # chapter 2.3: 112 GB, 14.0 GB per GPU on 8 GPUs
    rejected(ch2_3.check_memory_per_gpu(lambda n, g: (16 * n / g, 16 * n / g)), "does not shard")
    rejected(ch2_3.check_memory_per_gpu(lambda n, g: (16 * n, 2 * n + 14 * n / g)), "ZeRO-2")
