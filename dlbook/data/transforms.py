"""Batch transforms: augmentation and normalisation as tensor ops on ``(B, C, H, W)``.

The textbook pipeline transforms one PIL image at a time in ``DataLoader``
workers. These do the same work on a whole batch with a few tensor operations
(random crops by gathering per-sample windows, flips by ``torch.where``, Cutout by a
mask), on the
CPU or on the GPU where the batch already is. Each random transform draws its
random numbers from ``generator`` if given, else from torch's global generator
(which ``dlbook.notebook.setup`` seeds and the Trainer's checkpoints save).

Normalisation constants, computed with :func:`channel_stats` over every pixel of
the training split scaled to [0, 1] (population standard deviation, float64, rounded
to 4 decimals):

- ``CIFAR10_MEAN/STD``: the 50,000 training images of the book's JPEG copy.
  (The original pixels give (0.4914, 0.4822, 0.4465) / (0.2470, 0.2435, 0.2616);
  JPEG smooths the images a little, hence the slightly smaller spread.)
- ``FASHION_MNIST_MEAN/STD``: the 60,000 training images.

Example:
    >>> augment = Compose([to_float, RandomCrop(32, padding=4), RandomHorizontalFlip(),
    ...                    Normalize(CIFAR10_MEAN, CIFAR10_STD)])
    >>> augment(torch.zeros(8, 3, 32, 32, dtype=torch.uint8)).shape
    torch.Size([8, 3, 32, 32])
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

CIFAR10_MEAN = (0.4913, 0.4821, 0.4465)
CIFAR10_STD = (0.2452, 0.2428, 0.2606)
FASHION_MNIST_MEAN = (0.2860,)
FASHION_MNIST_STD = (0.3530,)


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 in [0, 255] -> float32 in [0, 1]; floating tensors pass through unchanged.

    Example:
        >>> to_float(torch.tensor([0, 51, 255], dtype=torch.uint8))
        tensor([0.0000, 0.2000, 1.0000])
    """
    if x.dtype == torch.uint8:
        return x.to(torch.float32).div_(255)
    if x.is_floating_point():
        return x
    raise TypeError(f"to_float expects uint8 or floating tensors, got {x.dtype}")


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 ``(N, C, H, W)`` or ``(N, H, W)`` images, in [0, 1] units.

    Exact: computed in float64 from each channel's 256-bin histogram.

    Example:
        >>> channel_stats(torch.tensor([[[[0, 255]]]], dtype=torch.uint8))
        ((0.5,), (0.5,))
    """
    if images.dtype != torch.uint8:
        raise TypeError(f"channel_stats expects uint8 images, got {images.dtype}")
    if images.dim() == 3:
        images = images.unsqueeze(1)  # (N, 1, H, W)
    values = torch.arange(256, dtype=torch.float64) / 255
    means, stds = [], []
    for c in range(images.shape[1]):
        counts = torch.bincount(images[:, c].reshape(-1), minlength=256).to(torch.float64)
        p = counts / counts.sum()
        mean = float((p * values).sum())
        means.append(mean)
        stds.append(float((p * (values - mean) ** 2).sum().sqrt()))
    return tuple(means), tuple(stds)


def _check_batch(x: torch.Tensor, name: str) -> None:
    if x.dim() != 4:
        raise ValueError(f"{name} expects a batch (B, C, H, W), got shape {tuple(x.shape)}; "
                         f"for (B, H, W) grey images use x.unsqueeze(1)")


class Normalize:
    """``(x - mean) / std`` per channel.

    Args:
        mean: one value per channel.
        std: one value per channel, all positive.

    Example:
        >>> Normalize([0.5], [0.25])(torch.full((1, 1, 2, 2), 1.0))[0, 0, 0, 0].item()
        2.0
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        if len(mean) != len(std):
            raise ValueError(f"mean has {len(mean)} values but std has {len(std)}")
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be positive, got {tuple(std)}")
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _check_batch(x, "Normalize")
        if not x.is_floating_point():
            raise TypeError(f"Normalize expects floats (apply to_float first), got {x.dtype}")
        if x.shape[1] != len(self.mean):
            raise ValueError(f"Normalize has {len(self.mean)} channels but the batch has {x.shape[1]}")
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)  # (1, C, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


class RandomCrop:
    """Pad each image by ``padding`` zeros, then cut a ``size`` window at a random offset per image.

    Args:
        size: output ``(h, w)``, or one int for a square.
        padding: zeros added on every side first (4 is the classic CIFAR-10 setting).
        generator: where the offsets come from (default: torch's global generator).

    Example:
        >>> RandomCrop(32, padding=4)(torch.ones(2, 3, 32, 32)).shape
        torch.Size([2, 3, 32, 32])
    """

    def __init__(self, size: int | tuple[int, int], padding: int = 0, generator: torch.Generator | None = None):
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        if padding < 0 or min(self.size) < 1:
            raise ValueError(f"size={size}, padding={padding}: need size >= 1 and padding >= 0")
        self.padding, self.generator = padding, generator

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _check_batch(x, "RandomCrop")
        p, (th, tw) = self.padding, self.size
        if p:
            x = F.pad(x, (p, p, p, p))  # (B, C, H + 2p, W + 2p)
        B, C, H, W = x.shape
        if th > H or tw > W:
            raise ValueError(f"crop {th}x{tw} is larger than the padded image {H}x{W}")
        top = torch.randint(0, H - th + 1, (B,), generator=self.generator).to(x.device)
        left = torch.randint(0, W - tw + 1, (B,), generator=self.generator).to(x.device)
        rows = top[:, None] + torch.arange(th, device=x.device)   # (B, th)
        cols = left[:, None] + torch.arange(tw, device=x.device)  # (B, tw)
        batch = torch.arange(B, device=x.device)[:, None, None]   # (B, 1, 1)
        out = x.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (B, th, tw, C)
        return out.permute(0, 3, 1, 2).contiguous()  # (B, C, th, tw)

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip:
    """Mirror each image left-right with probability ``p``.

    Example:
        >>> RandomHorizontalFlip(p=1.0)(torch.tensor([[[[1, 2, 3]]]])).tolist()
        [[[[3, 2, 1]]]]
    """

    def __init__(self, p: float = 0.5, generator: torch.Generator | None = None):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p={p}; it must be a probability in [0, 1]")
        self.p, self.generator = p, generator

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _check_batch(x, "RandomHorizontalFlip")
        flip = (torch.rand(len(x), generator=self.generator) < self.p).to(x.device)
        return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)  # flip: (B, 1, 1, 1)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class Cutout:
    """Set a ``size`` x ``size`` square of every image in a ``(B, C, H, W)`` batch to ``value``.

    Cutout (DeVries and Taylor, 2017, "Improved regularization of convolutional neural
    networks with cutout", chapter 4.1's recipe) blanks one square patch per training
    image at a random position, so the network cannot rely on any single part of an
    object. The patch centre is uniform over the image and the square may hang over the
    border (as in the paper), so some patches are smaller. Applied after ``Normalize``,
    the blanked pixels are 0, i.e. the mean colour.

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
        _check_batch(x, "Cutout")
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


class Compose:
    """Apply transforms in order.

    Example:
        >>> Compose([to_float, Normalize([0.0], [0.5])])(torch.full((1, 1, 1, 1), 255, dtype=torch.uint8)).item()
        2.0
    """

    def __init__(self, transforms: Sequence[Callable[[torch.Tensor], torch.Tensor]]):
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"{t!r} is not callable")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self) -> str:
        inner = ", ".join(getattr(t, "__name__", None) or repr(t) for t in self.transforms)
        return f"Compose([{inner}])"
