"""Cutout as a batch transform, to go with :mod:`dlbook.data.transforms` (chapter 4.1's recipe).

Cutout (DeVries and Taylor, 2017, "Improved regularization of convolutional
neural networks with cutout") blanks one square patch per training image at a
random position, so the network cannot rely on any single part of an object.
The patch centre is uniform over the image and the square may hang over the
border (as in the paper), so some patches are smaller. Applied after
``Normalize``, the blanked pixels are 0, i.e. the mean colour.

Example:
    >>> out = Cutout(8)(torch.ones(4, 3, 32, 32))
    >>> out.shape, bool((out == 0).any())
    (torch.Size([4, 3, 32, 32]), True)
"""

from __future__ import annotations

import torch


class Cutout:
    """Set a ``size`` x ``size`` square of every image in a ``(B, C, H, W)`` batch to ``value``.

    Args:
        size: side of the square in pixels (8 or 16 are usual for 32x32 CIFAR images).
        p: probability that an image gets a patch at all.
        value: what the patch is filled with (0 = the mean after normalisation).
        generator: where the positions come from (default: torch's global generator).

    Example:
        >>> x = Cutout(2, generator=torch.Generator().manual_seed(0))(torch.ones(1, 1, 4, 4))
        >>> int((x == 0).sum()) in (1, 2, 4)
        True
    """

    def __init__(self, size: int, p: float = 1.0, value: float = 0.0, generator: torch.Generator | None = None):
        if int(size) < 1:
            raise ValueError(f"size={size}; the patch needs a side of at least 1 pixel")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p={p}; it must be a probability in [0, 1]")
        self.size, self.p, self.value, self.generator = int(size), p, value, generator

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"Cutout expects a batch (B, C, H, W), got shape {tuple(x.shape)}")
        B, _, H, W = x.shape
        cy = torch.randint(0, H, (B, 1), generator=self.generator).to(x.device)  # (B, 1) patch centres
        cx = torch.randint(0, W, (B, 1), generator=self.generator).to(x.device)
        on = (torch.rand(B, 1, generator=self.generator) < self.p).to(x.device)  # (B, 1)
        lo = self.size // 2
        rows = torch.arange(H, device=x.device)  # (H,)
        cols = torch.arange(W, device=x.device)
        in_rows = (rows >= cy - lo) & (rows < cy - lo + self.size) & on  # (B, H)
        in_cols = (cols >= cx - lo) & (cols < cx - lo + self.size)  # (B, W)
        mask = in_rows[:, None, :, None] & in_cols[:, None, None, :]  # (B, 1, H, W)
        return x.masked_fill(mask, self.value)

    def __repr__(self) -> str:
        return f"Cutout(size={self.size}, p={self.p}, value={self.value})"


__all__ = ["Cutout"]
