"""Transfer learning: freeze a backbone, replace a head, give the head its own learning rate, fit a linear probe.

Papers:
    Yosinski et al., "How transferable are features in deep neural networks?", NeurIPS 2014:
    early layers learn general features, later ones task-specific ones; fine-tuning a
    transferred network beats training it from scratch.
    Howard & Ruder, "Universal Language Model Fine-tuning for Text Classification", ACL 2018:
    discriminative learning rates, smaller for the pretrained layers than for the new head.
    Kumar et al., "Fine-Tuning can Distort Pretrained Features and Underperform
    Out-of-Distribution", ICLR 2022: the linear probe (a linear classifier on frozen
    features) as the baseline every fine-tuning run should be compared with.

Three ways to use a pretrained network on a new task, from cheapest to dearest:

* **linear probe**: run the frozen backbone once over the data (``dlbook.train.predict``),
  then fit a linear layer on the fixed features with :func:`fit_linear_probe`;
* **fine-tune the head only**: :func:`freeze` the backbone, :func:`replace_head`;
* **fine-tune everything**: :func:`replace_head`, then :func:`head_param_groups` so that the
  new, randomly initialised head learns fast while the pretrained layers move slowly.

Example:
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 5))
    >>> head = replace_head(model, "2", num_classes=3)
    >>> freeze(model), freeze(head, False)          # freeze all, then unfreeze the new head
    (67, 27)
    >>> [p.requires_grad for p in model.parameters()]
    [False, False, True, True]
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dlbook.train.optim import param_groups


def freeze(module: nn.Module, frozen: bool = True) -> int:
    """Set ``requires_grad = not frozen`` on every parameter of ``module``; return how many weights that covers.

    Freezing stops gradients, not BatchNorm's running statistics: a frozen network trained in
    ``train()`` mode still updates them. For a fixed feature extractor, compute the features
    once in eval mode (``dlbook.train.predict``) instead.

    Example:
        >>> freeze(nn.Linear(3, 2))
        8
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"freeze expects an nn.Module, got {type(module).__name__}")
    count = 0
    for p in module.parameters():
        p.requires_grad_(not frozen)
        count += p.numel()
    return count


def replace_head(model: nn.Module, name: str, num_classes: int) -> nn.Linear:
    """Swap the ``nn.Linear`` at ``name`` (a dotted path) for a new one with ``num_classes`` outputs.

    The new layer has the old one's input width, bias setting, device and dtype, PyTorch's
    default initialisation, and trainable weights; every other module is left as it is.

    Args:
        model: the pretrained network (modified in place).
        name: the head's path as in ``model.named_modules()``, e.g. ``"classifier.1"`` or ``"head"``.
        num_classes: outputs of the new head (at least 1).

    Returns:
        The new head (also reachable as ``model.get_submodule(name)``).

    Example:
        >>> from dlbook.models.vgg import vgg11
        >>> model = vgg11(num_classes=5, width=0.125, hidden=(), dropout=0.0)   # classifier: Flatten, Linear
        >>> replace_head(model, "classifier.1", num_classes=3)
        Linear(in_features=64, out_features=3, bias=True)
    """
    if num_classes < 1:
        raise ValueError(f"num_classes={num_classes}; a head needs at least one output")
    try:
        old = model.get_submodule(name)
    except AttributeError:
        linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        raise ValueError(f"{type(model).__name__} has no submodule {name!r}; its linear layers are {linears}") from None
    if not isinstance(old, nn.Linear):
        raise TypeError(f"{name!r} is a {type(old).__name__}, not an nn.Linear; name the final linear layer")
    new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None,
                    device=old.weight.device, dtype=old.weight.dtype)
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)  # nn.Sequential accepts its index as a string name too
    return new


def head_param_groups(model: nn.Module, head: nn.Module, lr: float, backbone_lr: float,
                      weight_decay: float = 0.0) -> list[dict]:
    """Optimizer groups: ``lr`` for ``head``'s parameters, ``backbone_lr`` for the rest of ``model``.

    Each part is further split as :func:`dlbook.train.param_groups` splits a model (weight
    decay on weight matrices and kernels, none on biases and normalisation parameters);
    frozen parameters are left out and empty groups dropped. A schedule such as
    :func:`dlbook.train.linear_warmup_decay` scales every group's rate by the same factor.

    Args:
        model: the whole network; ``head`` must be one of its submodules.
        head: the new output layer (e.g. what :func:`replace_head` returned).
        lr: learning rate of the head.
        backbone_lr: learning rate of every other parameter (``0 <= backbone_lr``; often ``lr / 10`` or less).
        weight_decay: decay of weight matrices and kernels (``>= 0``).

    Example:
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2))
        >>> groups = head_param_groups(model, model[1], lr=1e-2, backbone_lr=1e-4, weight_decay=0.01)
        >>> [(g["lr"], g["weight_decay"], len(g["params"])) for g in groups]
        [(0.01, 0.01, 1), (0.01, 0.0, 1), (0.0001, 0.01, 1), (0.0001, 0.0, 1)]
    """
    if not (lr > 0 and backbone_lr >= 0):
        raise ValueError(f"lr={lr}, backbone_lr={backbone_lr}; use lr > 0 and backbone_lr >= 0")
    head_ids = {id(p) for p in head.parameters()}
    if not head_ids or not head_ids <= {id(p) for p in model.parameters()}:
        raise ValueError(f"the head ({type(head).__name__}) must be a submodule of {type(model).__name__} with "
                         "parameters; pass the layer object itself, e.g. model.get_submodule('classifier.1')")
    groups = []
    for part_lr, in_head in ((lr, True), (backbone_lr, False)):
        for group in param_groups(model, weight_decay):
            params = [p for p in group["params"] if (id(p) in head_ids) == in_head]
            if params:
                groups.append({"params": params, "weight_decay": group["weight_decay"], "lr": part_lr})
    return groups


def fit_linear_probe(train_features: Tensor, train_labels: Tensor, val_features: Tensor, val_labels: Tensor, *,
                     num_classes: int | None = None, lr: float = 1e-2, weight_decay: float = 1e-2,
                     batch_size: int = 64, epochs: int = 100, patience: int = 10, seed: int = 0,
                     device: torch.device | str = "cpu"):
    """Fit a linear classifier on fixed features; keep the epoch with the best validation accuracy.

    AdamW on cross-entropy, batches shuffled from ``seed``, early stopping on validation
    accuracy with the best weights restored (chapter 4.2's frozen encoder, with a larger
    learning rate and patience, so that a few dozen examples get enough steps). The
    features are standardised with the training features' mean and standard deviation
    (folded into the returned layer, so it takes raw features), which makes one learning
    rate fit backbones whose features have very different scales.

    Args:
        train_features, val_features: ``(N, D)`` float features from the frozen backbone.
        train_labels, val_labels: ``(N,)`` int64 class labels.
        num_classes: default: ``max(label) + 1`` over both label sets.
        lr, weight_decay, batch_size, epochs, patience: the optimiser and early stopping.
        seed: seeds the head's initialisation and the batch order.
        device: where to train (features are small; the CPU is usually fastest).

    Returns:
        ``(head, history, best_val_accuracy)``: an ``nn.Linear(D, num_classes)`` on raw features,
        the training :class:`~dlbook.train.History`, and the best validation accuracy.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(200, 3, generator=g); y = (x[:, 0] > 0).long()
        >>> head, history, best = fit_linear_probe(x[:150], y[:150], x[150:], y[150:], epochs=20)
        >>> best > 0.9, head
        (True, Linear(in_features=3, out_features=2, bias=True))
    """
    from dlbook.data.loaders import TensorLoader
    from dlbook.metrics import accuracy
    from dlbook.train.callbacks import EarlyStopping
    from dlbook.train.trainer import Trainer

    for name, x, y in (("train", train_features, train_labels), ("val", val_features, val_labels)):
        if x.dim() != 2 or y.dim() != 1 or len(x) != len(y) or len(x) == 0:
            raise ValueError(f"{name}_features must be (N, D) and {name}_labels (N,) with N >= 1; got "
                             f"{tuple(x.shape)} and {tuple(y.shape)}")
    if train_features.shape[1] != val_features.shape[1]:
        raise ValueError(f"train features have {train_features.shape[1]} dimensions, val features "
                         f"{val_features.shape[1]}; compute both with the same backbone")
    num_classes = num_classes or int(max(train_labels.max(), val_labels.max())) + 1
    x_train, x_val = train_features.float(), val_features.float()
    mean = x_train.mean(0)
    std = x_train.std(0, unbiased=False).clamp_min(1e-6) if len(x_train) > 1 else torch.ones_like(mean)
    torch.manual_seed(seed)
    head = nn.Linear(x_train.shape[1], num_classes)
    stop = EarlyStopping(monitor="val_accuracy", mode="max", patience=patience, restore_best=True)
    trainer = Trainer(head, torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay),
                      nn.CrossEntropyLoss(), device=device, precision="fp32", metrics={"accuracy": accuracy},
                      callbacks=[stop], progress=False)
    history = trainer.fit(TensorLoader((x_train - mean) / std, train_labels, batch_size, shuffle=True, seed=seed),
                          TensorLoader((x_val - mean) / std, val_labels, 4096), epochs=epochs)
    with torch.no_grad():  # fold the standardisation into the layer: W (x - m) / s + b
        head = head.cpu()
        weight = head.weight / std
        head.bias.sub_(weight @ mean)
        head.weight.copy_(weight)
    return head, history, stop.best


__all__ = ["fit_linear_probe", "freeze", "head_param_groups", "replace_head"]
