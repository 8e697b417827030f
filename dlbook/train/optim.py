"""Optimizer parameter groups: weight decay on weights, none on biases and normalisation parameters.

Decaying a bias or a BatchNorm/LayerNorm scale pulls it towards 0 for no gain in
generalisation (the scale of a normalised layer is what the decay would fight);
the usual recipe (nanoGPT's ``configure_optimizers``, timm, fastai) decays only
parameters with two or more dimensions: the matrices of linear layers,
convolution kernels and embeddings.
"""

from __future__ import annotations

from torch import nn


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two optimizer groups: ``weight_decay`` on trainable parameters with ``dim > 1``, 0 on the rest.

    Frozen parameters (``requires_grad=False``) are left out; an empty group is dropped.

    Args:
        model: the network.
        weight_decay: the decay of the weight matrices and kernels (``>= 0``).

    Example:
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
        >>> groups = param_groups(model, weight_decay=5e-4)
        >>> [(len(g["params"]), g["weight_decay"]) for g in groups]
        [(2, 0.0005), (4, 0.0)]
        >>> opt = torch.optim.SGD(groups, lr=0.1, momentum=0.9)  # doctest: +SKIP
    """
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay={weight_decay}; use a number >= 0 (0 turns decay off)")
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError(f"{type(model).__name__} has no trainable parameters; unfreeze some before building "
                         "an optimizer")
    decay = [p for p in trainable if p.dim() > 1]
    no_decay = [p for p in trainable if p.dim() <= 1]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]
