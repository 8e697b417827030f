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
* :func:`profile_steps` runs a step under ``torch.profiler`` (each step in a ``"step"``
  range, and with ``data=True`` the loader's next batch in a ``"data"`` range) and
  :func:`phase_split` reads the ranges back: milliseconds per step in each.
* :func:`breakdown` sorts a profiled step's time into the input pipeline, the operators
  by kind (convolutions, batch norm, matrix products, casts and copies, the others) and
  what runs outside any operator (Python, the framework's dispatch, autograd's
  bookkeeping, waiting): the profiler's view of why a step takes as long as it does.

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
from typing import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function

from dlbook.train.device import autocast, autocast_dtype

PHASES = ("forward", "backward", "optimizer")
#: The range :func:`profile_steps` marks around each step (mark your own loop with ``record_function(STEP)``).
STEP = "step"
#: The range :func:`profile_steps` marks around drawing each batch.
DATA = "data"

#: :func:`breakdown`'s operator kinds, in the order it reports them, as (kind, test on an ``aten`` operator's name);
#: the first that matches wins, and ``"other operators"`` takes the rest (ReLU, pooling, the loss, SGD's updates, ...).
OP_KINDS = (
    ("convolutions", lambda name: "convolution" in name),
    ("batch norm", lambda name: "batch_norm" in name),
    ("matrix products", lambda name: name in ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear")),
    ("casts and copies", lambda name: name in ("aten::to", "aten::_to_copy", "aten::copy_", "aten::contiguous",
                                                "aten::clone")),
)
OTHER_OPS, OUTSIDE_OPS = "other operators", "outside operators"


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
                  warmup: int = 1, record_shapes: bool = False, data: bool = False) -> profile:
    """Run ``step`` on ``warmup`` batches untimed, then on ``steps`` more under ``torch.profiler`` (CPU, and CUDA
    when available); return the finished profiler.

    Each profiled step runs in a ``record_function("step")`` range. With ``data=True`` the
    batches are drawn from ``batches`` inside that range, in a ``"data"`` range of their
    own, so the input pipeline's time (a loader's transforms, or waiting for its workers)
    is in the profile; by default they are drawn before the profile starts.

    Read it with ``prof.key_averages().table(sort_by="self_cpu_time_total")`` (top operators),
    :func:`phase_split` (forward / backward / optimizer) or :func:`breakdown`.

    Example:
        >>> step = sgd_step(nn.Linear(4, 2), "cpu", channels_last=False, precision="fp32")
        >>> prof = profile_steps(step, [(torch.randn(5, 4), torch.zeros(5, dtype=torch.long))] * 2)
        >>> any(e.key == "aten::addmm" for e in prof.key_averages())
        True
    """
    if not isinstance(steps, int) or steps < 1 or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"steps={steps!r}, warmup={warmup!r}; profile at least one step, warm up zero or more")
    it = iter(batches)

    def short(got: int) -> ValueError:
        return ValueError(f"got {got} batches for warmup + steps = {warmup + steps}; "
                          "pass more, or dlbook.timing.forever(loader)")

    needed = list(itertools.islice(it, warmup if data else warmup + steps))
    if len(needed) < (warmup if data else warmup + steps):
        raise short(len(needed))
    for batch in needed[:warmup]:
        step(batch)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    draws = marked_draws(it) if data else iter(needed[warmup:])
    with profile(activities=activities, record_shapes=record_shapes) as prof:
        for i in range(steps):
            with record_function(STEP):
                batch = next(draws, _END)
                if batch is _END:
                    raise short(warmup + i)
                step(batch)
    return prof


_END = object()  # what marked_draws' source gives when it runs out


def marked_draws(batches: Iterable) -> Iterator:
    """The batches of ``batches``, each drawn inside a ``record_function("data")`` range.

    Wrap a loader in it to see the input pipeline in a profile of any loop (as
    :func:`profile_steps` does with ``data=True``); :func:`breakdown` reads the ranges.

    Example:
        >>> with profile() as prof:
        ...     total = sum(marked_draws([1, 2, 3]))
        >>> total, sum(e.name == DATA for e in prof.events())
        (6, 4)
    """
    it = iter(batches)
    while True:
        with record_function(DATA):
            batch = next(it, _END)
        if batch is _END:
            return
        yield batch


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


def _inside(event, name: str) -> bool:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name == name:
            return True
        parent = parent.cpu_parent
    return False


def breakdown(prof: profile, steps: int = 1) -> dict[str, float]:
    """Milliseconds per step: the whole step, drawing its batch, each operator kind, and outside any operator.

    Reads a profile whose steps ran in ``"step"`` ranges (as :func:`profile_steps` marks
    them; mark your own loop with ``record_function(STEP)`` to read it). The operators are
    the ``aten::`` ones, each counted for its own (self) CPU time and sorted by
    :data:`OP_KINDS`; those that ran while drawing the batch (a ``"data"`` range) count as
    ``"data"`` instead. ``"outside operators"`` is the rest of the step: Python, dispatch,
    autograd's bookkeeping and waiting. On a GPU the operators' CPU time is only the time to
    launch them, so read this on the CPU.

    Returns:
        A dict of milliseconds per step with the keys ``"step"``, ``"data"``, ``"convolutions"``,
        ``"batch norm"``, ``"matrix products"``, ``"casts and copies"``, ``"other operators"`` and
        ``"outside operators"``; all but ``"step"`` add up to ``"step"``.

    Example:
        >>> step = sgd_step(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(64, 2)), "cpu",
        ...                 channels_last=False, precision="fp32")
        >>> batches = [(torch.randn(8, 3, 6, 6), torch.zeros(8, dtype=torch.long))] * 3
        >>> b = breakdown(profile_steps(step, batches, steps=2, data=True), steps=2)
        >>> abs(sum(v for k, v in b.items() if k != "step") - b["step"]) < 1e-6   # the parts add up to the step
        True
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps={steps!r}; give the number of steps the profile recorded (>= 1)")
    events = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CPU]
    step_ms = sum(e.time_range.elapsed_us() for e in events if e.name == STEP) / 1000
    if step_ms == 0:
        raise ValueError(f"the profile has no range named {STEP!r}; profile with profile_steps, or mark each step "
                         f"with torch.profiler.record_function({STEP!r})")
    data_ms = sum(e.time_range.elapsed_us() for e in events if e.name == DATA) / 1000
    kinds = {kind: 0.0 for kind, _ in OP_KINDS} | {OTHER_OPS: 0.0}
    for e in events:
        if not e.name.startswith("aten::") or not _inside(e, STEP) or _inside(e, DATA):
            continue
        kind = next((k for k, test in OP_KINDS if test(e.name)), OTHER_OPS)
        kinds[kind] += e.self_cpu_time_total / 1000
    out = {STEP: step_ms, DATA: data_ms, **kinds}
    out[OUTSIDE_OPS] = step_ms - data_ms - sum(kinds.values())
    return {k: v / steps for k, v in out.items()}
