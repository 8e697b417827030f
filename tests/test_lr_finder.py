"""The LR range test: a sensible suggestion that trains, exact restoration, cycling loaders, tuple inputs, checks."""

import doctest

import matplotlib
import pytest
import torch
from torch import nn

import dlbook.train.lr_finder as lr_finder
from dlbook.train.lr_finder import LRRangeResult, lr_range_test

matplotlib.use("Agg")


def _problem(seed=0, n=512):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, 8, generator=g) + 2.0 * nn.functional.one_hot(y, 8).float()
    return [(x[i:i + 32], y[i:i + 32]) for i in range(0, n, 32)]          # 16 batches


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 3))


def _loss(model, batches):
    with torch.no_grad():
        model.eval()
        return sum(nn.functional.cross_entropy(model(x), y).item() for x, y in batches) / len(batches)


def test_docstring_examples():
    failures, _ = doctest.testmod(lr_finder, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert failures == 0


def test_suggestion_lies_in_the_range_and_training_at_it_lowers_the_loss():
    batches = _problem()
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    result = lr_range_test(model, opt, nn.CrossEntropyLoss(), batches, start_lr=1e-5, end_lr=100, steps=80)
    assert result.diverged and len(result.lrs) < 80                          # lr 100 blows a linear net up
    assert 1e-5 < result.suggestion < 100 and 1e-5 < result.steepest_lr < 100
    assert result.suggestion == pytest.approx(result.lrs[min(range(len(result.lrs)),
                                                             key=result.smoothed.__getitem__)] / 10)
    ratios = [b / a for a, b in zip(result.lrs, result.lrs[1:])]
    assert max(ratios) == pytest.approx(min(ratios))                          # geometric steps
    before = _loss(model, batches)
    for group in opt.param_groups:
        group["lr"] = result.suggestion
    model.train()
    for x, y in batches * 3:
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    assert _loss(model, batches) < 0.7 * before
    ax = result.plot()
    assert ax.get_xscale() == "log" and len(ax.lines) == 4


def test_model_optimizer_gradients_modes_and_rng_are_restored_exactly():
    batches = _problem()
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-4)
    for x, y in batches[:3]:                                                # Adam state and BN stats exist
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    model[1].train()                                                        # mixed modes survive too
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    opt_state = {i: {k: v.clone() for k, v in s.items()} for i, s in opt.state_dict()["state"].items()}
    groups = [dict(g) for g in opt.state_dict()["param_groups"]]
    grads = [p.grad.clone() for p in model.parameters()]
    rng = torch.get_rng_state()
    lr_range_test(model, opt, nn.CrossEntropyLoss(), batches, start_lr=1e-4, end_lr=1.0, steps=20)
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    after = opt.state_dict()
    assert after["param_groups"] == groups
    assert all(torch.equal(v, opt_state[i][k]) for i, s in after["state"].items() for k, v in s.items())
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads))
    assert [m.training for m in model.modules()] == [False, False, True, False, False]
    assert torch.equal(torch.get_rng_state(), rng)


def test_a_short_loader_cycles_and_tuple_inputs_are_unpacked():
    class TwoInputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 1), nn.Linear(2, 1)

        def forward(self, u, v):
            return self.a(u) + self.b(v)

    g = torch.Generator().manual_seed(0)
    batches = [((torch.randn(8, 3, generator=g), torch.randn(8, 2, generator=g)), torch.randn(8, 1, generator=g))
               for _ in range(2)]
    model = TwoInputs()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    result = lr_range_test(model, opt, nn.MSELoss(), batches, start_lr=1e-4, end_lr=1e-2, steps=12)
    assert len(result.lrs) == len(result.losses) == len(result.smoothed) == 12 and not result.diverged
    assert result.lrs[0] == pytest.approx(1e-4) and result.lrs[-1] == pytest.approx(1e-2)
    assert result.losses[0] == pytest.approx(result.smoothed[0])           # bias correction: no pull towards 0


def test_bad_arguments_raise_clearly():
    model, batches = _model(), _problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    run = lambda **kw: lr_range_test(model, opt, nn.CrossEntropyLoss(), batches, **kw)   # noqa: E731
    with pytest.raises(ValueError, match="start_lr < end_lr"):
        run(start_lr=1.0, end_lr=1.0)
    with pytest.raises(ValueError, match="start_lr < end_lr"):
        run(start_lr=0.0)
    with pytest.raises(ValueError, match="at least 2"):
        run(steps=1)
    with pytest.raises(ValueError, match="smooth"):
        run(smooth=1.0)
    with pytest.raises(ValueError, match="diverge"):
        run(diverge=1.0)
    with pytest.raises(ValueError, match="precision"):
        run(precision="half")
    with pytest.raises(ValueError, match="no batches"):
        lr_range_test(model, opt, nn.CrossEntropyLoss(), [], steps=5)
    with pytest.raises(ValueError, match="too few"):
        LRRangeResult(lrs=[0.1], losses=[1.0], smoothed=[1.0]).suggestion
