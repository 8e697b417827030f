"""Device and precision: one mixed-precision path for CPU and GPU.

``autocast_dtype`` picks bfloat16 on a CPU that supports it natively
(AVX-512 BF16 / AMX) and on CUDA cards that support it, float16 on older CUDA
cards, and ``None`` (plain float32) otherwise. A ``GradScaler`` is needed only
for float16 (nanoGPT's ``train.py`` does the same). ``precision`` (``"auto"``,
``"bf16"``, ``"fp16"``, ``"fp32"``) is the one name for this choice across the
package; :func:`autocast_dtype` turns it into a dtype. :func:`to_device` moves
(nested) batches and :func:`call_model` calls a model on them.
"""

from __future__ import annotations

import contextlib
import os

import torch


def default_device() -> torch.device:
    """CUDA when available, else Apple MPS, else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def cpu_supports_bf16() -> bool:
    """True if this CPU runs bfloat16 matrix multiplies natively (AVX-512 BF16 or AMX)."""
    checker = getattr(torch.backends.cpu, "get_cpu_capability", None)
    capability = checker() if checker else ""
    if capability in ("AVX512_BF16", "AMX_BF16", "AMX"):
        return True
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast_dtype(device: torch.device | str, precision: str = "auto") -> torch.dtype | None:
    """The dtype to autocast to on ``device``, or None for float32.

    Args:
        device: where the model runs.
        precision: ``"auto"`` (fastest safe choice), ``"bf16"``, ``"fp16"`` or ``"fp32"``.
    """
    device = torch.device(device)
    if precision not in ("auto", "bf16", "fp16", "fp32"):
        raise ValueError(f"precision={precision!r}; use 'auto', 'bf16', 'fp16' or 'fp32'")
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_supports_bf16():
        return torch.bfloat16
    return None


def autocast(device: torch.device | str, dtype: torch.dtype | None):
    """A context manager: autocast to ``dtype`` on ``device``, or nothing when dtype is None."""
    device = torch.device(device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def to_device(obj, device: torch.device | str, channels_last: bool = False):
    """Move a tensor, or a tuple/list/dict of them, to ``device`` (4-D float tensors optionally channels-last).

    Example:
        >>> to_device((torch.zeros(2), {"y": torch.ones(1)}), "cpu")
        (tensor([0., 0.]), {'y': tensor([1.])})
    """
    if isinstance(obj, torch.Tensor):
        obj = obj.to(device, non_blocking=True)
        if channels_last and obj.dim() == 4 and obj.is_floating_point():
            obj = obj.contiguous(memory_format=torch.channels_last)
        return obj
    if isinstance(obj, (tuple, list)):
        return type(obj)(to_device(o, device, channels_last) for o in obj)
    if isinstance(obj, dict):
        return {k: to_device(v, device, channels_last) for k, v in obj.items()}
    return obj


def call_model(model, inputs):
    """Run ``model`` on a batch's inputs: ``model(*inputs)`` for a tuple or list, else ``model(inputs)``.

    This is the package's one batch convention: a batch is ``(inputs, targets)``, and
    ``inputs`` may be a tuple such as ``(tokens, lengths)`` for a recurrent model.

    Example:
        >>> call_model(lambda a, b: a + b, (torch.ones(1), torch.ones(1)))
        tensor([2.])
    """
    return model(*inputs) if isinstance(inputs, (tuple, list)) else model(inputs)


def describe_device(device: torch.device | str | None = None) -> str:
    """A short human description, e.g. ``"CPU (2 cores, bf16)"`` or ``"NVIDIA H100 (cuda)"``."""
    device = torch.device(device) if device is not None else default_device()
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA)"
    if device.type == "cpu":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        extra = ", bf16" if cpu_supports_bf16() else ""
        return f"CPU ({cores} cores{extra})"
    return device.type.upper()


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch Generator seeded the same way."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
