"""Checks for the exercises of chapter 2.1 (data): splits and preprocessing without leakage.

* :func:`check_scaler`: standardise with statistics of the training fold only, checked against
  scikit-learn's ``StandardScaler`` fitted on the training rows (one fitted on all rows is named).
* :func:`check_time_split`: a split by date in which no training row is later than a test row.
* :func:`check_stratified_split`: a split that keeps each class's share, checked against the class
  counts of the data.

Example:
    >>> import numpy as np
    >>> from dlbook.exercises import report
    >>> report(check_time_split(lambda dates, test_fraction: (np.argsort(dates, kind="stable")[:80],
    ...                                                       np.argsort(dates, kind="stable")[80:])))
    2.1 exercise 2 (time split): correct
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from dlbook.exercises import Check, Problem, attempt, run_check


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(loc=[3.0, -10.0, 100.0], scale=[1.0, 5.0, 30.0], size=(200, 3))
    x[150:] += [2.0, 8.0, 60.0]   # the later rows drift: statistics of all rows differ from the training rows'
    return x[:150], x[150:]


def check_scaler(fn: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]) -> Check:
    """Check ``fn(x_train, x_test) -> (train_scaled, test_scaled)`` against ``StandardScaler`` fitted on ``x_train``.

    Example:
        >>> def leaky(tr, te):
        ...     both = np.concatenate([tr, te]); m, s = both.mean(0), both.std(0)
        ...     return (tr - m) / s, (te - m) / s
        >>> check_scaler(leaky).passed
        False
    """
    from sklearn.preprocessing import StandardScaler

    def body(problems: list[Problem]) -> None:
        x_train, x_test = _data()
        got = attempt(fn, x_train.copy(), x_test.copy(), what="your function on 150 training and 50 test rows")
        if not isinstance(got, tuple) or len(got) != 2:
            problems.append(Problem(f"returns a {type(got).__name__}, expected a pair (train_scaled, test_scaled)"))
            return
        tr, te = (np.asarray(a, dtype=np.float64) for a in got)
        if tr.shape != x_train.shape or te.shape != x_test.shape:
            problems.append(Problem(f"returns shapes {tr.shape} and {te.shape}, expected {x_train.shape} and "
                                    f"{x_test.shape}", "scale each column; keep rows and columns as they are"))
            return
        good = StandardScaler().fit(x_train)
        if np.allclose(tr, good.transform(x_train), atol=1e-6) and np.allclose(te, good.transform(x_test), atol=1e-6):
            return
        leaky = StandardScaler().fit(np.concatenate([x_train, x_test]))
        if np.allclose(te, leaky.transform(x_test), atol=1e-6):
            problems.append(Problem("the scaler was fitted on all rows, test rows included: the test set's mean "
                                    "and spread leaked into the training data",
                                    "fit on x_train only (mean and std of x_train), then apply to both"))
        elif np.allclose(te, StandardScaler().fit(x_test).transform(x_test), atol=1e-6):
            problems.append(Problem("the test rows were scaled with their own mean and std: test statistics "
                                    "leak and train and test no longer share one scale",
                                    "apply the training fold's mean and std to the test rows"))
        else:
            problems.append(Problem(
                f"differs from StandardScaler fitted on the training rows by up to "
                f"{max(np.abs(tr - good.transform(x_train)).max(), np.abs(te - good.transform(x_test)).max()):.3g}",
                "(x - mean) / std per column, with the training rows' mean and population std (ddof=0)"))

    return run_check("2.1 exercise 1 (leak-free scaler)", body)


def _dates(seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    start = np.datetime64("2024-01-01")
    return start + rng.integers(0, 365, size=100).astype("timedelta64[D]")   # shuffled, with repeated days


def _indices(got: object, n: int, problems: list[Problem]) -> tuple[np.ndarray, np.ndarray] | None:
    if not isinstance(got, tuple) or len(got) != 2:
        problems.append(Problem(f"returns a {type(got).__name__}, expected a pair (train_idx, test_idx)"))
        return None
    tr, te = (np.asarray(a).astype(np.int64).ravel() for a in got)
    if len(np.intersect1d(tr, te)) or len(tr) + len(te) != n or len(np.union1d(tr, te)) != n:
        problems.append(Problem(f"the indices are not a split of the {n} rows: {len(tr)} train, {len(te)} test, "
                                f"{len(np.intersect1d(tr, te))} in both",
                                "every row index 0..n-1 exactly once, in train or in test"))
        return None
    return tr, te


def check_time_split(fn: Callable[[np.ndarray, float], tuple[np.ndarray, np.ndarray]]) -> Check:
    """Check ``fn(dates, test_fraction) -> (train_idx, test_idx)``: the latest ``test_fraction`` of rows in test.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> check_time_split(lambda d, f: tuple(np.split(rng.permutation(len(d)), [80]))).passed
        False
    """

    def body(problems: list[Problem]) -> None:
        dates = _dates()
        got = attempt(fn, dates.copy(), 0.2, what="your function on 100 shuffled dates, test_fraction=0.2")
        split = _indices(got, len(dates), problems)
        if split is None:
            return
        tr, te = split
        if len(te) != 20:
            problems.append(Problem(f"{len(te)} test rows, expected 20 (test_fraction=0.2 of 100)"))
        later = int((dates[tr][:, None] > dates[te][None, :]).any(1).sum())
        if later:
            problems.append(Problem(
                f"{later} training rows are dated after the earliest test row ({dates[te].min()}): the model "
                f"would train on the future", "sort the rows by date (np.argsort) and put the last ones in test"))

    return run_check("2.1 exercise 2 (time split)", body)


def _labels(seed: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.permutation(np.repeat([0, 1, 2], [240, 45, 15]))   # imbalanced: 80%, 15%, 5%


def check_stratified_split(fn: Callable[[np.ndarray, float], tuple[np.ndarray, np.ndarray]]) -> Check:
    """Check ``fn(labels, test_fraction) -> (train_idx, test_idx)``: each class's share the same in both parts.

    Example:
        >>> check_stratified_split(lambda y, f: (np.arange(240), np.arange(240, 300))).passed
        False
    """

    def body(problems: list[Problem]) -> None:
        y = _labels()
        got = attempt(fn, y.copy(), 0.2, what="your function on 300 labels (80% / 15% / 5%), test_fraction=0.2")
        split = _indices(got, len(y), problems)
        if split is None:
            return
        tr, te = split
        classes, counts = np.unique(y, return_counts=True)
        for c, n in zip(classes, counts):
            k = int((y[te] == c).sum())
            if abs(k - 0.2 * n) > 1:
                problems.append(Problem(
                    f"class {c} has {n} rows ({n / len(y):.0%} of all) but {k} in test ({k / max(len(te), 1):.0%} "
                    f"of the test rows); stratified, it would have {0.2 * n:.0f}",
                    "split each class separately, or train_test_split(..., stratify=labels)"))
        if len(te) and len(set(te.tolist())) == len(te) and np.array_equal(np.sort(te), np.arange(len(te))):
            problems.append(Problem("the test rows are the first rows: a split must be random within each class"))

    return run_check("2.1 exercise 3 (stratified split)", body)
