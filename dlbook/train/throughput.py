"""One timed training step under given settings, and where its time goes.

Chapter 2.3 and the benchmarks compare the same model trained under different
settings (threads, memory layout, precision, ``torch.compile``, input pipeline).
For the comparison to mean anything, every setting must run the same step:

* :func:`sgd_step` builds it: forward, cross-entropy, backward, Nesterov SGD, with
  the layout and precision as arguments, returning the loss as a Python float (as
  any loop that logs its loss does, which also waits for the step to finish). Its
  three phases run inside ``torch.profiler.record_function`` ranges named
  ``"forward"``, ``"backward"`` and ``"optimizer"``; outside a profiler these cost
  a few microseconds, so the timed step and the profiled step are the same code.
* :func:`profile_steps` runs a step under ``torch.profiler`` and
  :func:`phase_split` reads the three ranges back: milliseconds per step in each.

Time it with :func:`dlbook.timing.throughput`.

Example:
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    >>> step = sgd_step(model, torch.device("cpu"), channels_last=False, precision="fp32")
    >>> batch = (torch.randn(8, 3, 2, 2), torch.randint(0, 3, (8,)))
    >>> isinstance(step(batch), float)
    True
    >>> sorted(phase_split(profile_steps(step, [batch] * 3, steps=2), steps=2))
    ['backward', 'forward', 'optimizer']
"""

from __future__ import annotations

import itertools
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function

from dlbook.train.device import autocast, autocast_dtype

PHASES = ("forward", "backward", "optimizer")


def sgd_step(model: nn.Module, device: torch.device | str, *, channels_last: bool, precision: str,
             lr: float = 0.01) -> Callable[[tuple], float]:
    """One training step of ``model`` (forward, cross-entropy, backward, Nesterov SGD), as a function of a batch.

    The model is moved to ``device`` (channels-last when asked) and put in training mode;
    the optimizer is SGD with Nesterov momentum 0.9 and weight decay 5e-4 (chapter 4.1's).
    ``model`` may be a ``torch.compile`` wrapper: its parameters are the original model's.

    Args:
        model: a classifier returning logits ``(B, classes)``.
        device: where to train.
        channels_last: store 4-D weights and inputs channels-last (NHWC).
        precision: ``"auto"``, ``"bf16"``, ``"fp16"`` or ``"fp32"``, as in :func:`autocast_dtype`.
        lr: the learning rate.

    Returns:
        ``step(batch) -> loss``, where a batch is ``(images, labels)``.

    Example:
        >>> step = sgd_step(nn.Linear(4, 2), "cpu", channels_last=False, precision="fp32")
        >>> step((torch.randn(5, 4), torch.tensor([0, 1, 0, 1, 1]))) > 0
        True
    """
    if not lr > 0:
        raise ValueError(f"lr={lr}; a learning rate must be positive")
    device = torch.device(device)
    dtype = autocast_dtype(device, precision)  # checks the name of the precision
    model.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format).train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)

    def step(batch) -> float:
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise ValueError(f"a batch is (images, labels), got {type(batch).__name__}; "
                             "pass the batches of a loader such as dlbook.data.TensorLoader")
        x, y = batch
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with record_function("forward"), autocast(device, dtype):
            loss = F.cross_entropy(model(x), y)
        with record_function("backward"):
            opt.zero_grad(set_to_none=True)
            loss.backward()
        with record_function("optimizer"):
            opt.step()
        return loss.item()

    return step


def profile_steps(step: Callable[[object], object], batches: Iterable, *, steps: int = 1,
                  warmup: int = 1, record_shapes: bool = False) -> profile:
    """Run ``step`` on ``warmup`` batches untimed, then on ``steps`` more under ``torch.profiler`` (CPU, and CUDA
    when available); return the finished profiler.

    Read it with ``prof.key_averages().table(sort_by="self_cpu_time_total")`` (top operators)
    or :func:`phase_split` (forward / backward / optimizer).

    Example:
        >>> step = sgd_step(nn.Linear(4, 2), "cpu", channels_last=False, precision="fp32")
        >>> prof = profile_steps(step, [(torch.randn(5, 4), torch.zeros(5, dtype=torch.long))] * 2)
        >>> any(e.key == "aten::addmm" for e in prof.key_averages())
        True
    """
    if not isinstance(steps, int) or steps < 1 or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"steps={steps!r}, warmup={warmup!r}; profile at least one step, warm up zero or more")
    it = iter(batches)
    needed = list(itertools.islice(it, warmup + steps))
    if len(needed) < warmup + steps:
        raise ValueError(f"got {len(needed)} batches for warmup + steps = {warmup + steps}; "
                         "pass more, or dlbook.timing.forever(loader)")
    for batch in needed[:warmup]:
        step(batch)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities, record_shapes=record_shapes) as prof:
        for batch in needed[warmup:]:
            step(batch)
    return prof


def phase_split(prof: profile, steps: int = 1, phases: tuple[str, ...] = PHASES) -> dict[str, float]:
    """Milliseconds of CPU wall time per step inside each ``record_function`` range named in ``phases``.

    Args:
        prof: a finished profiler, e.g. from :func:`profile_steps`.
        steps: how many steps it recorded (the totals are divided by it).
        phases: the range names (those :func:`sgd_step` marks by default).

    Raises:
        ValueError: a phase is missing from the profile (the step did not mark it).

    Example:
        >>> with profile() as prof:
        ...     with record_function("forward"):
        ...         _ = torch.ones(3) * 2
        >>> list(phase_split(prof, phases=("forward",)))
        ['forward']
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps={steps!r}; give the number of steps the profile recorded (>= 1)")
    totals = {name: 0.0 for name in phases}
    found = set()
    for event in prof.events():
        if event.name in totals and event.device_type == torch.autograd.DeviceType.CPU:
            totals[event.name] += event.time_range.elapsed_us() / 1000
            found.add(event.name)
    missing = [name for name in phases if name not in found]
    if missing:
        raise ValueError(f"the profile has no range named {missing}; mark the step's phases with "
                         "torch.profiler.record_function (as dlbook.train.throughput.sgd_step does)")
    return {name: total / steps for name, total in totals.items()}
