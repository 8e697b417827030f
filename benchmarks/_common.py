"""What every benchmark shares: the machine it ran on, the load, the training step it times, the JSON it writes.

The training step is :func:`dlbook.train.throughput.sgd_step` (re-exported here as ``sgd_step``),
the same step chapter 2.3 times and profiles.

A benchmark script measures the configurations it compares side by side, in interleaved
rounds, in one process, and writes one JSON file. The fields written here are the same in
every file, so ``run_all.py`` can put any of them into ``RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import platform
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from dlbook.data import (CIFAR10_MEAN, CIFAR10_STD, CIFAR10Images, Compose, Normalize, RandomCrop, RandomHorizontalFlip,
                         TensorLoader, load_cifar10, to_float)
from dlbook.models.lenet import LeNet5, LeNetConfig
from dlbook.models.vgg import vgg11
from dlbook.notebook import cpu_model, library_versions
from dlbook.train import Trainer
from dlbook.train.device import cpu_supports_bf16, default_device, describe_device
from dlbook.train.throughput import sgd_step  # noqa: F401  (re-exported: the one timed training step, shared with chapter 2.3)


# The two models the CIFAR-10 benchmarks time: builder, multiple of --steps (the small model needs more steps for a
# stable timing). VGG-11-BN is compute-bound, so layout and precision matter; for LeNet-5 the input pipeline does.
MODELS = {
    "vgg11": (lambda: vgg11(num_classes=10), 1),
    "lenet5": (lambda: LeNet5(LeNetConfig(in_channels=3, image_size=32)), 5),
}


def timed_model(name: str, args: argparse.Namespace) -> tuple[Callable[[], nn.Module], int, int, dict]:
    """The builder of ``MODELS[name]``, its timed and warm-up steps per round, and its initial weights from ``--seed``."""
    build, factor = MODELS[name]
    torch.manual_seed(args.seed)
    return build, args.steps * factor, args.warmup * factor, build().state_dict()


def cifar10_train(quick: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10's training images (uint8) and labels; 512 of them for ``--quick``."""
    images, labels = load_cifar10("train")
    return (images[:512], labels[:512]) if quick else (images, labels)


def tensor_loader(images: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int) -> TensorLoader:
    """Chapter 4.1's pipeline: uint8 batches in memory, random crop (4-pixel padding) and flip, then normalise."""
    augment = Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(), to_float, Normalize(CIFAR10_MEAN, CIFAR10_STD)])
    return TensorLoader(images, labels, batch_size, shuffle=True, transform=augment, drop_last=True, seed=seed)


def textbook_dataset(images: torch.Tensor, labels: torch.Tensor) -> CIFAR10Images:
    """The classic dataset: one PIL image per item, per-image torchvision transforms."""
    import torchvision.transforms as T

    transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize(CIFAR10_MEAN, CIFAR10_STD)])
    return CIFAR10Images(images, labels, transform)


def textbook_loader(dataset: CIFAR10Images, batch_size: int, workers: int, seed: int):
    """The classic loop: DataLoader worker processes fetch, transform and collate one image at a time."""
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                                       drop_last=True, generator=torch.Generator().manual_seed(seed))


class Batches:
    """``n`` batches from an endless stream, as a loader the Trainer can run one epoch over."""

    def __init__(self, stream, n: int):
        self.stream, self.n = stream, n

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return itertools.islice(self.stream, self.n)


def bench_trainer(model: nn.Module, device: torch.device) -> Trainer:
    """The Trainer the benchmarks set against :func:`sgd_step`: the same SGD (lr 0.01, Nesterov 0.9, weight decay
    5e-4), ``"auto"`` precision, channels-last, no progress bar."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    return Trainer(model, optimizer, nn.CrossEntropyLoss(), device=device, precision="auto", channels_last=True,
                   progress=False)


def load_average() -> list[float] | None:
    """1, 5 and 15-minute load averages: other work on the machine distorts every timing here."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def machine(device: torch.device) -> dict:
    """The device, CPU, thread count, library versions and whether bfloat16 is native."""
    bf16_native = (cpu_supports_bf16() if device.type == "cpu"
                   else device.type == "cuda" and torch.cuda.is_bf16_supported())
    return {"device": describe_device(device), "cpu": cpu_model(), "cpus": os.cpu_count(),
            "threads": torch.get_num_threads(), "bf16_native": bf16_native, "platform": platform.platform(),
            "versions": library_versions()}


def rounds_for(precision: str, device: torch.device, rounds: int) -> int:
    """How many rounds to time a configuration: all ``rounds``, but one for bfloat16 the CPU emulates.

    Without AVX-512 BF16 or AMX, bf16 autocast trains VGG-11 about 19x slower than float32
    (6.5 against 123 images/s, batch 256, on a 2-core AVX2-only AMD EPYC, idle, 2026-12-03),
    so a single round of a few steps takes minutes, each step tens of seconds: the scatter
    that more rounds would average out is a small share of that, and each extra round would
    add 11 (``cifar10_pipeline``) to 17 minutes (``precision_layout``) there. The reports
    mark such rows with :func:`one_round_mark`.
    """
    if precision == "bf16" and device.type == "cpu" and not cpu_supports_bf16():
        return 1
    return rounds


def one_round_mark(timed_rounds: list, planned_rounds: int) -> str:
    """The report's note on a row that :func:`rounds_for` timed for one round only ('' for the others)."""
    return "   (1 round: bf16 emulated)" if len(timed_rounds) == 1 < planned_rounds else ""


def start(name: str, claim: str, device: torch.device, **settings) -> dict:
    """A result dict with the common header; fill in ``result[...]`` and pass it to :func:`finish`."""
    return {"benchmark": name, "claim": claim,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(device), "settings": settings, "load_average_before": load_average()}


def finish(result: dict, out: Path, report: str) -> None:
    """Add the load after the run, print the report and write the JSON to ``out``."""
    result["load_average_after"] = load_average()
    result["report"] = report
    print()
    print(report)
    print(f"load average before / after: {result['load_average_before']} / {result['load_average_after']} "
          f"(on {os.cpu_count()} CPUs; much above that, other jobs distort the timings)")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


def check_sizes(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``--steps``, ``--rounds`` and ``--batch-size`` at least 1, ``--warmup`` (and ``--workers``) at least 0."""
    if min(args.steps, args.rounds, args.batch_size) < 1 or args.warmup < 0 or getattr(args, "workers", 0) < 0:
        p.error("--steps, --rounds and --batch-size must be >= 1; --warmup and --workers >= 0")


def step_parser(doc: str, *, steps: int, warmup: int, rounds: int, workers: bool = False,
                rounds_help: str | None = None) -> argparse.ArgumentParser:
    """:func:`parser` plus the arguments of the scripts that time training steps in rounds.

    ``--models``, ``--batch-size`` (chapter 4.1's 256), ``--steps`` (VGG-11's per round;
    LeNet-5 runs 5x as many), ``--warmup``, ``--rounds`` and, with ``workers``, ``--workers``
    (the textbook loop's DataLoader processes). Read them with :func:`parse_sizes`.
    """
    p = parser(doc)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--batch-size", type=int, default=256, help="chapter 4.1's batch size")
    p.add_argument("--steps", type=int, default=steps, help="timed VGG-11 steps per round (LeNet-5: 5x)")
    p.add_argument("--warmup", type=int, default=warmup, help="untimed steps before each timing (LeNet-5: 5x)")
    p.add_argument("--rounds", type=int, default=rounds, help=rounds_help or "interleaved rounds")
    if workers:
        p.add_argument("--workers", type=int, default=2, help="DataLoader processes of the textbook loop")
    return p


def parse_sizes(p: argparse.ArgumentParser, argv: list[str] | None,
                quick: tuple[int, int, int, int] = (32, 2, 1, 1)) -> argparse.Namespace:
    """Parse ``argv``; under ``--quick`` set (batch size, steps, warmup, rounds) to ``quick``; check the sizes."""
    args = p.parse_args(argv)
    if args.quick:
        args.batch_size, args.steps, args.warmup, args.rounds = quick
    check_sizes(p, args)
    return args


def run_and_write(args: argparse.Namespace, run: Callable[[argparse.Namespace], dict],
                  report: Callable[[dict], str]) -> int:
    """Run the benchmark, print its report and write its JSON to ``args.out``: every script's last step."""
    result = run(args)
    finish(result, args.out, report(result))
    return 0


def pick_device(name: str | None) -> torch.device:
    return torch.device(name) if name else default_device()


def parser(doc: str) -> argparse.ArgumentParser:
    """The arguments every benchmark takes: the JSON path, ``--device``, ``--quick`` and ``--seed``."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path, help="where to write the results as JSON")
    p.add_argument("--device", default=None, help="default: CUDA if present, else CPU")
    p.add_argument("--quick", action="store_true", help="a seconds-long run that checks the script works (CI)")
    p.add_argument("--seed", type=int, default=0)
    return p
