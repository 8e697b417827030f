"""Checks for the failures met most often in training, each a function that says what is wrong.

- :func:`optimizer_coverage`: parameters the optimizer does not update, or updates but the model does not
  have (the model was re-created after the optimizer was built).
- :func:`overfit_one_batch`: a correct model and loop drive the loss on one small batch to nearly zero;
  if they cannot, the bug is in the code, not in the hyper-parameters.
- :func:`prediction_shares`: the share of predictions per class; one class taking nearly all of them is a
  collapsed model (validation accuracy stuck at one class's share).

Chapter 8 (the FAQ) runs each on a real model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from dlbook.train.device import call_model


@dataclass
class Coverage:
    """Which trainable parameters an optimizer misses, and how many tensors it holds that the model lacks."""

    missing: list[str] = field(default_factory=list)
    foreign: int = 0

    @property
    def ok(self) -> bool:
        return not self.missing and not self.foreign

    def message(self) -> str:
        if self.ok:
            return "the optimizer updates every trainable parameter of the model, and nothing else"
        parts = []
        if self.foreign:
            parts.append(f"the optimizer holds {self.foreign} tensor(s) that are not this model's parameters: was "
                         "the model re-created after the optimizer? Build the optimizer from this model's parameters()")
        if self.missing:
            shown = ", ".join(self.missing[:5]) + (", ..." if len(self.missing) > 5 else "")
            parts.append(f"{len(self.missing)} trainable parameter(s) are not in the optimizer ({shown}): they never "
                         "change. Add them, or freeze them with requires_grad_(False)")
        return "; ".join(parts)


def optimizer_coverage(model: nn.Module, optimizer: torch.optim.Optimizer) -> Coverage:
    """Compare the model's trainable parameters with those the optimizer updates.

    Example:
        >>> model = nn.Linear(3, 2)
        >>> optimizer_coverage(model, torch.optim.SGD(model.parameters(), lr=0.1)).ok
        True
        >>> optimizer_coverage(nn.Linear(3, 2), torch.optim.SGD(model.parameters(), lr=0.1)).foreign
        2
    """
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    own = {id(p) for p in model.parameters()}
    missing = [name for name, p in model.named_parameters() if p.requires_grad and id(p) not in held]
    return Coverage(missing=missing, foreign=len(held - own))


@dataclass
class OverfitResult:
    """The losses of :func:`overfit_one_batch`, and whether the last one reached the target."""

    losses: list[float]
    target: float

    @property
    def passed(self) -> bool:
        return self.losses[-1] <= self.target

    def message(self) -> str:
        first, last = self.losses[0], self.losses[-1]
        if self.passed:
            return f"loss {first:.3g} -> {last:.3g} in {len(self.losses)} steps: the model and loop can learn"
        return (f"loss {first:.3g} -> {last:.3g} in {len(self.losses)} steps, above {self.target:g}: a correct model "
                "and loop memorise one small batch. Check that the optimizer updates this model "
                "(optimizer_coverage), that zero_grad() and backward() run every step, that the loss gets raw "
                "logits, and the learning rate")


def overfit_one_batch(model: nn.Module, batch: tuple, loss_fn, optimizer: torch.optim.Optimizer, *,
                      steps: int = 200, target: float = 0.05) -> OverfitResult:
    """Train on one batch ``(inputs, targets)`` for ``steps`` steps; see whether the loss reaches ``target``.

    The model is trained in place (use a fresh copy). Returns every step's loss.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> model = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 3))
        >>> x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
        >>> overfit_one_batch(model, (x, y), nn.CrossEntropyLoss(),
        ...                   torch.optim.Adam(model.parameters(), lr=1e-2)).passed
        True
    """
    if steps < 1:
        raise ValueError(f"steps={steps}; train for at least one step")
    if not target > 0:
        raise ValueError(f"target={target}; give the loss to reach, a positive number such as 0.05")
    inputs, targets = batch
    model.train()
    losses = []
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(call_model(model, inputs), targets)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return OverfitResult(losses=losses, target=target)


def prediction_shares(outputs: Tensor, num_classes: int | None = None) -> Tensor:
    """The share of predictions that go to each class, from logits ``(N, K)`` or labels ``(N,)``.

    Example:
        >>> prediction_shares(torch.tensor([[2.0, 0.0], [3.0, 1.0], [0.0, 1.0], [5.0, 0.0]])).tolist()
        [0.75, 0.25]
    """
    outputs = torch.as_tensor(outputs)
    if outputs.numel() == 0:
        raise ValueError("prediction_shares got no predictions; pass the outputs of at least one input")
    labels = outputs.argmax(dim=1) if outputs.dim() == 2 else outputs.long()
    k = num_classes or (outputs.shape[1] if outputs.dim() == 2 else int(labels.max()) + 1)
    return torch.bincount(labels.cpu(), minlength=k).float() / len(labels)
