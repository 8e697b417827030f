"""Fixtures shared by the tests: a tiny 3-class problem, a re-iterable loader, a Trainer factory, one thread."""

import pytest
import torch
from torch import nn

from dlbook.metrics import accuracy
from dlbook.train import Trainer


class Batches:
    """A tiny re-iterable loader whose shuffle depends only on (seed, epoch), like dlbook's TensorLoader."""

    def __init__(self, x, y, batch_size=16, seed=0):
        self.x, self.y, self.batch_size, self.seed, self.epoch = x, y, batch_size, seed, 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return (len(self.x) + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1000 + self.epoch)
        order = torch.randperm(len(self.x), generator=g)
        for i in range(0, len(order), self.batch_size):
            idx = order[i:i + self.batch_size]
            yield self.x[idx], self.y[idx]


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one thread is faster, and on a shared CPU two threads can be 20 times slower.

    Use it for a whole module with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _blobs(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, 8, generator=g) + 2.5 * nn.functional.one_hot(y, 8).float()
    return x, y


def _make(seed=0, dropout=0.2, callbacks=(), precision="fp32", optimizer="sgd", **kwargs):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(dropout), nn.Linear(32, 3))
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    return Trainer(model, opt, nn.CrossEntropyLoss(), device="cpu", precision=precision,
                   metrics={"accuracy": accuracy}, callbacks=list(callbacks), progress=kwargs.pop("progress", False),
                   **kwargs)


@pytest.fixture
def batches():
    """The :class:`Batches` loader class: ``batches(x, y, batch_size=16, seed=0)``."""
    return Batches


@pytest.fixture
def blobs():
    """``blobs(n=256, seed=0)`` → ``(x (n, 8), y (n,))``: three separable Gaussian classes."""
    return _blobs


@pytest.fixture
def make_trainer():
    """``make_trainer(seed=0, dropout=0.2, callbacks=(), precision="fp32", optimizer="sgd", **trainer_kwargs)``:
    an MLP on :func:`blobs` with SGD (or ``optimizer="adam"``), on the CPU, silent."""
    return _make
