"""Learning-rate schedules that ``torch.optim.lr_scheduler`` does not have in one line.

Step them with :class:`dlbook.train.LRSchedule` (``interval="batch"``). One-cycle
and step schedules come from PyTorch itself (``OneCycleLR``, ``StepLR``).
"""

from __future__ import annotations

import torch


class WarmupLinearDecay:
    """The factor of :func:`linear_warmup_decay`, a callable ``LambdaLR`` saves and restores with its state.

    :meth:`replan` moves the end of the schedule while it runs, without a jump in the learning
    rate: from the current step the factor goes on linearly, to 1 at the end of the warm-up (the
    same share of the new total) if it is still climbing, then to 0 at the new last step.
    :class:`dlbook.train.TimeBudget` calls it when the epochs that fit in a time budget change.

    Example:
        >>> f = WarmupLinearDecay(warmup_steps=2, total_steps=6)
        >>> [f(s) for s in range(7)]
        [0.0, 0.5, 1.0, 0.75, 0.5, 0.25, 0.0]
        >>> f.replan(step=4, total_steps=8)   # at 0.5 with 2 steps left: now 4 steps left
        >>> [f(s) for s in range(4, 9)]
        [0.5, 0.375, 0.25, 0.125, 0.0]
    """

    def __init__(self, warmup_steps: int, total_steps: int):
        if total_steps < 1 or not 0 <= warmup_steps <= total_steps:
            raise ValueError(f"need 0 <= warmup_steps ({warmup_steps}) <= total_steps ({total_steps}), total >= 1")
        self.warmup_steps, self.total_steps = warmup_steps, total_steps
        self.warmup_share = warmup_steps / total_steps
        # the schedule is linear from this (step, factor) to the next knot; replan() moves it
        self.anchor_step, self.anchor_factor = 0, (0.0 if warmup_steps > 0 else 1.0)

    def __call__(self, step: int) -> float:
        s0, f0 = self.anchor_step, self.anchor_factor
        if step < self.warmup_steps:
            return f0 + (1.0 - f0) * (step - s0) / (self.warmup_steps - s0)
        if self.warmup_steps > s0:  # the decay starts at the top of the warm-up
            s0, f0 = self.warmup_steps, 1.0
        return max(0.0, f0 * (self.total_steps - step) / max(1, self.total_steps - s0))

    def replan(self, step: int, total_steps: int) -> None:
        """End the schedule at ``total_steps`` instead, going on from ``step`` without a jump."""
        if total_steps <= step:
            raise ValueError(f"total_steps={total_steps} must come after the current step {step}")
        factor = self(step)
        if step < self.warmup_steps:  # still climbing: the warm-up keeps its share of the new total
            self.warmup_steps = min(total_steps, max(step + 1, round(self.warmup_share * total_steps)))
        self.anchor_step, self.anchor_factor, self.total_steps = step, factor, total_steps


def linear_warmup_decay(optimizer: torch.optim.Optimizer, warmup_steps: int,
                        total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR``: the learning rate climbs linearly from 0 over ``warmup_steps``, then
    falls linearly to 0 at ``total_steps`` (BERT's schedule). Step it every batch.

    Its factor is a :class:`WarmupLinearDecay` (``scheduler.lr_lambdas[0]``), so the
    schedule's end can be moved while it runs (:class:`dlbook.train.TimeBudget` does).

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
    return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupLinearDecay(warmup_steps, total_steps))

