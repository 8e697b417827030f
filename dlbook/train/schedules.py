"""Learning-rate schedules that ``torch.optim.lr_scheduler`` does not have in one line.

Step them with :class:`dlbook.train.LRSchedule` (``interval="batch"``). One-cycle
and step schedules come from PyTorch itself (``OneCycleLR``, ``StepLR``).
"""

from __future__ import annotations

import torch


def linear_warmup_decay(optimizer: torch.optim.Optimizer, warmup_steps: int,
                        total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR``: the learning rate climbs linearly from 0 over ``warmup_steps``, then
    falls linearly to 0 at ``total_steps`` (BERT's schedule). Step it every batch.

    Example:
        >>> from torch import nn
        >>> opt = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=1.0)
        >>> sched = linear_warmup_decay(opt, warmup_steps=2, total_steps=6)
        >>> lrs = []
        >>> for _ in range(6):
        ...     lrs.append(round(opt.param_groups[0]["lr"], 2)); opt.step(); sched.step()
        >>> lrs
        [0.0, 0.5, 1.0, 0.75, 0.5, 0.25]
    """
    if total_steps < 1 or not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"need 0 <= warmup_steps ({warmup_steps}) <= total_steps ({total_steps}), total >= 1")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / max(1, warmup_steps)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
