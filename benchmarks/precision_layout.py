"""Precision, memory layout and compilation: training images per second, each switch alone and together.

The claims measured (chapters 4.1 and 2.3): on a CPU with native bfloat16, bf16 autocast
speeds up VGG-11-BN's training step and channels-last adds a little on top; for LeNet-5
neither helps, because the model is too small for its convolutions to dominate; and
``torch.compile`` does not pay for itself on this CPU for VGG-11.

Eight configurations per model, {float32, bf16 autocast} x {contiguous NCHW, channels-last}
x {eager, ``torch.compile``}, all training the same architecture from the same weights on
the same batches (CIFAR-10 through chapter 4.1's tensor pipeline), with the same step
(forward, cross-entropy, backward, Nesterov SGD). Interleaved rounds; medians and best
rounds; each compiled configuration's compile time (its first, untimed step) is reported
on its own. Where the CPU emulates bfloat16 (no AVX-512 BF16 or AMX), the bf16 rows are
timed for one round (:func:`_common.rounds_for`). Take the CPU lock::

    flock /tmp/dlbook-cpu.lock python benchmarks/precision_layout.py results/precision_layout.json
"""

from __future__ import annotations

import itertools
import statistics
import sys
import time

import torch

from _common import (cifar10_train, one_round_mark, parse_sizes, pick_device, rounds_for, run_and_write, sgd_step,
                     start, step_parser, tensor_loader, timed_model)
from dlbook.timing import forever, throughput

CONFIGS = [(precision, layout, mode) for mode in ("eager", "compile") for precision in ("fp32", "bf16")
           for layout in ("contiguous", "channels-last")]


def name(config) -> str:
    return " ".join(config)


def run(args) -> dict:
    device = pick_device(args.device)
    result = start("precision_layout", "bf16 and channels-last speed up VGG-11 training; torch.compile does not pay "
                   "on this CPU", device, batch_size=args.batch_size, steps=args.steps, warmup=args.warmup,
                   rounds=args.rounds, data="CIFAR-10 train, tensor pipeline (chapter 4.1)")
    images, labels = cifar10_train(args.quick)
    configs = [c for c in CONFIGS if args.compile or c[2] == "eager"]
    if args.quick:  # one compiled configuration is enough to keep the compile path working
        configs = [c for c in configs if c[2] == "eager"] + [c for c in configs if c[2] == "compile"][:1]
    result["models"] = {}
    for model_name in args.models:
        build, steps, warmup, initial = timed_model(model_name, args)
        steps_fn, streams, compile_s = {}, {}, {}
        for config in configs:
            precision, layout, mode = config
            model = build()
            model.load_state_dict(initial)
            runnable = torch.compile(model) if mode == "compile" else model
            step = sgd_step(runnable, device, channels_last=layout == "channels-last", precision=precision)
            stream = forever(tensor_loader(images, labels, args.batch_size, args.seed))
            if mode == "compile":  # the first steps compile (forward and backward graphs): time them apart
                tic = time.perf_counter()
                for batch in itertools.islice(stream, 2):
                    step(batch)
                compile_s[name(config)] = time.perf_counter() - tic
            steps_fn[name(config)], streams[name(config)] = step, stream
        rounds = {name(c): [] for c in configs}
        for r in range(args.rounds):
            order = configs if r % 2 == 0 else configs[::-1]
            for config in order:
                if r >= rounds_for(config[0], device, args.rounds):
                    continue
                key = name(config)
                rate = throughput(steps_fn[key], streams[key], steps=steps, warmup=warmup, device=device)
                rounds[key].append(rate)
                print(f"{model_name:7s} round {r + 1}/{args.rounds}  {key:28s} {rate:9.1f} img/s", flush=True)
        base = name(("fp32", "contiguous", "eager"))
        med = {k: statistics.median(v) for k, v in rounds.items()}
        best = {k: max(v) for k, v in rounds.items()}
        result["models"][model_name] = {
            "steps_per_round": steps, "rounds": rounds, "median_images_per_s": med, "best_images_per_s": best,
            "median_vs_fp32_eager": {k: v / med[base] for k, v in med.items()},
            "best_vs_fp32_eager": {k: v / best[base] for k, v in best.items()},
            "compile_s": compile_s,
        }
    return result


def report(result: dict) -> str:
    s = result["settings"]
    lines = [f"training steps, {result['machine']['device']}, batch {s['batch_size']}; median images/s of "
             f"{s['rounds']} interleaved rounds (x float32 contiguous eager; best rounds' ratio)"]
    for model_name, m in result["models"].items():
        lines.append(f"  {model_name}:")
        for key, rate in m["median_images_per_s"].items():
            extra = f"   compile {m['compile_s'][key]:.0f} s" if key in m["compile_s"] else ""
            extra += one_round_mark(m["rounds"][key], s["rounds"])
            lines.append(f"    {key:28s} {rate:9.1f}  {m['median_vs_fp32_eager'][key]:5.2f}x "
                         f"({m['best_vs_fp32_eager'][key]:.2f}x){extra}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = step_parser(__doc__, steps=4, warmup=1, rounds=3)
    p.add_argument("--no-compile", dest="compile", action="store_false", help="skip the torch.compile rows")
    args = parse_sizes(p, argv, quick=(16, 1, 1, 1))
    if args.quick:
        args.models = ["lenet5"]
    return run_and_write(args, run, report)


if __name__ == "__main__":
    sys.exit(main())
