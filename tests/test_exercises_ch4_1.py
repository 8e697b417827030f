"""Chapter 4.1's exercise checks accept a correct answer and reject the usual slips, naming each."""

import pytest
import torch

from dlbook.exercises.ch4_1 import check_decay_groups, check_flip_tta, check_warmup_decay
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
