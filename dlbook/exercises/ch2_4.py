"""Checks for the exercises of chapter 2.4 (deployment and operations).

* :func:`check_image_request`: a validator for the JSON image a service receives, fed malformed
  requests (wrong type, ragged lists, text, wrong shape, NaN, values out of range) and good ones,
  compared with ``dlbook.deploy.runtime.image_from_list``.
* :func:`check_percentile`: the latency percentile behind "p99", checked against NumPy's
  linear interpolation, including the nearest-rank slip.
* :func:`check_ks_statistic`: the two-sample Kolmogorov-Smirnov statistic that the drift monitor
  computes, checked against ``scipy.stats.ks_2samp`` on samples with ties.

Example:
    >>> import numpy as np
    >>> from dlbook.exercises import report
    >>> report(check_percentile(lambda t, q: float(np.percentile(t, q))))
    2.4 exercise 2 (latency percentile): correct
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from dlbook.exercises import Check, Problem, StudentError, attempt, run_check

#: Malformed requests, as (what it is, the request's ``image`` value); each must be refused with a ValueError.
BAD_REQUESTS = [
    ("a dict instead of a nested list", {"pixels": [[[0, 0, 0]]]}),
    ("a ragged list (rows of different lengths)", [[[0, 0, 0], [0, 0, 0]], [[0, 0, 0]]]),
    ("text where pixels should be", [[["red", "green", "blue"]]]),
    ("a 2-D list (H, W) without channels", [[0, 128], [255, 64]]),
    ("a NaN pixel", [[[float("nan"), 0.0, 0.0]]]),
    ("a pixel of 300", [[[300, 0, 0]]]),
    ("a negative pixel", [[[-1, 0, 0]]]),
    ("four channels (RGBA)", [[[0, 0, 0, 255]]]),
    ("an empty list", []),
]
#: Well-formed requests, as (what it is, the ``image`` value); each must come back as an array.
GOOD_REQUESTS = [
    ("a 2x2 RGB image of ints", [[[0, 128, 255], [1, 2, 3]], [[4, 5, 6], [7, 8, 9]]]),
    ("a 1x1 image of floats", [[[0.5, 254.5, 255.0]]]),
]


def check_image_request(fn: Callable[[object], np.ndarray]) -> Check:
    """Check ``fn(values)``: a JSON image ``(H, W, 3)`` in [0, 255] to a float32 array, or a ``ValueError``.

    Good requests must come back as ``float32`` arrays of their shape with the same values; every
    request in :data:`BAD_REQUESTS` must raise ``ValueError`` (a service answers it with HTTP 422)
    with a message, not another exception (a 500) and not an array.
    """

    def body(problems: list[Problem]) -> None:
        for what, values in GOOD_REQUESTS:
            out = attempt(fn, values, what=f"validate({what})")
            expected = np.asarray(values, dtype=np.float32)
            if not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.shape != expected.shape \
                    or not np.array_equal(out, expected):
                got = f"{type(out).__name__} {getattr(out, 'dtype', '')} {getattr(out, 'shape', '')}".strip()
                problems.append(Problem(f"{what}: returned {got}, expected a float32 array of shape "
                                        f"{expected.shape} with the same values",
                                        "return np.asarray(values, dtype=np.float32) once it passed the checks"))
        for what, values in BAD_REQUESTS:
            try:
                out = fn(values)
            except ValueError as exc:
                if not str(exc).strip():
                    problems.append(Problem(f"{what}: raised ValueError without a message",
                                            "say what is wrong and what to send, e.g. 'values must lie in [0, 255]'"))
                continue
            except NotImplementedError:
                raise StudentError(Problem("validate is not written yet: it raised NotImplementedError",
                                           "replace the `raise NotImplementedError` with your code")) from None
            except Exception as exc:  # noqa: BLE001 - the finding is the wrong exception type
                problems.append(Problem(f"{what}: raised {type(exc).__name__} ({exc}), which a service turns into "
                                        "a 500 error", "catch it and raise ValueError with a message (a 422)"))
                continue
            shape = getattr(out, "shape", None)
            problems.append(Problem(f"{what}: accepted (returned {type(out).__name__}"
                                    + (f" of shape {shape}" if shape is not None else "") + ")",
                                    "refuse it with a ValueError that says what to send"))

    return run_check("2.4 exercise 1 (validate an image request)", body)


def check_percentile(fn: Callable[[list, float], float]) -> Check:
    """Check ``fn(times, q)``: the ``q``-th percentile (0-100) of a list of latencies, interpolated linearly.

    Compared with ``np.percentile`` (its default, linear method) on several lists and percentiles,
    the 99th among them, and on a list that is not sorted.
    """

    def body(problems: list[Problem]) -> None:
        rng = np.random.default_rng(0)
        cases = [([3.0, 1.0, 2.0], 50), ([10.0, 20.0], 25), (list(rng.lognormal(1.0, 0.5, 200)), 99),
                 (list(rng.lognormal(1.0, 0.5, 37)), 90), ([5.0], 99), ([1.0, 2.0, 3.0, 4.0], 0),
                 ([1.0, 2.0, 3.0, 4.0], 100)]
        for times, q in cases:
            want = float(np.percentile(times, q))
            got = attempt(fn, list(times), q, what=f"percentile(<{len(times)} times>, {q})")
            if not isinstance(got, (int, float, np.floating)) or not math.isclose(float(got), want, rel_tol=1e-9,
                                                                                abs_tol=1e-12):
                ordered = sorted(times)
                nearest = ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]
                hint = ("that is the nearest rank; interpolate between the two ranks around "
                        "(n - 1) * q / 100 of the sorted times" if isinstance(got, (int, float, np.floating))
                        and math.isclose(float(got), nearest) else
                        "sort the times, find the position (n - 1) * q / 100 and interpolate linearly between "
                        "the two neighbours")
                problems.append(Problem(f"percentile of {len(times)} times at q={q}: got {got!r}, expected "
                                        f"{want:.6g}", hint))
                return

    return run_check("2.4 exercise 2 (latency percentile)", body)


def check_ks_statistic(fn: Callable[[np.ndarray, np.ndarray], float]) -> Check:
    """Check ``fn(a, b)``: the largest gap between the two samples' empirical distribution functions.

    Compared with ``scipy.stats.ks_2samp(a, b).statistic`` on samples of different sizes, with ties,
    including two that differ only in scale.
    """
    from scipy import stats

    def body(problems: list[Problem]) -> None:
        rng = np.random.default_rng(1)
        cases = [("two samples from one distribution", rng.normal(size=300), rng.normal(size=120)),
                 ("a shifted sample", rng.normal(size=200), rng.normal(0.5, 1.0, size=150)),
                 ("the same centre, twice the spread", rng.normal(size=250), rng.normal(0, 2.0, size=250)),
                 ("rounded values, so with many ties", rng.normal(size=200).round(1), rng.normal(0.2, 1, 90).round(1)),
                 ("a second sample entirely below the first", np.array([10.0, 11.0, 12.0]), np.array([1.0, 2.0]))]
        for what, a, b in cases:
            want = float(stats.ks_2samp(a, b).statistic)
            got = attempt(fn, a.copy(), b.copy(), what=f"ks_statistic({what})")
            if not isinstance(got, (int, float, np.floating)) or not math.isclose(float(got), want, abs_tol=1e-9):
                problems.append(Problem(f"{what}: got {got!r}, expected {want:.6g}",
                                        "evaluate both empirical CDFs at every value of *both* samples "
                                        "(np.searchsorted(sorted_x, values, side='right') / len(x)) and take the "
                                        "largest absolute difference"))
                return

    return run_check("2.4 exercise 3 (KS statistic)", body)


__all__ = ["BAD_REQUESTS", "GOOD_REQUESTS", "check_image_request", "check_ks_statistic", "check_percentile"]
