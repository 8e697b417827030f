"""eval_mode and predict: the one inference loop (restores training flags, precision, TTA, clear errors)."""

import pytest
import torch
from torch import nn

from dlbook.train import eval_mode, predict


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.BatchNorm1d(8), nn.Linear(8, 3))


def _batches(n=3, b=5):
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(b, 4, generator=g), torch.randint(0, 3, (b,), generator=g)) for _ in range(n)]


def test_eval_mode_restores_each_submodules_flag_even_on_error():
    model = _net().train()
    model[2].eval()  # a frozen BatchNorm under a training model
    with pytest.raises(RuntimeError, match="boom"):
        with eval_mode(model):
            assert not any(m.training for m in model.modules())
            raise RuntimeError("boom")
    assert model.training and model[1].training and not model[2].training


def test_predict_is_deterministic_concatenates_and_keeps_the_mode():
    model, batches = _net().train(), _batches()
    out, y = predict(model, batches, precision="fp32")
    assert out.shape == (15, 3) and out.dtype == torch.float32 and out.device.type == "cpu"
    assert torch.equal(y, torch.cat([t for _, t in batches]))
    model.eval()
    expected = torch.cat([model(x) for x, _ in batches]).detach()
    model.train()
    assert torch.allclose(out, expected) and model.training
    again, _ = predict(model, iter(batches), precision="fp32")  # a generator works too
    assert torch.equal(out, again)


def test_predict_tuple_inputs_and_bf16():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4, 3)

        def forward(self, a, b):
            return self.linear(a * b)

    x = torch.randn(6, 4)
    out, _ = predict(Two(), [((x, x), torch.zeros(6))], precision="bf16")
    assert out.dtype == torch.float32 and out.shape == (6, 3)


def test_predict_tta_averages_probabilities():
    model, batches = _net(), _batches()
    flip = lambda x: -x  # noqa: E731
    probs, _ = predict(model, batches, precision="fp32", tta=[lambda x: x, flip])
    plain, _ = predict(model, batches, precision="fp32")
    flipped, _ = predict(model, [(flip(x), t) for x, t in batches], precision="fp32")
    assert torch.allclose(probs, (plain.softmax(-1) + flipped.softmax(-1)) / 2, atol=1e-6)
    assert torch.allclose(probs.sum(-1), torch.ones(15))


def test_predict_errors_are_clear():
    model = _net()
    with pytest.raises(ValueError, match="no batches"):
        predict(model, [])
    with pytest.raises(ValueError, match="not a pair"):
        predict(model, [torch.randn(2, 4)])
    with pytest.raises(ValueError, match="tta"):
        predict(model, _batches(), tta=[])
    with pytest.raises(ValueError, match="precision"):
        predict(model, _batches(), precision="half")
