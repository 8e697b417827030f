"""Inference: one eval-mode context and one prediction loop for the whole package.

:func:`eval_mode` switches a model to eval mode (no dropout, running BatchNorm
statistics) and afterwards gives every submodule back its own training flag, even
after an exception. :func:`predict` runs a model over a loader under the package's
single mixed-precision path (``precision``: ``"auto"``, ``"bf16"``, ``"fp16"``,
``"fp32"``) and returns float32 CPU tensors. The Trainer, the chapters and the
behavioural and attribution tools all call these two.

Example:
    >>> outputs, targets = predict(model, test_loader, precision="fp32")  # doctest: +SKIP
    >>> probs, _ = predict(model, test_loader, tta=[lambda x: x, lambda x: x.flip(3)])  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterable, Iterator, Sequence

import torch
from torch import nn

from dlbook.train.device import autocast, autocast_dtype, call_model, to_device


class EmptyLoaderError(ValueError):
    """The loader given to :func:`predict` yielded no batch."""


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode for the duration; each submodule's own ``training`` flag is restored afterwards.

    Restoring per submodule matters when a caller froze part of a model
    (e.g. a pretrained encoder kept in eval mode under a training head): a plain
    ``model.train(was_training)`` would switch the frozen part back to training.
    Gradients are not switched off: wrap in ``torch.no_grad()`` for inference
    (as :func:`predict` does), or leave them on for attributions.

    Example:
        >>> with eval_mode(model):  # doctest: +SKIP
        ...     logits = model(x)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"eval_mode needs an nn.Module, got {type(model).__name__}")
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in flags:
            module.training = training


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); CPU for a model with neither."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def predict(model: nn.Module, loader: Iterable, *, device: torch.device | str | None = None,
            precision: str = "auto", channels_last: bool = False,
            tta: Sequence[Callable] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``model`` over ``loader`` in eval mode, without gradients; return ``(outputs, targets)``.

    A batch is ``(inputs, targets)``; a tuple or list ``inputs`` is called as
    ``model(*inputs)`` (e.g. ``(tokens, lengths)``). The model is left in the
    mode it was in.

    Args:
        model: the network.
        loader: any iterable of ``(inputs, targets)`` batches (a generator is fine).
        device: where to run; defaults to the device of the model's parameters.
            The model is not moved: put it on ``device`` first.
        precision: ``"auto"``, ``"bf16"``, ``"fp16"`` or ``"fp32"`` (see
            :func:`dlbook.train.device.autocast_dtype`).
        channels_last: send 4-D float inputs channels-last (match a channels-last model).
        tta: test-time augmentation, a sequence of input transforms, e.g.
            ``[lambda x: x, lambda x: x.flip(3)]``. Each is applied to the inputs
            (after moving them to ``device``); the softmax probabilities over the last
            dimension are averaged. **With ``tta`` the outputs are probabilities, not logits.**

    Returns:
        ``(outputs, targets)``. The outputs are a float32 CPU tensor, the batches concatenated
        along dim 0 (logits, or probabilities with ``tta``); the targets a CPU tensor.

    Raises:
        ValueError: if the loader yields no batch (:class:`EmptyLoaderError`), a batch is not a pair, or ``tta`` is empty.

    Example:
        >>> model = nn.Linear(4, 3)
        >>> out, y = predict(model, [(torch.randn(2, 4), torch.tensor([0, 2]))], precision="fp32")
        >>> out.shape, y.tolist()
        (torch.Size([2, 3]), [0, 2])
    """
    if tta is not None:
        tta = list(tta)
        if not tta or not all(callable(t) for t in tta):
            raise ValueError("tta must be a non-empty sequence of input transforms, e.g. "
                             "[lambda x: x, lambda x: x.flip(3)]; pass tta=None for none")
    device = torch.device(device) if device is not None else model_device(model)
    dtype = autocast_dtype(device, precision)

    def forward(inputs):
        with autocast(device, dtype):
            out = call_model(model, inputs)
        return out.float()

    outputs, targets = [], []
    with eval_mode(model), torch.no_grad():
        for i, batch in enumerate(loader):
            if not isinstance(batch, (tuple, list)) or len(batch) != 2:
                raise ValueError(f"batch {i} is a {type(batch).__name__}, not a pair (inputs, targets); "
                                 "wrap unlabelled data as (inputs, torch.zeros(len(inputs)))")
            inputs, target = batch
            inputs = to_device(inputs, device, channels_last)
            if tta is None:
                out = forward(inputs)
            else:
                out = sum(forward(t(inputs)).softmax(-1) for t in tta) / len(tta)
            outputs.append(out.cpu())
            targets.append(target.cpu() if isinstance(target, torch.Tensor) else torch.as_tensor(target))
    if not outputs:
        raise EmptyLoaderError("the loader yielded no batches; check that the dataset is not empty (or that a "
                         "one-shot generator was not used up already)")
    return torch.cat(outputs), torch.cat(targets)
