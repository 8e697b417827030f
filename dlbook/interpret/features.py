"""What a layer computes: its activations over a dataset, for feature maps and t-SNE plots of learned features.

The features a network learns are the outputs of its hidden layers: the feature maps of a
convolution ``(N, C, h, w)``, or the penultimate vector ``(N, D)`` a linear classifier reads.
:func:`layer_activations` records one layer's output with a forward hook while
:func:`dlbook.train.predict` runs the model in eval mode over a loader, so nothing about the
model has to change (no truncated copy, no edited ``forward``).

Paper on looking at learned features: van der Maaten & Hinton, "Visualizing Data using
t-SNE", JMLR 2008 (the embedding drawn from these features).

Example:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    >>> feats, y = layer_activations(net, net[1], [(torch.randn(5, 4), torch.arange(5))])
    >>> feats.shape, y.tolist()
    (torch.Size([5, 3]), [0, 1, 2, 3, 4])
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor, nn

from dlbook.interpret._common import check_submodule
from dlbook.train.inference import predict


def layer_activations(model: nn.Module, layer: nn.Module, loader: Iterable, *, device: torch.device | str | None = None,
                      precision: str = "fp32", flatten: bool = False) -> tuple[Tensor, Tensor]:
    """The output of ``layer`` for every example of ``loader``, with the model in eval mode.

    Args:
        model: the network, called as :func:`dlbook.train.predict` calls it.
        layer: a submodule of ``model`` whose output is a tensor (e.g. ``model.classifier[-2]``,
            the ReLU before the output layer, for penultimate features).
        loader: an iterable of ``(inputs, targets)`` batches.
        device: where to run (default: the model's device).
        precision: ``"fp32"`` by default: features for analysis should not be rounded to
            bfloat16; ``"auto"``, ``"bf16"`` and ``"fp16"`` as in :func:`dlbook.train.predict`.
        flatten: return ``(N, D)`` (each example's output flattened), e.g. for t-SNE.

    Returns:
        ``(activations, targets)``: float32 CPU ``(N, ...)`` and the loader's targets ``(N,)``.

    Raises:
        ValueError: ``layer`` is not inside ``model``, or the loader is empty.
        TypeError: ``layer`` returns something other than one tensor.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
        >>> maps, _ = layer_activations(net, net[1], [(torch.randn(6, 1, 4, 4), torch.zeros(6))])
        >>> maps.shape
        torch.Size([6, 2, 4, 4])
    """
    check_submodule(model, layer, "pass a module of this model, e.g. model.classifier[-2] (penultimate features)")
    captured: list[Tensor] = []

    def keep(module: nn.Module, inputs, output) -> None:
        if not isinstance(output, Tensor):
            raise TypeError(f"{type(module).__name__} returns {type(output).__name__}, not a tensor; pick a layer "
                            "with one tensor output (e.g. a Conv2d, ReLU or Linear)")
        captured.append(output.detach().float().cpu())

    handle = layer.register_forward_hook(keep)
    try:
        _, targets = predict(model, loader, device=device, precision=precision)
    finally:
        handle.remove()  # never leave a hook behind, even when the model raised
    if len(captured) == 0:
        raise ValueError("the layer never ran: is it used in model.forward? (a module that is defined but not "
                         "called records nothing)")
    activations = torch.cat(captured)
    if activations.shape[0] != targets.shape[0]:
        raise ValueError(f"the layer ran {activations.shape[0]} times per {targets.shape[0]} examples; pick a layer "
                         "that runs once per forward pass (a module used twice gives two outputs)")
    return (activations.flatten(1) if flatten else activations), targets


__all__ = ["layer_activations"]
