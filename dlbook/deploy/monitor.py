"""Drift detection: reference statistics, two-sample tests, and one alarm rule (NumPy and SciPy only).

A deployed model sees a stream of requests; this module asks, for each *window* of ``N`` of them,
whether it still looks like the data the model was checked on. Four tests, each a p-value:

- **features** (``ks``): Kolmogorov-Smirnov per dimension of the inputs' features (PCA-reduced
  pixels, penultimate embeddings, sentence lengths ...), with a multiple-testing correction over the
  dimensions: Bonferroni (``min p * d``, a family-wise bound under any dependence) or
  Benjamini-Hochberg (``min_i p_(i) * d / i``, Simes' test under the global null);
- **features** (``mmd``): the maximum mean discrepancy with an RBF kernel whose bandwidth is the median
  pairwise distance (the median heuristic), p-value from permutations as ``(k + 1) / (n + 1)``, where
  ``k`` of ``n`` permuted statistics reach the observed one (never 0: the observed split is one of them);
- **predictions**: KS on the served model's top-class confidence, and chi-square on its predicted class mix.

The reference is the served model on *held-out* data (a validation split), never the data it was
trained on: a model that has fitted its training images is more confident on them, and a training-set
reference then makes clean traffic look drifted (by how much depends on how far the model overfits). Each test is valid averaged over draws of the reference; against one fixed
reference the false-alarm rate scatters around its level, less the larger the reference is than the
window, which is why the rate is measured on clean windows before a rule is trusted. :class:`AlarmRule` raises one alarm per window when the smallest of the four
p-values, Bonferroni-corrected over the tests, is at most ``alpha``: a false-alarm rate of at most
``alpha`` per clean window, whatever the tests' dependence.

Example:
    >>> rng = np.random.default_rng(0)
    >>> ref = ReferenceStats.fit(rng.normal(size=(500, 3)), rng.uniform(0.5, 1, 500), rng.integers(0, 4, 500), 4)
    >>> rule = AlarmRule(ref, alpha=0.05, permutations=99, seed=0)
    >>> rule.check(rng.normal(size=(100, 3)), rng.uniform(0.5, 1, 100), rng.integers(0, 4, 100)).alarm
    False
    >>> rule.check(rng.normal(1.0, size=(100, 3)), rng.uniform(0.5, 1, 100), rng.integers(0, 4, 100)).alarm
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

TESTS = ("ks", "mmd", "confidence", "class_mix")


def _matrix(x, name: str, dims: int | None = None) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"{name} must be (n, d) with n >= 2 rows, got shape {x.shape}")
    if dims is not None and x.shape[1] != dims:
        raise ValueError(f"{name} has {x.shape[1]} feature dimension(s); the reference has {dims}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return x


class PCA:
    """Principal components of the reference inputs: ``fit`` on held-out data, ``transform`` each window.

    Example:
        >>> x = np.random.default_rng(0).normal(size=(200, 5)) * [5, 1, 1, 1, 1]
        >>> pca = PCA(2).fit(x)
        >>> pca.transform(x).shape, bool(pca.explained[0] > 0.5)
        ((200, 2), True)
    """

    def __init__(self, components: int):
        if components < 1:
            raise ValueError(f"components={components}; keep at least one")
        self.components = components

    def fit(self, x) -> "PCA":
        x = _matrix(x, "PCA input")
        if self.components > min(x.shape):
            raise ValueError(f"{self.components} components from data of shape {x.shape}; use at most {min(x.shape)}")
        self.mean = x.mean(axis=0)
        _, s, vt = np.linalg.svd(x - self.mean, full_matrices=False)
        self.basis = vt[: self.components].T  # (d, k)
        self.explained = (s**2 / (s**2).sum())[: self.components]
        return self

    def transform(self, x) -> np.ndarray:
        x = _matrix(x, "PCA input", dims=len(self.mean))
        return (x - self.mean) @ self.basis  # (n, d) @ (d, k) -> (n, k)


def ks_test(reference, sample, correction: str = "bonferroni") -> tuple[float, np.ndarray]:
    """KS per feature dimension; returns ``(corrected p-value of the window, per-dimension p-values)``.

    Example:
        >>> rng = np.random.default_rng(1)
        >>> p, per_dim = ks_test(rng.normal(size=(300, 4)), rng.normal(size=(100, 4)))
        >>> per_dim.shape, bool(p > 0.05)
        ((4,), True)
    """
    ref = _matrix(reference, "reference")
    x = _matrix(sample, "sample", dims=ref.shape[1])
    p = np.array([stats.ks_2samp(ref[:, j], x[:, j]).pvalue for j in range(ref.shape[1])])
    d = len(p)
    if correction == "bonferroni":
        return float(min(1.0, p.min() * d)), p
    if correction == "bh":
        return float(min(1.0, (np.sort(p) * d / np.arange(1, d + 1)).min())), p
    raise ValueError(f"correction={correction!r}; use 'bonferroni' or 'bh'")


def median_bandwidth(z) -> float:
    """The median heuristic: the median of the pairwise Euclidean distances (excluding a point with itself)."""
    z = _matrix(z, "data")
    d2 = _squared_distances(z)
    return float(np.sqrt(np.median(d2[np.triu_indices(len(z), 1)])))


def _squared_distances(z: np.ndarray) -> np.ndarray:
    sq = (z**2).sum(axis=1)
    return np.maximum(sq[:, None] + sq[None, :] - 2 * z @ z.T, 0.0)  # (n, n)


def mmd_test(reference, sample, permutations: int = 199, seed: int = 0,
             bandwidth: float | None = None) -> tuple[float, float]:
    """Unbiased MMD² with an RBF kernel and its permutation p-value ``(k + 1) / (permutations + 1)``.

    Example:
        >>> rng = np.random.default_rng(2)
        >>> mmd2, p = mmd_test(rng.normal(size=(200, 2)), rng.normal(2.0, size=(50, 2)), permutations=99)
        >>> p == 1 / 100
        True
    """
    ref = _matrix(reference, "reference")
    x = _matrix(sample, "sample", dims=ref.shape[1])
    if permutations < 1:
        raise ValueError(f"permutations={permutations}; use at least 19 for a p-value that can reach 0.05")
    z = np.concatenate([ref, x])
    d2 = _squared_distances(z)
    sigma = bandwidth or float(np.sqrt(np.median(d2[np.triu_indices(len(z), 1)]))) or 1.0
    kernel = np.exp(-d2 / (2 * sigma**2))  # (n + m, n + m)
    np.fill_diagonal(kernel, 0.0)  # the unbiased estimator leaves out k(x_i, x_i)
    n, m = len(ref), len(x)
    rng = np.random.default_rng(seed)
    labels = np.zeros((permutations + 1, n + m))  # row 0: the observed split, then permuted ones
    labels[0, n:] = 1
    for row in labels[1:]:
        row[rng.permutation(n + m)[:m]] = 1
    in_y = labels @ kernel * labels  # (P, n + m): each point's kernel sum over the "sample" group, if in it
    total = kernel.sum()
    s_yy = in_y.sum(axis=1)
    s_xy = (labels @ kernel).sum(axis=1) - s_yy  # kernel sum between the groups
    s_xx = total - s_yy - 2 * s_xy
    mmd2 = s_xx / (n * (n - 1)) + s_yy / (m * (m - 1)) - 2 * s_xy / (n * m)
    k = int((mmd2[1:] >= mmd2[0]).sum())
    return float(mmd2[0]), (k + 1) / (permutations + 1)


def chi2_class_mix(reference_counts, predicted, num_classes: int) -> float:
    """Chi-square test that a window's predicted classes and the reference's come from one class mix.

    The reference is a sample too, so this is the test of homogeneity on the 2 x K table of counts
    (reference, window), not a goodness of fit to the reference's frequencies taken as exact (which
    raises false alarms when the reference is not much larger than the window).

    Example:
        >>> round(chi2_class_mix([50, 50], [0] * 50 + [1] * 50, 2), 3)
        1.0
    """
    counts = np.asarray(reference_counts)
    predicted = np.asarray(predicted)
    if counts.shape != (num_classes,) or (counts < 0).any() or counts.sum() == 0:
        raise ValueError(f"reference_counts must be {num_classes} non-negative counts, not all zero")
    if predicted.ndim != 1 or len(predicted) == 0 or predicted.min() < 0 or predicted.max() >= num_classes:
        raise ValueError(f"predicted must be a non-empty 1-d array of class indices in [0, {num_classes})")
    table = np.stack([counts, np.bincount(predicted, minlength=num_classes)])  # (2, K)
    table = table[:, table.sum(axis=0) > 0]  # a class neither predicted adds nothing
    if table.shape[1] < 2:
        return 1.0
    return float(stats.chi2_contingency(table, correction=False).pvalue)


@dataclass
class ReferenceStats:
    """What a window is compared with: features, top-class confidences and class frequencies of held-out data."""

    features: np.ndarray  # (n, d)
    confidences: np.ndarray  # (n,)
    class_counts: np.ndarray  # (num_classes,), of the *predicted* classes
    mmd_features: np.ndarray  # (n_mmd, d): a subsample, since MMD costs (n + m)² per window

    @classmethod
    def fit(cls, features, confidences, predicted, num_classes: int, mmd_size: int = 500,
            seed: int = 0) -> "ReferenceStats":
        """Reference statistics from the served model's outputs on held-out data (not its training data)."""
        features = _matrix(features, "reference features")
        confidences = np.asarray(confidences, dtype=np.float64)
        predicted = np.asarray(predicted)
        if not len(features) == len(confidences) == len(predicted):
            raise ValueError(f"{len(features)} feature rows, {len(confidences)} confidences and {len(predicted)} "
                             "predictions: give one of each per reference example")
        if predicted.min() < 0 or predicted.max() >= num_classes:
            raise ValueError(f"predicted holds class indices outside [0, {num_classes})")
        pick = np.random.default_rng(seed).permutation(len(features))[:mmd_size]
        return cls(features, confidences, np.bincount(predicted, minlength=num_classes), features[pick])


@dataclass(frozen=True)
class WindowReport:
    """One window's p-values, per test, and whether the rule raised the alarm."""

    p_values: dict  # test name -> p-value
    alarm: bool
    threshold: float  # alpha / number of tests
    details: dict = field(default_factory=dict)  # the MMD² statistic, per-dimension KS p-values

    @property
    def flagged(self) -> list[str]:
        """The tests whose p-value is at or below the threshold."""
        return [t for t, p in self.p_values.items() if p <= self.threshold]


class AlarmRule:
    """Alarm on a window when any of the tests has ``p <= alpha / len(tests)`` (Bonferroni over the tests).

    Args:
        reference: :class:`ReferenceStats`.
        alpha: the false-alarm rate allowed per clean window, in (0, 1).
        tests: which of ``("ks", "mmd", "confidence", "class_mix")`` to run.
        correction: ``"bonferroni"`` or ``"bh"`` across the KS dimensions.
        permutations: for MMD; at least ``len(tests) / alpha - 1`` so that its p-value can reach the threshold.
        seed: of the MMD permutations.
    """

    def __init__(self, reference: ReferenceStats, alpha: float = 0.05, tests: tuple[str, ...] = TESTS,
                 correction: str = "bonferroni", permutations: int = 199, seed: int = 0):
        if not 0 < alpha < 1:
            raise ValueError(f"alpha={alpha}; a false-alarm rate lies in (0, 1), e.g. 0.05")
        if not tests or set(tests) - set(TESTS):
            raise ValueError(f"tests={tests}; choose from {TESTS}")
        if "mmd" in tests and (permutations + 1) * alpha / len(tests) < 1:
            raise ValueError(f"{permutations} permutations cannot give an MMD p-value <= {alpha / len(tests):.4f}; "
                             f"use at least {int(np.ceil(len(tests) / alpha)) - 1}")
        self.reference, self.alpha, self.tests = reference, alpha, tuple(tests)
        self.correction, self.permutations, self.seed = correction, permutations, seed
        self.threshold = alpha / len(self.tests)
        self._windows = 0

    def check(self, features, confidences, predicted) -> WindowReport:
        """Test one window: features ``(m, d)``, confidences ``(m,)``, predicted class indices ``(m,)``."""
        ref, p, details = self.reference, {}, {}
        if "ks" in self.tests:
            p["ks"], details["ks_per_dim"] = ks_test(ref.features, features, self.correction)
        if "mmd" in self.tests:
            details["mmd2"], p["mmd"] = mmd_test(ref.mmd_features, features, self.permutations,
                                                 seed=self.seed + self._windows)
        if "confidence" in self.tests:
            p["confidence"] = float(stats.ks_2samp(ref.confidences, np.asarray(confidences, np.float64)).pvalue)
        if "class_mix" in self.tests:
            p["class_mix"] = chi2_class_mix(ref.class_counts, predicted, len(ref.class_counts))
        self._windows += 1
        return WindowReport(p, min(p.values()) <= self.threshold, self.threshold, details)


def first_alarm(alarms) -> int | None:
    """Windows until the first alarm (1: the first window of the shift), or None if none was raised.

    Example:
        >>> first_alarm([False, False, True, True]), first_alarm([False])
        (3, None)
    """
    hits = np.flatnonzero(np.asarray(alarms, dtype=bool))
    return int(hits[0]) + 1 if len(hits) else None
