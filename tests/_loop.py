"""A bare training loop for tests that check a model can learn: Adam, full batch, every loss kept."""

from typing import Callable

import torch
from torch import nn


def adam_losses(model: nn.Module, loss_fn: Callable[[], torch.Tensor], steps: int, lr: float) -> list[float]:
    """Run ``steps`` Adam steps on ``loss_fn()`` (which calls ``model``); return each step's loss."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = loss_fn()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses
