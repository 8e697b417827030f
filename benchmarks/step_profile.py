"""Where a training step's time goes: the profiler's view behind the other benchmarks' figures.

Not a claim of its own but the reason behind three of them: the input pipeline's ratio
(``cifar10_pipeline``), the Trainer's overhead (``trainer_overhead``) and how many epochs of
VGG-11 fit in a time budget (``time_to_accuracy``, chapter 4.1). For VGG-11-BN and LeNet-5
on CIFAR-10 it profiles three ways to train, each from the same weights:

=========  ==========================================================  ==========  ==========
name       loop                                                        layout      precision
=========  ==========================================================  ==========  ==========
textbook   ``DataLoader`` (2 workers) of PIL images, a bare step       contiguous  float32
dlbook     ``TensorLoader`` (crop and flip as batch tensor ops), bare  chan-last   ``auto``
Trainer    the same loader and settings through ``dlbook.train.Trainer``  chan-last   ``auto``
=========  ==========================================================  ==========  ==========

Each step runs under ``torch.profiler``, with drawing its batch marked, and
:func:`dlbook.train.throughput.breakdown` sorts the step's milliseconds into the input
pipeline (``data``: the loader's transforms, or waiting for its workers), the operators by
kind (convolutions, batch norm, matrix products, casts and copies, the others) and what runs
outside any operator (Python, dispatch, autograd's bookkeeping). The rows run in interleaved
rounds; each cell is the median over the rounds. The profiler adds a little to every
operator, so take the shares, not the milliseconds, as the figures; the other benchmarks
time the steps without it.

It also says how far faster kernels could take the step: the rate at which dlbook's
convolutions and matrix products do the step's work (its FLOPs, counted by
:func:`dlbook.models.count_flops`: a training step is about 3 forward passes), against the
rate of one large square matrix product in the same precision on the same cores, the
most those operators could reach (the ceiling). If every product ran at the ceiling, and
nothing else changed, the step would take ``(step - products) + FLOPs / ceiling``: that
bound says whether a budget that needs twice the epochs could be met by a faster step.
Take the CPU lock::

    flock /tmp/dlbook-cpu.lock python benchmarks/step_profile.py results/step_profile.json
"""

from __future__ import annotations

import statistics
import sys

import torch
from torch import nn
from torch.profiler import record_function

from _common import (Batches, bench_trainer, cifar10_train, parse_sizes, pick_device, run_and_write, sgd_step, start, step_parser,
                     tensor_loader, textbook_dataset, textbook_loader, timed_model)
from dlbook.models import count_flops
from dlbook.timing import forever, time_call
from dlbook.train.device import autocast_dtype
from dlbook.train.throughput import DATA, OUTSIDE_OPS, STEP, breakdown, marked_draws, profile_steps

ROWS = ("textbook", "dlbook", "Trainer")
SHORT = {"data": "data", "convolutions": "conv", "batch norm": "BN", "matrix products": "matmul",
         "casts and copies": "casts", "other operators": "other ops", "outside operators": "outside"}  # column heads


class MarkedDraws:
    """``loader`` with its length, each batch drawn in a ``"data"`` range (:func:`marked_draws`): for the Trainer."""

    def __init__(self, loader):
        self.loader = loader

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        return marked_draws(self.loader)


PRODUCTS = ("convolutions", "matrix products")  # the operators whose FLOPs count_flops counts


def product_ceiling(device, n: int, repeats: int = 5) -> dict:
    """GFLOP/s of an ``n`` x ``n`` matrix product in the training precision (``"auto"``) on ``device``: the ceiling.

    The best of ``repeats`` timed products after two untimed ones: a large dense product is
    the fastest work these cores do in that precision, so no convolution kernel runs faster.
    """
    dtype = autocast_dtype(device, "auto") or torch.float32
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    t = time_call(lambda: a @ b, repeats=repeats, warmup=2, device=device)
    return {"dtype": str(dtype).removeprefix("torch."), "n": n, "gflop_per_s": 2 * n ** 3 / t.best_s / 1e9}


def kernel_bound(b: dict[str, float], step_gflop: float, ceiling_gflop_per_s: float) -> dict[str, float]:
    """How far faster kernels could take a step with :func:`breakdown` ``b`` (ms) and ``step_gflop`` of products.

    Returns the products' achieved GFLOP/s, their share of the ceiling, and the step's
    milliseconds and speed-up if every product ran at the ceiling and the rest stayed.

    Example:
        >>> kernel_bound({"step": 100.0, "convolutions": 70.0, "matrix products": 10.0}, 4.0, 100.0)
        {'gflop_per_s': 50.0, 'of_ceiling': 0.5, 'bound_ms': 60.0, 'bound_speedup': 1.6666666666666667}
    """
    products_ms = sum(b[k] for k in PRODUCTS)
    achieved = step_gflop / (products_ms / 1000)
    bound_ms = b[STEP] - products_ms + step_gflop / ceiling_gflop_per_s * 1000
    return {"gflop_per_s": achieved, "of_ceiling": achieved / ceiling_gflop_per_s, "bound_ms": bound_ms,
            "bound_speedup": b[STEP] / bound_ms}


def profile_trainer(model: nn.Module, stream, *, steps: int, warmup: int, device) -> dict[str, float]:
    """:func:`breakdown` of ``Trainer.fit`` over ``steps`` batches, after an unprofiled fit of ``warmup``.

    The whole fit is one ``"step"`` range, divided by ``steps``: what the Trainer does once
    per epoch (its record, the callbacks' epoch hooks) is spread over the steps.
    """
    trainer = bench_trainer(model, device)
    if warmup:
        trainer.fit(Batches(stream, warmup), None, epochs=1)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        with record_function(STEP):
            trainer.fit(MarkedDraws(Batches(stream, steps)), None, epochs=len(trainer.history) + 1)
    return breakdown(prof, steps)


def run(args) -> dict:
    device = pick_device(args.device)
    result = start("step_profile", "no target: where a training step's time goes (input pipeline, operators by kind, "
                   "outside the operators), behind sections 1, 2 and 5", device,
                   batch_size=args.batch_size, steps=args.steps, warmup=args.warmup, rounds=args.rounds,
                   workers=args.workers)
    images, labels = cifar10_train(args.quick)
    dataset = textbook_dataset(images, labels)
    result["ceiling"] = product_ceiling(device, n=256 if args.quick else 2048)
    print(f"ceiling: {result['ceiling']['gflop_per_s']:.0f} GFLOP/s for a {result['ceiling']['n']}-square "
          f"{result['ceiling']['dtype']} matrix product", flush=True)
    result["models"] = {}
    for name in args.models:
        build, steps, warmup, initial = timed_model(name, args)
        batch, _ = next(iter(tensor_loader(images, labels, args.batch_size, args.seed)))
        step_gflop = 3 * count_flops(build(), batch) / 1e9  # forward, and the backward's two products per forward one
        models = {row: build() for row in ROWS}
        for m in models.values():
            m.load_state_dict(initial)
        streams = {"textbook": forever(textbook_loader(dataset, args.batch_size, args.workers, args.seed)),
                   "dlbook": forever(tensor_loader(images, labels, args.batch_size, args.seed)),
                   "Trainer": forever(tensor_loader(images, labels, args.batch_size, args.seed))}
        step_fns = {"textbook": sgd_step(models["textbook"], device, channels_last=False, precision="fp32"),
                    "dlbook": sgd_step(models["dlbook"], device, channels_last=True, precision="auto")}
        rounds: dict[str, list[dict]] = {row: [] for row in ROWS}
        for r in range(args.rounds):
            for row in (ROWS if r % 2 == 0 else ROWS[::-1]):
                if row == "Trainer":
                    b = profile_trainer(models[row], streams[row], steps=steps, warmup=warmup, device=device)
                else:
                    b = breakdown(profile_steps(step_fns[row], streams[row], steps=steps, warmup=warmup, data=True),
                                  steps)
                rounds[row].append(b)
                print(f"{name:7s} round {r + 1}/{args.rounds}  {row:8s} {b[STEP]:8.1f} ms/step  data "
                      f"{b[DATA] / b[STEP]:.0%}  convolutions {b['convolutions'] / b[STEP]:.0%}  outside operators "
                      f"{b[OUTSIDE_OPS] / b[STEP]:.0%}", flush=True)
        median = {row: {k: statistics.median(b[k] for b in bs) for k in bs[0]} for row, bs in rounds.items()}
        result["models"][name] = {"steps_per_round": steps, "rounds": rounds, "median_ms_per_step": median,
                                  "step_gflop": step_gflop,
                                  "kernel_bound": kernel_bound(median["dlbook"], step_gflop,
                                                               result["ceiling"]["gflop_per_s"])}
    return result


def report(result: dict) -> str:
    s = result["settings"]
    lines = [f"where a training step's time goes, {result['machine']['device']}, batch {s['batch_size']}; "
             f"milliseconds per step under the profiler and shares of the step, median of {s['rounds']} "
             "interleaved rounds"]
    for name, m in result["models"].items():
        med = m["median_ms_per_step"]
        kinds = [k for k in next(iter(med.values())) if k != STEP]
        lines.append(f"{name}: {'row':8s} {'ms/step':>8s}  " + "  ".join(f"{SHORT.get(k, k):>9s}" for k in kinds))
        for row, b in med.items():
            lines.append(f"{'':{len(name) + 1}s} {row:8s} {b[STEP]:8.1f}  "
                         + "  ".join(f"{b[k] / b[STEP]:9.1%}" for k in kinds))
        ours, trainer = med["dlbook"], med["Trainer"]
        compute = max((k for k in kinds if k not in (DATA, OUTSIDE_OPS)), key=lambda k: ours[k])
        lines.append(f"{'':{len(name) + 1}s} dlbook's step: {compute} {ours[compute] / ours[STEP]:.0%}, the input "
                     f"pipeline {ours[DATA] / ours[STEP]:.0%}, outside the operators {ours[OUTSIDE_OPS] / ours[STEP]:.0%}; "
                     f"the Trainer adds {trainer[OUTSIDE_OPS] - ours[OUTSIDE_OPS]:+.1f} ms outside the operators "
                     f"({(trainer[OUTSIDE_OPS] - ours[OUTSIDE_OPS]) / ours[STEP]:+.1%} of the step) and "
                     f"{trainer[STEP] - ours[STEP]:+.1f} ms in all ({trainer[STEP] / ours[STEP] - 1:+.1%})")
        if "kernel_bound" in m:
            kb, c = m["kernel_bound"], result["ceiling"]
            lines.append(f"{'':{len(name) + 1}s} products: {m['step_gflop']:.1f} GFLOP a step at {kb['gflop_per_s']:.0f} "
                         f"GFLOP/s, {kb['of_ceiling']:.0%} of the ceiling ({c['gflop_per_s']:.0f} GFLOP/s, a "
                         f"{c['n']}-square {c['dtype']} matrix product); every product at the ceiling: "
                         f"{kb['bound_ms']:.0f} ms a step, at most {kb['bound_speedup']:.2f}x faster")
    lines.append("  data: drawing the batch (transforms, or waiting for workers); conv, BN, matmul, casts (and copies), "
                 "other ops: the aten operators' own time by kind; outside: Python, dispatch, autograd's bookkeeping")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = step_parser(__doc__, steps=4, warmup=2, rounds=3, workers=True)
    args = parse_sizes(p, argv)
    return run_and_write(args, run, report)


if __name__ == "__main__":
    sys.exit(main())
