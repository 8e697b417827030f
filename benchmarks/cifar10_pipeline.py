"""Images per second of the textbook CIFAR-10 loop vs dlbook's, same model, same machine, one run.

The claim measured (chapter 4.1): training VGG-11-BN on CIFAR-10 the way the
book does it -- images decoded once into a uint8 tensor, augmentation and
normalisation applied to whole batches as tensor ops, channels-last memory
layout, bfloat16 autocast where the CPU supports it natively -- runs at least twice as
many images per second as the textbook loop (``DataLoader`` over a
``Dataset`` of PIL images with per-image ``torchvision.transforms``, float32,
contiguous NCHW tensors).

To say where the gain comes from, six configurations are timed for each model:

=============  =========================  ===============  =========
name           input pipeline             memory layout    precision
=============  =========================  ===============  =========
textbook       DataLoader + PIL           contiguous       float32
+layout        DataLoader + PIL           channels-last    float32
+precision     DataLoader + PIL           contiguous       bf16
+both          DataLoader + PIL           channels-last    bf16
tensor         TensorLoader + batch ops   contiguous       float32
dlbook         TensorLoader + batch ops   channels-last    auto
=============  =========================  ===============  =========

``auto`` is what chapter 4.1's ``Trainer`` does (:func:`dlbook.train.autocast_dtype`):
bfloat16 where the CPU runs it natively (AVX-512 BF16 or AMX), float32 elsewhere. The
``+precision`` and ``+both`` rows always run bfloat16, emulated and slow on other CPUs,
so that they show what bfloat16 itself costs or gives there; where it is emulated they are
timed for one round (:func:`_common.rounds_for`), because each round takes minutes.

for VGG-11-BN (compute-bound: layout and precision matter) and for LeNet-5 on
the same RGB images (a small model: the input pipeline matters). Every
configuration runs the same training step (forward, cross-entropy, backward,
SGD with Nesterov momentum) on the same architecture from the same initial
weights, with the same augmentation (random crop with 4 pixels of zero padding,
horizontal flip) and normalisation.

The machine is shared, so configurations are measured in interleaved rounds
(round 1: every configuration, round 2: every configuration, ...), and each
reports its best round, the least disturbed one (as ``timeit`` does), and its
median. The headline ratio compares best rounds: on two cores, another job's
two busy threads can slow a PyTorch step several-fold for a while (its OpenMP
threads wait for each other), which wrecks a median of three but rarely every
round of both sides. Take the
CPU lock when you run it, so the book's other jobs stay out of the way::

    flock /tmp/dlbook-cpu.lock python benchmarks/cifar10_pipeline.py results/cifar10_pipeline.json

Options: ``--steps`` timed steps per round, ``--rounds``, ``--batch-size``,
``--workers`` (DataLoader processes of the textbook loop), ``--models``, ``--quick``
(a seconds-long check that everything runs). The default run takes about 3-4 minutes
on a 2-core CPU with native bfloat16, and about 19 on one that emulates it (an AVX2-only
EPYC, 2026-12-03: the two bf16 rows take most of it). The JSON says whether the CPU runs bfloat16 natively
(``machine.bf16_native``).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import dataclass

import torch
from torch import nn

from _common import (one_round_mark, parse_sizes, pick_device, rounds_for, run_and_write, sgd_step, start,
                     step_parser, tensor_loader, textbook_dataset, textbook_loader, timed_model)
from dlbook.data import cifar10_source, load_cifar10
from dlbook.timing import forever, throughput
from dlbook.train import autocast_dtype


@dataclass(frozen=True)
class Config:
    name: str
    pipeline: str  # "pil" or "tensor"
    channels_last: bool
    precision: str  # as dlbook.train.autocast_dtype takes it


CONFIGS = (
    Config("textbook", "pil", False, "fp32"),
    Config("+layout", "pil", True, "fp32"),
    Config("+precision", "pil", False, "bf16"),
    Config("+both", "pil", True, "bf16"),
    Config("tensor", "tensor", False, "fp32"),
    Config("dlbook", "tensor", True, "auto"),
)



def measure(model: nn.Module, batches, config: Config, steps: int, warmup: int, device: torch.device) -> float:
    """Time ``steps`` training steps after ``warmup`` untimed ones (:func:`dlbook.timing.throughput`); images/s."""
    step = sgd_step(model, device, channels_last=config.channels_last, precision=config.precision)
    return throughput(step, batches, steps=steps, warmup=warmup, device=device)


def run(args) -> dict:
    device = pick_device(args.device)
    images, labels = load_cifar10("train")
    dataset = textbook_dataset(images, labels)
    result = start("cifar10_pipeline", "dlbook (tensor pipeline + channels-last + bf16 where native) >= 2x the "
                   "images/s of the textbook loop (DataLoader + per-image PIL transforms, float32, contiguous), "
                   "VGG-11-BN", device,
                   data=f"CIFAR-10 training images from {cifar10_source().name}"
                        + (" (the JPEG copy)" if "jpeg" in cifar10_source().name else ""),
                   batch_size=args.batch_size, workers=args.workers, rounds=args.rounds,
                   augmentation="random crop 32 with 4-pixel zero padding, horizontal flip, normalise")
    result["models"] = {}
    t0 = time.perf_counter()
    for model_name in args.models:
        build, steps, warmup, initial = timed_model(model_name, args)
        streams, models = {}, {}
        for cfg in CONFIGS:
            model = build()
            model.load_state_dict(initial)
            model = model.to(device, memory_format=torch.channels_last) if cfg.channels_last else model.to(device)
            models[cfg.name] = model
            loader = (textbook_loader(dataset, args.batch_size, args.workers, args.seed) if cfg.pipeline == "pil"
                      else tensor_loader(images, labels, args.batch_size, args.seed))
            streams[cfg.name] = loader
        rounds: dict[str, list[float]] = {cfg.name: [] for cfg in CONFIGS}
        for r in range(args.rounds):
            for cfg in CONFIGS:
                if r >= rounds_for(cfg.precision, device, args.rounds):
                    continue
                # A fresh iterator each round: DataLoader workers start (untimed, in the warm-up) and stop,
                # so no configuration's workers prefetch while another one is being timed.
                batches = forever(streams[cfg.name])
                rate = measure(models[cfg.name], batches, cfg, steps, warmup, device)
                batches.close()
                rounds[cfg.name].append(rate)
                print(f"{model_name:7s} round {r + 1}/{args.rounds}  {cfg.name:11s} {rate:8.1f} img/s", flush=True)
        per = {cfg.name: {"images_per_s": statistics.median(rounds[cfg.name]), "best_images_per_s": max(rounds[cfg.name]),
                          "rounds": rounds[cfg.name], "pipeline": cfg.pipeline, "channels_last": cfg.channels_last,
                          "precision": cfg.precision,
                          "dtype": str(autocast_dtype(device, cfg.precision) or torch.float32)}
               for cfg in CONFIGS}
        base, base_best = per["textbook"]["images_per_s"], per["textbook"]["best_images_per_s"]
        for v in per.values():
            v["vs_textbook"] = v["images_per_s"] / base
            v["best_vs_textbook"] = v["best_images_per_s"] / base_best
        result["models"][model_name] = {"steps_per_round": steps, "warmup_per_round": warmup, "configs": per,
                                        "ratio_median_dlbook_vs_textbook": per["dlbook"]["images_per_s"] / base,
                                        "ratio_best_dlbook_vs_textbook": per["dlbook"]["best_images_per_s"] / base_best}
    result["wall_s"] = time.perf_counter() - t0
    return result


def report(result: dict) -> str:
    st = result["settings"]
    lines = [f"{result['machine']['device']}, {result['machine']['cpu']}, torch {result['machine']['versions']['torch']}, "
             f"batch {st['batch_size']}, {st['workers']} DataLoader workers, median of "
             f"{st['rounds']} interleaved rounds; {st['data']}"]
    for model_name, m in result["models"].items():
        pad = " " * (len(model_name) + 2)
        lines.append(f"\n{model_name}: {'configuration':12s} {'median img/s':>12s} {'x textbook':>10s}   "
                     f"{'best img/s':>10s} {'x textbook':>10s}")
        for name, v in m["configs"].items():
            lines.append(f"{pad}{name:12s} {v['images_per_s']:12.1f} {v['vs_textbook']:9.2f}x   "
                         f"{v['best_images_per_s']:10.1f} {v['best_vs_textbook']:9.2f}x"
                         + one_round_mark(v["rounds"], st["rounds"]))
        lines.append(f"{pad}dlbook / textbook = {m['ratio_best_dlbook_vs_textbook']:.2f}x (best rounds; "
                     f"{m['ratio_median_dlbook_vs_textbook']:.2f}x from the medians)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_sizes(step_parser(__doc__, steps=4, warmup=2, rounds=4, workers=True), argv)
    if not os.environ.get("DLBOOK_DATA"):
        print("note: DLBOOK_DATA is not set; CIFAR-10 comes from the cache or a download", file=sys.stderr)
    return run_and_write(args, run, report)


if __name__ == "__main__":
    sys.exit(main())
