"""Timing, one way for the chapters and the benchmarks: warm up, synchronise, repeat, summarise.

Three questions, three functions, each returning a :class:`Timing` or a rate:

* *How long does this take?* :func:`time_call` runs ``fn()`` untimed ``warmup``
  times, then times ``repeats`` calls. Report ``best_s`` on a shared machine (the
  least disturbed run, as ``timeit`` does) and ``median_s`` beside it.
* *How long does one request wait?* :func:`time_each` times ``fn(item)`` once per
  item: per-call latency, with ``p50_ms`` and ``p99_ms``.
* *How many items per second?* :func:`throughput` runs ``step(batch)`` over
  batches and divides the items by the time.

On CUDA, kernels run asynchronously, so every timer synchronises the device
before starting and after stopping (pass ``device``); otherwise the time of
queuing the kernels would be measured, not of running them. :func:`forever`
turns a loader into an endless stream of batches for timing loops.

Example:
    >>> t = time_call(lambda: sum(range(1000)), repeats=5)
    >>> t.best_s <= t.median_s
    True
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import torch


@dataclass(frozen=True)
class Timing:
    """Wall times of repeated calls, in seconds, with the summaries worth reporting."""

    times_s: tuple[float, ...]

    @property
    def best_s(self) -> float:
        """The fastest call, the least disturbed by other programs."""
        return min(self.times_s)

    @property
    def median_s(self) -> float:
        return statistics.median(self.times_s)

    @property
    def mean_s(self) -> float:
        return statistics.fmean(self.times_s)

    def percentile_ms(self, q: float) -> float:
        """The ``q``-th percentile (0-100) in milliseconds, interpolated linearly as NumPy does."""
        if not 0 <= q <= 100:
            raise ValueError(f"q={q}; a percentile is between 0 and 100")
        ordered = sorted(self.times_s)
        pos = (len(ordered) - 1) * q / 100
        lo, hi = math.floor(pos), math.ceil(pos)
        return 1000 * (ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo))

    @property
    def p50_ms(self) -> float:
        return self.percentile_ms(50)

    @property
    def p99_ms(self) -> float:
        return self.percentile_ms(99)


def synchronize(device: torch.device | str | None) -> None:
    """Wait for the queued work on a CUDA ``device``; nothing on a CPU (or with None)."""
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _check(name: str, value: int, least: int) -> None:
    if not isinstance(value, int) or value < least:
        raise ValueError(f"{name}={value!r}; use an integer >= {least}")


def time_call(fn: Callable[[], object], *, repeats: int = 5, warmup: int = 1,
              device: torch.device | str | None = None) -> Timing:
    """Call ``fn()`` ``warmup`` times untimed, then time ``repeats`` calls one by one.

    Example:
        >>> time_call(lambda: torch.randn(64, 64) @ torch.randn(64, 64), repeats=3).best_s > 0
        True
    """
    _check("repeats", repeats, 1)
    _check("warmup", warmup, 0)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        tic = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - tic)
    return Timing(tuple(times))


def time_each(fn: Callable[[object], object], items: Iterable, *, warmup: int = 1,
              device: torch.device | str | None = None) -> Timing:
    """Per-call latency: ``fn(item)`` for each item, each call timed alone (the first ``warmup`` items untimed).

    Example:
        >>> t = time_each(lambda text: text.upper(), ["a", "b", "c", "d"], warmup=1)
        >>> len(t.times_s), t.p50_ms >= 0
        (3, True)
    """
    _check("warmup", warmup, 0)
    times = []
    for i, item in enumerate(items):
        if i < warmup:
            fn(item)
            continue
        synchronize(device)
        tic = time.perf_counter()
        fn(item)
        synchronize(device)
        times.append(time.perf_counter() - tic)
    if not times:
        raise ValueError(f"no item was timed: give more than warmup={warmup} items")
    return Timing(tuple(times))


def throughput(step: Callable[[object], object], batches: Iterable, *, steps: int, warmup: int = 1,
               device: torch.device | str | None = None) -> float:
    """Items per second of ``step(batch)`` over ``steps`` batches, after ``warmup`` untimed ones.

    A batch is ``(inputs, targets)`` and holds ``len(targets)`` items. Pass an endless
    iterator (:func:`forever`) or at least ``warmup + steps`` batches.

    Example:
        >>> data = [(torch.randn(8, 4), torch.zeros(8))] * 3
        >>> throughput(lambda batch: batch[0].sum(), data, steps=2) > 0
        True
    """
    _check("steps", steps, 1)
    _check("warmup", warmup, 0)
    it = iter(batches)
    items, tic = 0, None
    for i in range(warmup + steps):
        if i == warmup:
            synchronize(device)
            tic, items = time.perf_counter(), 0
        try:
            batch = next(it)
        except StopIteration:
            raise ValueError(f"the batches ran out after {i} of warmup + steps = {warmup + steps}; "
                             "pass forever(loader)") from None
        step(batch)
        items += len(batch[1])
    synchronize(device)
    return items / (time.perf_counter() - tic)


def forever(loader: Iterable) -> Iterator:
    """Batches without end, one epoch after another (a loader that reshuffles does so each epoch).

    Example:
        >>> import itertools
        >>> list(itertools.islice(forever([1, 2]), 5))
        [1, 2, 1, 2, 1]
    """
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ValueError("the loader yielded no batches, so it cannot be repeated forever")
