"""Measure ways of serving one model side by side: latency at batch 1, throughput at a batch, size, accuracy.

Chapter 2.4 compares eager PyTorch, bfloat16, ``torch.compile``, ONNX Runtime and int8 for
the same VGG-11, and ``benchmarks/inference.py`` repeats that comparison for longer; both
call :func:`compare_variants`, so the two measure the same thing in the same way:

* **First call**: the seconds of a variant's first batch-1 call and first batched call,
  timed apart and left out of what follows. That is where ``torch.compile`` compiles and
  ONNX Runtime finishes its set-up.
* **Latency**: every call of :func:`dlbook.timing.time_each` over real single images, one at
  a time, as a service receives them: median and 99th percentile.
* **Throughput**: images per second over whole batches (:func:`dlbook.timing.throughput`).
* **Size** of the file the variant is served from, and **accuracy** on a loader's labelled
  batches through :func:`dlbook.train.predict`, so a faster variant that changed the
  answers shows it.
* **Agreement**: the share of those inputs on which the variant's top class equals the first
  variant's (the reference, eager fp32). Two variants can have the same accuracy and still
  disagree on many inputs; agreement shows how far a variant changed the model's answers.

Example:
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).eval()
    >>> singles = [torch.randn(1, 3, 2, 2) for _ in range(4)]
    >>> batches = [(torch.randn(8, 3, 2, 2), torch.zeros(8, dtype=torch.long))] * 3
    >>> rows = compare_variants({"eager fp32": Variant(model)}, singles, batches, batches, throughput_steps=1, warmup=1)
    >>> list(rows[0])[:3]
    ['variant', 'first call (s)', 'batch-1 p50 (ms)']
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import torch
from torch import nn

from dlbook.deploy.quantize import file_size_mb
from dlbook.timing import forever, throughput, time_each
from dlbook.train.device import autocast, autocast_dtype
from dlbook.train.inference import predict


@dataclass
class Variant:
    """One way of serving the model: a module on a float batch returning logits, its precision and file.

    ``module`` is an ``nn.Module``: the model itself, a ``torch.compile`` wrapper, or
    :class:`dlbook.deploy.export.OnnxModule` around an ONNX Runtime session.

    ``precision`` is ``"fp32"`` or ``"bf16"`` (autocast around every call); ``file`` is what the
    variant is deployed as (a state dict, an ONNX file), for the size column (None: not reported).
    """

    module: nn.Module
    precision: str = "fp32"
    file: str | os.PathLike | None = None

    def __post_init__(self) -> None:
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision={self.precision!r}; serving variants run in 'fp32' or 'bf16'")


def compare_variants(variants: Mapping[str, Variant], singles: Sequence[torch.Tensor], batches: Iterable,
                     loader: Iterable, *, throughput_steps: int, warmup: int = 5) -> list[dict]:
    """One row per variant, in the order given; see the module docstring for what is measured.

    Args:
        variants: ``{name: Variant}``.
        singles: batch-1 inputs ``(1, ...)``, already prepared; the first ``warmup`` are not timed.
        batches: ``(inputs, targets)`` batches for the throughput (repeated if it runs out).
        loader: labelled ``(inputs, targets)`` batches for the accuracy column.
        throughput_steps: batches timed per variant.
        warmup: untimed batch-1 calls before the latency is timed.

    Returns:
        Rows with ``"variant"``, ``"first call (s)"``, ``"batch-1 p50 (ms)"``, ``"batch-1 p99 (ms)"``,
        ``"batched (images/s)"``, ``"size (MiB)"`` (None without a file), ``"accuracy"`` and
        ``"agreement"`` (with the first variant's top class; 1.0 for the first).
    """
    if not variants:
        raise ValueError("no variants to compare: pass {name: Variant(module)}")
    if len(singles) <= warmup:
        raise ValueError(f"{len(singles)} single inputs leave none to time after warmup={warmup}; pass more")
    rows, batches = [], forever(batches)
    first_batch = next(batches)[0]
    reference = None  # the first variant's top classes, for the agreement column
    for name, v in variants.items():
        dtype = autocast_dtype(torch.device("cpu"), v.precision)

        def call(x, module=v.module, dtype=dtype):
            with torch.inference_mode(), autocast(torch.device("cpu"), dtype):
                return module(x)

        tic = time.perf_counter()
        call(singles[0]), call(first_batch)  # compiles, or finishes set-up; not part of the timings
        first_s = time.perf_counter() - tic
        latency = time_each(call, singles, warmup=warmup)
        per_second = throughput(lambda batch: call(batch[0]), batches, steps=throughput_steps, warmup=1)
        outputs, targets = predict(v.module, loader, device="cpu", precision=v.precision)
        top = outputs.argmax(1)
        reference = top if reference is None else reference
        if len(top) != len(reference):
            raise ValueError(f"variant {name!r} scored {len(top)} inputs and the first {len(reference)}; "
                             "pass a loader that yields the same batches each time it is iterated")
        rows.append({"variant": name, "first call (s)": first_s, "batch-1 p50 (ms)": latency.p50_ms,
                     "batch-1 p99 (ms)": latency.p99_ms, "batched (images/s)": per_second,
                     "size (MiB)": file_size_mb(v.file) if v.file is not None and Path(v.file).exists() else None,
                     "accuracy": float((top == targets).float().mean()),
                     "agreement": float((top == reference).float().mean())})
    return rows


__all__ = ["Variant", "compare_variants"]
