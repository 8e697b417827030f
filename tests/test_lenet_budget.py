"""LeNet-5 shapes, the budget switch and the setup cell."""

import pytest
import torch

from dlbook import budget
from dlbook.models.lenet import LeNet5, LeNetConfig
from dlbook.notebook import record, setup


def test_lenet_shapes_and_parameter_count():
    model = LeNet5()
    assert model(torch.zeros(4, 1, 28, 28)).shape == (4, 10)
    # conv1 156 + conv2 2,416 + fc 48,120 + 10,164 + 850
    assert sum(p.numel() for p in model.parameters()) == 61_706
    model32 = LeNet5(LeNetConfig(image_size=32, activation="tanh", pool="avg"))
    assert model32(torch.zeros(1, 1, 32, 32)).shape == (1, 10)


def test_lenet_rejects_wrong_input():
    with pytest.raises(ValueError, match=r"expects \(B, 1, H, W\)"):
        LeNet5()(torch.zeros(4, 28, 28))


def test_lenet_learns_a_batch():
    torch.manual_seed(0)
    model, x, y = LeNet5(), torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1 * first


def test_budget_switch(monkeypatch, capsys):
    """The switch is read by budget.current(); chapters pick sizes with Run.pick (from setup)."""
    monkeypatch.setenv("DLBOOK_BUDGET", "smoke")
    assert budget.current() == "smoke" and setup(seed=0).pick(full=10, smoke=1) == 1
    monkeypatch.delenv("DLBOOK_BUDGET")
    assert budget.current() == "full" and setup(seed=0).pick(full=10, smoke=1) == 10
    monkeypatch.setenv("DLBOOK_BUDGET", "fast")
    with pytest.raises(ValueError, match="'full'.*'smoke'"):
        budget.current()


def test_setup_and_record(monkeypatch, capsys):
    monkeypatch.setenv("DLBOOK_BUDGET", "smoke")
    run = setup(seed=3)
    assert run.smoke and run.pick(full=5, smoke=2) == 2 and run.seed == 3 and run.versions["torch"]
    assert torch.initial_seed() == 3
    assert record(acc=torch.tensor(0.5)) is None
    with pytest.raises(TypeError, match="needs a number or string"):
        record(bad=object())
    out = capsys.readouterr().out
    assert "budget=smoke" in out and "acc: 0.5000" in out
