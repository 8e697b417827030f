"""dlbook.train.throughput: the timed step is an ordinary SGD step, and the profiler's phase split is where the time went."""

import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlbook.train.throughput import PHASES, phase_split, profile_steps, sgd_step

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
