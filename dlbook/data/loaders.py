"""In-memory batching of tensors: the fast path when a dataset fits in memory.

``torch.utils.data.DataLoader`` fetches one example at a time and collates them;
for datasets held as tensors (CIFAR-10 is 184 MB as uint8) it is much faster to
index a whole batch at once and run augmentation as batched tensor ops
(:mod:`dlbook.data.transforms`). Chapter 4.1 measures the difference.

Example:
    >>> x, y = torch.zeros(10, 3, 32, 32, dtype=torch.uint8), torch.arange(10)
    >>> loader = TensorLoader(x, y, batch_size=4, shuffle=True)
    >>> len(loader), [len(yb) for _, yb in loader]
    (3, [4, 4, 2])
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator that depends only on ``(seed, epoch)``: epochs are reproducible and resumable."""
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) % (2**63))


class TensorLoader:
    """Batches of ``(x, y)`` drawn from tensors in memory.

    Each pass over the loader is one epoch. With ``shuffle=True`` every epoch draws
    a new permutation from a generator seeded by ``(seed, epoch)``: the same seed
    gives the same sequence of epochs, and :meth:`set_epoch` (called by
    ``dlbook.train.Trainer``) makes a resumed run see exactly the batches it would
    have seen. Without ``set_epoch`` the epoch counts up by one per pass.

    Args:
        x: inputs, any dtype (uint8 images are fine: convert them in ``transform``),
            on any device (batches stay on it).
        y: targets with ``len(y) == len(x)``.
        batch_size: examples per batch.
        shuffle: draw a new order every epoch.
        transform: applied to each whole input batch, e.g.
            ``Compose([to_float, RandomCrop(32, 4), Normalize(...)])``. It must not
            modify its input in place (batches may be views of ``x``).
        drop_last: drop the last batch if it is smaller than ``batch_size``.
        seed: seed of the shuffling.

    Example:
        >>> from dlbook.data.transforms import to_float
        >>> loader = TensorLoader(torch.zeros(6, 1, 2, 2, dtype=torch.uint8), torch.arange(6), 4, transform=to_float)
        >>> [xb.dtype for xb, _ in loader]
        [torch.float32, torch.float32]
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool = False,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None, drop_last: bool = False,
                 seed: int = 0):
        if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
            raise TypeError(f"x and y must be tensors, got {type(x).__name__} and {type(y).__name__}")
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} examples but y has {len(y)}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size={batch_size}; it must be at least 1")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable, got {type(transform).__name__}")
        self.x, self.y = x, y
        self.batch_size, self.shuffle, self.transform = int(batch_size), shuffle, transform
        self.drop_last, self.seed, self.epoch = drop_last, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass use epoch ``epoch``'s order."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n = len(self.x)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        order = None
        if self.shuffle:
            order = torch.randperm(len(self.x), generator=epoch_generator(self.seed, epoch)).to(self.x.device)
        for b in range(len(self)):
            lo, hi = b * self.batch_size, min((b + 1) * self.batch_size, len(self.x))
            if order is None:
                xb, yb = self.x[lo:hi], self.y[lo:hi]
            else:
                idx = order[lo:hi]
                xb, yb = self.x[idx], self.y[idx.to(self.y.device)]
            if self.transform is not None:
                xb = self.transform(xb)
            yield xb, yb

    def __repr__(self) -> str:
        return (f"TensorLoader(n={len(self.x)}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last}, transform={self.transform!r})")
