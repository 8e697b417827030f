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


# -- ROC and precision-recall curves against scikit-learn ----------------------------------------------------

from dlbook.calibration import expected_calibration_error, fit_temperature, reliability_bins  # noqa: E402
from dlbook.metrics import average_precision, precision_recall_curve, roc_auc, roc_curve  # noqa: E402


@pytest.fixture(params=["continuous", "ties"])
def binary(request):
    g = torch.Generator().manual_seed(1)
    y = (torch.rand(400, generator=g) < 0.3).long()  # imbalanced: 30% positives
    s = torch.randn(400, generator=g) + 1.2 * y
    if request.param == "ties":
        s = (s * 2).round() / 2  # many tied scores: thresholds must group them
    return s, y


def test_roc_curve_matches_sklearn(binary):
    s, y = binary
    fpr, tpr, thr = roc_curve(s, y)
    ref_fpr, ref_tpr, ref_thr = skm.roc_curve(y.numpy(), s.numpy(), drop_intermediate=False)
    assert np.allclose(fpr.numpy(), ref_fpr) and np.allclose(tpr.numpy(), ref_tpr)
    assert np.array_equal(thr.numpy()[1:], ref_thr[1:].astype(np.float64)) and torch.isinf(thr[0])
    assert roc_auc(s, y) == pytest.approx(skm.roc_auc_score(y.numpy(), s.numpy()), abs=1e-12)


def test_auc_is_the_chance_a_positive_outscores_a_negative(binary):
    """An independent definition: the Mann-Whitney statistic over all (positive, negative) pairs, ties count 1/2."""
    s, y = binary
    pos, neg = s[y == 1], s[y == 0]
    diff = pos[:, None] - neg[None, :]
    mann_whitney = ((diff > 0).double() + 0.5 * (diff == 0).double()).mean().item()
    assert roc_auc(s, y) == pytest.approx(mann_whitney, abs=1e-12)


def test_precision_recall_curve_and_average_precision_match_sklearn(binary):
    s, y = binary
    p, r, t = precision_recall_curve(s, y)
    ref_p, ref_r, ref_t = skm.precision_recall_curve(y.numpy(), s.numpy())
    assert np.allclose(p.numpy(), ref_p) and np.allclose(r.numpy(), ref_r) and np.allclose(t.numpy(), ref_t)
    assert average_precision(s, y) == pytest.approx(skm.average_precision_score(y.numpy(), s.numpy()), abs=1e-12)
    # chance level of AP is the share of positives, of AUC one half
    shuffled = s[torch.randperm(len(s), generator=torch.Generator().manual_seed(0))]
    assert abs(average_precision(shuffled, y) - y.float().mean().item()) < 0.08


@pytest.mark.parametrize("average", ["macro", "weighted", "micro", None])
def test_one_vs_rest_auc_and_ap_match_sklearn(preds, average):
    logits, targets = preds
    probs = logits.softmax(1).double()
    onehot = np.eye(5)[targets.numpy()]
    ours_auc = roc_auc(probs, targets, average=average)
    ours_ap = average_precision(probs, targets, average=average)
    if average == "micro":
        ref_auc = skm.roc_auc_score(onehot, probs.numpy(), average="micro")
    else:
        ref_auc = skm.roc_auc_score(targets.numpy(), probs.numpy(), multi_class="ovr", average=average)
    ref_ap = skm.average_precision_score(onehot, probs.numpy(), average=average)
    if average is None:
        assert np.allclose(ours_auc.numpy(), ref_auc) and np.allclose(ours_ap.numpy(), ref_ap)
    else:
        assert ours_auc == pytest.approx(ref_auc, abs=1e-7) and ours_ap == pytest.approx(ref_ap, abs=1e-7)


def test_curves_explain_bad_input():
    with pytest.raises(ValueError, match="only negatives"):
        roc_curve(torch.rand(5), torch.zeros(5))
    with pytest.raises(ValueError, match="no positives"):
        precision_recall_curve(torch.rand(5), torch.zeros(5))
    with pytest.raises(ValueError, match="must be 0 or 1"):
        roc_curve(torch.rand(3), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"classes \[2\] have no examples"):
        roc_auc(torch.rand(4, 3).softmax(1), torch.tensor([0, 1, 0, 1]))
    with pytest.raises(ValueError, match="NaN"):
        roc_auc(torch.tensor([0.1, float("nan")]), torch.tensor([0, 1]))


# -- calibration: ECE against a brute-force reference, temperature scaling ------------------------------------

def _brute_force_ece(probs, targets, n_bins):
    """The definition written out: bins lo < conf <= hi (conf 0 in the first), each gap weighted by its share."""
    total, n = 0.0, len(targets)
    edges = [b / n_bins for b in range(n_bins + 1)]
    conf = [max(row) for row in probs.tolist()]
    pred = [row.index(max(row)) for row in probs.tolist()]
    for b in range(n_bins):
        members = [i for i in range(n) if (edges[b] < conf[i] <= edges[b + 1]) or (b == 0 and conf[i] == 0)]
        if members:
            acc = sum(pred[i] == int(targets[i]) for i in members) / len(members)
            mean_conf = sum(conf[i] for i in members) / len(members)
            total += len(members) / n * abs(acc - mean_conf)
    return total


@pytest.mark.parametrize("n_bins", [1, 5, 15])
def test_ece_matches_the_brute_force_definition(preds, n_bins):
    logits, targets = preds
    probs = (logits / 2).softmax(1).double()
    assert expected_calibration_error(probs, targets, n_bins) == pytest.approx(
        _brute_force_ece(probs, targets, n_bins), abs=1e-12)
    bins = reliability_bins(probs, targets, n_bins)
    assert bins.counts.sum() == len(targets) and len(bins.edges) == n_bins + 1
    # one bin: ECE is |accuracy - mean confidence|
    if n_bins == 1:
        assert bins.ece == pytest.approx(abs(accuracy(probs, targets) - probs.max(1).values.mean().item()))


def test_ece_puts_a_confidence_on_an_edge_in_the_lower_bin():
    probs = torch.tensor([[0.5, 0.5], [0.75, 0.25], [1.0, 0.0]], dtype=torch.float64)
    bins = reliability_bins(probs, torch.tensor([0, 0, 0]), n_bins=4)
    assert bins.counts.tolist() == [0, 1, 1, 1]  # 0.5 in (0.25, 0.5], 0.75 in (0.5, 0.75], 1.0 in (0.75, 1]


def _overconfident(n, seed):
    """Labels drawn from softmax(z): z are calibrated logits; 3 z are three times too sharp."""
    g = torch.Generator().manual_seed(seed)
    z = 1.5 * torch.randn(n, 4, generator=g)
    y = torch.multinomial(z.softmax(1), 1, generator=g)[:, 0]
    return 3 * z, y


def test_temperature_scaling_lowers_nll_and_ece_and_keeps_accuracy():
    val_logits, val_y = _overconfident(3000, seed=0)
    test_logits, test_y = _overconfident(3000, seed=1)
    t = fit_temperature(val_logits, val_y)
    assert 2.6 < t < 3.4  # the true temperature is 3
    nll = torch.nn.functional.cross_entropy
    assert nll(test_logits / t, test_y) < nll(test_logits, test_y) - 0.1
    assert accuracy(test_logits / t, test_y) == accuracy(test_logits, test_y)
    before = expected_calibration_error(test_logits.softmax(1), test_y)
    after = expected_calibration_error((test_logits / t).softmax(1), test_y)
    assert after < before / 3


def test_fitted_temperature_is_the_minimum_of_a_grid_search():
    logits, y = _overconfident(500, seed=2)
    grid = torch.exp(torch.linspace(-1, 2, 3001, dtype=torch.float64))  # steps of 0.1% in T
    scaled = logits.double()[None] / grid[:, None, None]  # (G, N, K)
    nlls = -scaled.log_softmax(2).gather(2, y[None, :, None].expand(len(grid), -1, 1)).mean((1, 2))  # (G,)
    assert fit_temperature(logits, y) == pytest.approx(grid[nlls.argmin()].item(), rel=2e-3)
    # an under-confident model gets T < 1
    assert fit_temperature(logits / 9, y) == pytest.approx(fit_temperature(logits, y) / 9, rel=1e-3)


def test_calibration_explains_bad_input():
    with pytest.raises(ValueError, match="look like logits"):
        expected_calibration_error(torch.randn(4, 3) * 5, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="n_bins"):
        reliability_bins(torch.full((2, 2), 0.5), torch.tensor([0, 1]), n_bins=0)
    with pytest.raises(ValueError, match="probabilities .* not logits"):
        fit_temperature(torch.full((3, 2), 0.5), torch.tensor([0, 1, 0]))
    with pytest.raises(ValueError, match="3 rows of logits but 2 targets"):
        fit_temperature(torch.randn(3, 2), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="every prediction in these logits is correct"):
        fit_temperature(torch.tensor([[10.0, -10.0], [-10.0, 10.0]]), torch.tensor([0, 1]))
    with pytest.warns(UserWarning, match="search bound"):  # all wrong: the flatter the better, up to T = 100
        fit_temperature(torch.tensor([[10.0, -10.0], [-10.0, 10.0]]), torch.tensor([1, 0]))


def test_reliability_diagram_draws_the_bins(preds):
    import matplotlib

    matplotlib.use("Agg")
    from dlbook.viz import plot_reliability_diagram

    logits, targets = preds
    bins = reliability_bins(logits.softmax(1), targets, n_bins=10)
    fig = plot_reliability_diagram(bins, label="before")
    bars = fig.axes[0].containers[0]  # the accuracy bars, one per non-empty bin
    filled = bins.counts > 0
    assert len(bars) == int(filled.sum())
    assert np.allclose([b.get_height() for b in bars], bins.accuracy[filled].numpy())
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert f"before: ECE {bins.ece:.3f} (10 equal-width bins)" in legend


# -- balanced accuracy: what plain accuracy hides on an imbalanced split -------------------------------------

from dlbook.metrics import balanced_accuracy  # noqa: E402


def test_balanced_accuracy_matches_sklearn(preds):
    logits, targets = preds
    assert balanced_accuracy(logits, targets) == pytest.approx(
        skm.balanced_accuracy_score(targets.numpy(), logits.argmax(1).numpy()), abs=1e-12)


def test_balanced_accuracy_of_a_majority_class_model_is_chance():
    targets = torch.tensor([0] * 95 + [1] * 5)
    always_majority = torch.zeros(100, dtype=torch.long)
    assert accuracy(always_majority, targets) == pytest.approx(0.95)
    assert balanced_accuracy(always_majority, targets) == pytest.approx(0.5)
    assert balanced_accuracy(always_majority, targets) == pytest.approx(
        skm.balanced_accuracy_score(targets.numpy(), always_majority.numpy()))
    # a class predicted but absent from the targets is ignored, as in scikit-learn (which warns about it)
    with pytest.warns(UserWarning):
        ref = skm.balanced_accuracy_score([0, 0, 1, 1], [0, 2, 1, 1])
    assert balanced_accuracy(torch.tensor([0, 2, 1, 1]), torch.tensor([0, 0, 1, 1])) == pytest.approx(ref)
