"""Chapter 4.1's exercise checks accept a correct answer and reject the usual slips, naming each."""

import math

import pytest
import torch

from dlbook.exercises.ch4_1 import (EPOCH_SLIPS, check_decay_groups, check_ema_update, check_epochs_that_fit,
                                    check_flip_tta, check_warmup_decay)
from exercise_asserts import rejected  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")




# -- exercise 1: weight-decay groups -----------------------------------------------------------

def by_dimension(model, wd):
    decay = [p for p in model.parameters() if p.dim() > 1]
    rest = [p for p in model.parameters() if p.dim() <= 1]
    return [{"params": decay, "weight_decay": wd}, {"params": rest, "weight_decay": 0.0}]


def test_decay_groups_accepts_weights_only():
    assert check_decay_groups(by_dimension).passed


def test_decay_groups_rejects_decay_on_everything():
    rejected(check_decay_groups(lambda m, wd: [{"params": m.parameters(), "weight_decay": wd}]), "batchnorm")


def test_decay_groups_rejects_missing_and_duplicated_parameters():
    rejected(check_decay_groups(lambda m, wd: [{"params": [p for p in m.parameters() if p.dim() > 1],
                                                "weight_decay": wd}]), "in no group")
    rejected(check_decay_groups(lambda m, wd: by_dimension(m, wd) + [{"params": list(m.parameters())[:1],
                                                                      "weight_decay": wd}]), "more than one group")


def test_decay_groups_rejects_a_wrong_return_type():
    rejected(check_decay_groups(lambda m, wd: {"params": list(m.parameters())}), "list of dicts")


# -- exercise 2: test-time flips -----------------------------------------------------------------

def right(model, images):
    model.eval()
    with torch.no_grad():
        return (model(images).softmax(-1) + model(images.flip(3)).softmax(-1)) / 2


def article_style(model, images):   # the starter: vertical flip, training mode, averaged logits
    with torch.no_grad():
        return (model(images) + model(images.flip(2))) / 2


def test_flip_tta_accepts_the_eval_mode_average_of_probabilities():
    assert check_flip_tta(right).passed


def test_flip_tta_names_every_slip_of_the_starter():
    rejected(check_flip_tta(article_style), "upside down", "training mode", "logits")


@pytest.mark.parametrize("fn, words", [
    (lambda m, x: (m.eval()(x).softmax(-1) + m(x.flip(2)).softmax(-1)).detach() / 2, ("upside down",)),
    (lambda m, x: (m(x).softmax(-1) + m(x.flip(3)).softmax(-1)).detach() / 2, ("training mode",)),
    (lambda m, x: right(m, x)[:3], ("expected (6, 10)",)),
    (lambda m, x: right(m, x) * 0.9 + 0.01, ("matches none",)),
])
def test_flip_tta_rejects_each_slip_alone(fn, words):
    rejected(check_flip_tta(fn), *words)


# -- exercise 3: warm-up and linear decay --------------------------------------------------------

def lr_at(step, total, peak, warmup):
    if step < warmup:
        return peak * step / warmup
    return peak * (total - step) / max(1, total - warmup)


def test_warmup_decay_accepts_the_schedule():
    assert check_warmup_decay(lr_at).passed


def test_warmup_decay_rejects_off_by_one_and_a_start_at_the_peak():
    rejected(check_warmup_decay(lambda s, t, p, w: lr_at(s + 1, t, p, w)), "expected", "warm-up")
    rejected(check_warmup_decay(lambda s, t, p, w: p * (t - s) / t), "expected")
    rejected(check_warmup_decay(lambda s, t, p, w: (_ for _ in ()).throw(NotImplementedError())), "not written yet")


# -- exercise 4: re-planning the epochs --------------------------------------------------------

def epochs_that_fit(seconds, done, elapsed, last, margin):
    return done + max(0, math.floor(margin * (seconds - elapsed) / max(elapsed / done, last)))


def test_epochs_that_fit_accepts_the_budget_rule():
    assert check_epochs_that_fit(epochs_that_fit).passed


@pytest.mark.parametrize("slip", list(EPOCH_SLIPS))
def test_epochs_that_fit_names_each_slip(slip):
    rejected(check_epochs_that_fit(EPOCH_SLIPS[slip][0]), slip)


def test_epochs_that_fit_rejects_fractions_and_other_answers():
    rejected(check_epochs_that_fit(lambda s, d, e, la, m: (s - e) / la), "whole numbers")
    rejected(check_epochs_that_fit(lambda s, d, e, la, m: d + 1), "expected")


# -- exercise 5: a moving average of the weights -----------------------------------------------

def ema_update(average, model, decay):
    with torch.no_grad():
        for a, p in zip([*average.parameters(), *average.buffers()], [*model.parameters(), *model.buffers()]):
            if a.is_floating_point():
                a.mul_(decay).add_(p, alpha=1 - decay)


def test_ema_update_accepts_parameters_and_buffers():
    assert check_ema_update(ema_update).passed


def test_ema_update_names_the_usual_slips():
    def params_only(average, model, decay):
        with torch.no_grad():
            for a, p in zip(average.parameters(), model.parameters()):
                a.lerp_(p, 1 - decay)

    def rebinds(average, model, decay):
        for a, p in zip(average.parameters(), model.parameters()):
            a = decay * a + (1 - decay) * p  # noqa: F841 (the slip)

    rejected(check_ema_update(params_only), "buffers")
    rejected(check_ema_update(lambda a, m, d: ema_update(a, m, 1 - d)), "swapped")
    rejected(check_ema_update(rebinds), "did not change")
    rejected(check_ema_update(lambda a, m, d: a.load_state_dict(m.state_dict())), "copy of the model")
    rejected(check_ema_update(lambda a, m, d: ema_update(a, m, d / 2)), "differ from the reference")
