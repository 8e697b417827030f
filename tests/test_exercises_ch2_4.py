"""Chapter 2.4's exercise checks accept correct answers and reject the usual slips, naming each."""

import numpy as np
from scipy import stats

from dlbook.deploy.runtime import image_from_list
from dlbook.exercises.ch2_4 import check_image_request, check_ks_statistic, check_percentile
from exercise_asserts import rejected  # noqa: E402




def validate(values):
    if not isinstance(values, list) or not values:
        raise ValueError("send a non-empty nested list (H, W, 3)")
    try:
        a = np.asarray(values, dtype=np.float32)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"numbers only: {exc}") from None
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"shape (H, W, 3), got {a.shape}")
    if not np.isfinite(a).all() or a.min() < 0 or a.max() > 255:
        raise ValueError("values must be finite, in [0, 255]")
    return a


def test_image_request_accepts_a_full_validator():
    assert check_image_request(validate).passed


def test_image_request_rejects_no_checks_and_names_what_got_through():
    rejected(check_image_request(lambda v: np.asarray(v, dtype=np.float32)), "accepted", "pixel of 300", "nan")


def test_image_request_rejects_the_services_own_check_for_rgba_and_empty():
    # the service's image_from_list accepts any channel count and an empty list; the exercise asks for RGB
    rejected(check_image_request(image_from_list), "four channels")


def test_image_request_rejects_wrong_exception_types_and_silent_errors():
    def typeerror(values):
        if not isinstance(values, list):
            raise TypeError("not a list")
        return validate(values)

    rejected(check_image_request(typeerror), "500")
    def silent(values):
        try:
            return validate(values)
        except ValueError:
            raise ValueError("") from None

    rejected(check_image_request(silent), "without a message")


def test_percentile_accepts_linear_interpolation_and_rejects_nearest_rank():
    def linear(times, q):
        t = sorted(times)
        pos = (len(t) - 1) * q / 100
        lo, hi = int(np.floor(pos)), int(np.ceil(pos))
        return t[lo] + (t[hi] - t[lo]) * (pos - lo)

    assert check_percentile(linear).passed
    rejected(check_percentile(lambda t, q: sorted(t)[min(len(t) - 1, int(q / 100 * len(t)))]), "nearest rank")
    rejected(check_percentile(lambda t, q: float(np.mean(t))), "expected")


def test_ks_statistic_accepts_the_definition_and_rejects_one_sided_evaluation():
    def ks(a, b):
        a, b = np.sort(a), np.sort(b)
        v = np.concatenate([a, b])
        return float(np.abs(np.searchsorted(a, v, "right") / len(a) - np.searchsorted(b, v, "right") / len(b)).max())

    def only_at_a(a, b):   # the slip: the ECDFs compared only at the first sample's values
        a, b = np.sort(a), np.sort(b)
        return float(np.abs(np.searchsorted(a, a, "right") / len(a) - np.searchsorted(b, a, "right") / len(b)).max())

    assert check_ks_statistic(ks).passed
    assert check_ks_statistic(lambda a, b: stats.ks_2samp(a, b).statistic).passed
    rejected(check_ks_statistic(only_at_a), "both")
    rejected(check_ks_statistic(lambda a, b: abs(np.mean(a) - np.mean(b))), "expected")
