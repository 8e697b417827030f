"""The training checks: each finds the failure it names, and passes a correct set-up."""

import pytest
import torch
from torch import nn

from dlbook.train import Trainer, optimizer_coverage, overfit_one_batch, prediction_shares


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(32, 8, generator=g), torch.randint(0, 4, (32,), generator=g)


def test_coverage_finds_a_recreated_model_and_missing_parameters():
    model = _mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    assert optimizer_coverage(model, optimizer).ok
    recreated = _mlp()                                    # the bug: a new model, the old optimizer
    coverage = optimizer_coverage(recreated, optimizer)
    assert coverage.foreign == 4 and len(coverage.missing) == 4 and "re-created" in coverage.message()
    head_only = torch.optim.SGD(model[2].parameters(), lr=0.1)
    assert optimizer_coverage(model, head_only).missing == ["0.weight", "0.bias"]
    model[0].requires_grad_(False)                        # frozen on purpose: not missing
    assert optimizer_coverage(model, head_only).ok


def test_trainer_refuses_an_optimizer_of_another_model():
    with pytest.raises(ValueError, match="re-created after the optimizer"):
        Trainer(_mlp(1), torch.optim.SGD(_mlp(2).parameters(), lr=0.1), nn.CrossEntropyLoss(), progress=False)


def test_overfit_one_batch_passes_a_correct_loop_and_fails_a_broken_one():
    x, y = _batch()
    model = _mlp()
    good = overfit_one_batch(model, (x, y), nn.CrossEntropyLoss(), torch.optim.Adam(model.parameters(), lr=1e-2))
    assert good.passed and good.losses[-1] < 0.05 < good.losses[0]
    stale = torch.optim.Adam(_mlp().parameters(), lr=1e-2)      # updates another model: this one never learns
    bad = overfit_one_batch(_mlp(), (x, y), nn.CrossEntropyLoss(), stale)
    assert not bad.passed and abs(bad.losses[-1] - bad.losses[0]) < 1e-6
    assert "optimizer_coverage" in bad.message()


def test_overfit_one_batch_refuses_bad_settings():
    model = _mlp()
    with pytest.raises(ValueError, match="at least one step"):
        overfit_one_batch(model, _batch(), nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1), steps=0)
    with pytest.raises(ValueError, match="positive"):
        overfit_one_batch(model, _batch(), nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1), target=0)


def test_prediction_shares_against_counting():
    logits = torch.randn(500, 5, generator=torch.Generator().manual_seed(3))
    shares = prediction_shares(logits)
    expected = torch.tensor([(logits.argmax(1) == k).float().mean().item() for k in range(5)])
    assert torch.allclose(shares, expected) and abs(shares.sum().item() - 1) < 1e-6
    assert torch.allclose(prediction_shares(torch.tensor([2, 2, 0]), num_classes=4), torch.tensor([1 / 3, 0, 2 / 3, 0]))
    with pytest.raises(ValueError, match="no predictions"):
        prediction_shares(torch.zeros(0, 3))
