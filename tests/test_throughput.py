"""dlbook.train.throughput: the timed step is an ordinary SGD step, and the profiler's phase split is where the time went."""

import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlbook.train.throughput import OP_KINDS, PHASES, breakdown, phase_split, profile_steps, sgd_step

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 4 * 4, 5))


def _batches(n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(6, 3, 8, 8, generator=g), torch.randint(0, 5, (6,), generator=g)) for _ in range(n)]


def _reference_steps(model, batches, lr=0.01):
    """The hand-written loop every tutorial shows, with the same optimizer settings."""
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    losses = []
    for x, y in batches:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_the_step_is_the_hand_written_sgd_loop():
    ours, ref = _cnn(), _cnn()
    step = sgd_step(ours, "cpu", channels_last=False, precision="fp32")
    losses = [step(b) for b in _batches()]
    assert losses == pytest.approx(_reference_steps(ref, _batches()), abs=1e-6)
    for a, b in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert any((a - p).abs().max() > 1e-4 for a, p in zip(ours.parameters(), _cnn().parameters()))  # it moved


def test_channels_last_changes_the_layout_not_the_result():
    cl, ref = _cnn(), _cnn()
    step = sgd_step(cl, "cpu", channels_last=True, precision="fp32")
    for b in _batches():
        step(b)
    _reference_steps(ref, _batches())
    assert cl[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not cl[0].weight.is_contiguous()
    for a, b in zip(cl.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_bf16_autocast_runs_the_forward_in_bfloat16():
    seen = []
    model = _cnn()
    model[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    step = sgd_step(model, "cpu", channels_last=False, precision="bf16")
    loss_bf16 = step(_batches(1)[0])
    loss_fp32 = _reference_steps(_cnn(), _batches(1))[0]
    assert seen == [torch.bfloat16]
    assert loss_bf16 == pytest.approx(loss_fp32, abs=0.05) and loss_bf16 != loss_fp32


class _Slow(nn.Module):
    """Sleeps ``seconds`` in every forward pass: a known amount of forward time."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds

    def forward(self, x):
        time.sleep(self.seconds)
        return x


def test_phase_split_finds_where_the_time_went():
    model = nn.Sequential(_Slow(0.03), nn.Flatten(), nn.Linear(3 * 8 * 8, 5))
    step = sgd_step(model, "cpu", channels_last=False, precision="fp32")
    tic = time.perf_counter()
    prof = profile_steps(step, _batches(3), steps=2, warmup=1)
    wall_ms = (time.perf_counter() - tic) * 1000
    split = phase_split(prof, steps=2)
    assert list(split) == list(PHASES)
    assert split["forward"] >= 30 and split["backward"] < 30 and split["optimizer"] < 30
    assert 0 < sum(split.values()) * 2 <= wall_ms  # two profiled steps fit in the measured time


def test_top_operators_include_the_convolution():
    prof = profile_steps(sgd_step(_cnn(), "cpu", channels_last=False, precision="fp32"), _batches(2))
    names = {e.key for e in prof.key_averages()}
    assert "aten::convolution" in names and "aten::convolution_backward" in names


class _SlowLoader:
    """Batches that take ``seconds`` each to draw, like a loader waiting for its workers."""

    def __init__(self, batches, seconds):
        self.batches, self.seconds = batches, seconds

    def __iter__(self):
        for b in self.batches:
            time.sleep(self.seconds)
            yield b


def test_breakdown_puts_the_loader_the_convolutions_and_python_where_they_belong():
    model = nn.Sequential(_Slow(0.03), nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 8 * 8, 5))
    step = sgd_step(model, "cpu", channels_last=False, precision="fp32")
    b = breakdown(profile_steps(step, _SlowLoader(_batches(3), 0.04), steps=2, warmup=1, data=True), steps=2)
    assert list(b) == ["step", "data", *(k for k, _ in OP_KINDS), "other operators", "outside operators"]
    assert sum(v for k, v in b.items() if k != "step") == pytest.approx(b["step"])
    assert b["data"] >= 40                       # the loader's sleep, inside the "data" range
    assert b["outside operators"] >= 30          # _Slow's sleep runs in Python, in no operator
    assert b["convolutions"] > 0 and b["matrix products"] > 0 and b["batch norm"] == 0
    prefetched = breakdown(profile_steps(step, _SlowLoader(_batches(3), 0.04), steps=2, warmup=1), steps=2)
    assert prefetched["data"] == 0 and prefetched["step"] < b["step"]   # drawn before the profile: not in it


def test_breakdown_counts_the_data_ranges_operators_as_data():
    from dlbook.data import TensorLoader

    x, y = torch.randint(0, 256, (24, 3, 8, 8), dtype=torch.uint8), torch.randint(0, 5, (24,))
    loader = TensorLoader(x, y, 6, transform=lambda t: t.float().div(255).clone())
    step = sgd_step(_cnn(), "cpu", channels_last=False, precision="fp32")
    b = breakdown(profile_steps(step, loader, steps=2, warmup=1, data=True), steps=2)
    assert b["data"] > 0 and b["convolutions"] > 0
    with pytest.raises(ValueError, match=r"got 4 batches for warmup \+ steps = 5"):
        profile_steps(step, loader, steps=4, warmup=1, data=True)   # 4 batches in all, 5 needed


def test_bad_input_is_explained():
    with pytest.raises(ValueError, match="precision='half'"):
        sgd_step(_cnn(), "cpu", channels_last=False, precision="half")
    with pytest.raises(ValueError, match="must be positive"):
        sgd_step(_cnn(), "cpu", channels_last=False, precision="fp32", lr=0)
    step = sgd_step(_cnn(), "cpu", channels_last=False, precision="fp32")
    with pytest.raises(ValueError, match=r"a batch is \(images, labels\)"):
        step(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match="got 1 batches for warmup"):
        profile_steps(step, _batches(1), steps=1, warmup=1)
    with torch.profiler.profile() as prof:
        torch.ones(2) + 1
    with pytest.raises(ValueError, match="no range named"):
        phase_split(prof)
    with pytest.raises(ValueError, match="steps=0"):
        phase_split(prof, steps=0)
    with pytest.raises(ValueError, match="no range named 'step'"):
        breakdown(prof)
    with pytest.raises(ValueError, match="steps=0"):
        breakdown(prof, steps=0)
