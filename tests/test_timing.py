"""dlbook.timing: warm-up, repeats, summaries, per-call latency, throughput, endless batches."""

import itertools

import pytest
import torch

from dlbook import timing
from dlbook.timing import Timing, forever, throughput, time_call, time_each


def test_timing_summaries():
    t = Timing((0.004, 0.001, 0.002, 0.003))
    assert t.best_s == 0.001 and t.median_s == pytest.approx(0.0025) and t.mean_s == pytest.approx(0.0025)
    assert t.p50_ms == pytest.approx(2.5) and t.percentile_ms(100) == pytest.approx(4.0)
    assert t.p99_ms == pytest.approx(1000 * (0.003 + 0.001 * 0.97))
    with pytest.raises(ValueError, match="between 0 and 100"):
        t.percentile_ms(101)


def test_time_call_warms_up_then_repeats(monkeypatch):
    calls, clock = [], iter(range(100))
    monkeypatch.setattr(timing.time, "perf_counter", lambda: next(clock))
    t = time_call(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5 and t.times_s == (1, 1, 1)
    with pytest.raises(ValueError, match="repeats=0"):
        time_call(lambda: None, repeats=0)


def test_time_each_times_every_item_after_the_warmup():
    seen = []
    t = time_each(seen.append, ["w", "a", "b"], warmup=1)
    assert seen == ["w", "a", "b"] and len(t.times_s) == 2
    with pytest.raises(ValueError, match="no item was timed"):
        time_each(seen.append, ["w"], warmup=1)


def test_throughput_counts_items_after_warmup(monkeypatch):
    clock = itertools.count(0.0, 2.0)
    monkeypatch.setattr(timing.time, "perf_counter", lambda: next(clock))
    batches = forever([(torch.zeros(4, 2), torch.zeros(4)), (torch.zeros(6, 2), torch.zeros(6))])
    steps = []
    rate = throughput(steps.append, batches, steps=2, warmup=1)
    assert len(steps) == 3 and rate == pytest.approx((6 + 4) / 2.0)
    with pytest.raises(ValueError, match="ran out"):
        throughput(steps.append, [(torch.zeros(1), torch.zeros(1))], steps=2)


def test_forever_repeats_and_refuses_an_empty_loader():
    assert list(itertools.islice(forever([1, 2, 3]), 7)) == [1, 2, 3, 1, 2, 3, 1]
    with pytest.raises(ValueError, match="no batches"):
        next(forever([]))
