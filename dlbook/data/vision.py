"""MNIST and Fashion-MNIST, read straight from their idx files.

The idx format (LeCun et al., "Gradient-based learning applied to document
recognition", 1998) is a big-endian header -- magic ``0x0000 08 <ndim>`` then one
uint32 per dimension -- followed by the raw uint8 array. Fashion-MNIST (Xiao, Rasul
and Vollgraf, 2017, arXiv:1708.07747) uses the same files and sizes.

Checksums are SHA-256 of the *gunzipped* idx bytes: Debian's ``dataset-fashion-mnist``
recompressed the upstream ``.gz`` files (their bytes differ from upstream's) but the
data inside is identical, and this way both copies verify.

Example:
    >>> images, labels = load_fashion_mnist("train")   # doctest: +SKIP
    >>> images.shape, images.dtype, labels.dtype        # doctest: +SKIP
    (torch.Size([60000, 28, 28]), torch.uint8, torch.int64)
"""

from __future__ import annotations

import math
import struct

import numpy as np
import torch

from dlbook.data.fetch import fetch_bytes
from dlbook.data.sources import CorruptDataError, FileSpec, find_cached, find_offline

#: The ten Fashion-MNIST class names, in label order.
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
MNIST_CLASSES = tuple(str(d) for d in range(10))

# Mirrors as in torchvision.datasets.MNIST / FashionMNIST, plus Zalando's GitHub copy.
_MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
_FASHION_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/")
_FASHION_HINT = "On Debian/Ubuntu: `apt-get install dataset-fashion-mnist` (read from /usr/share/datasets)."

# SHA-256 of the gunzipped idx files (the upstream .gz files have the torchvision md5s
# 8d4fb7e6..., 25c81989..., bef4ecab..., bb300cfd... for Fashion-MNIST and f68b3c2d...,
# d53e105e..., 9fb629c4..., ec29112d... for MNIST).
_RAW_SHA256 = {
    "fashion-mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
}
_SPLITS = {"train": ("train", 60_000), "test": ("t10k", 10_000)}


def _spec(family: str, stem: str) -> FileSpec:
    mirrors, hint = (_FASHION_MIRRORS, _FASHION_HINT) if family == "fashion-mnist" else (_MNIST_MIRRORS, "")
    return FileSpec(
        path=f"{family}/{stem}.gz",
        sha256=_RAW_SHA256[family][stem],
        urls=tuple(m + f"{stem}.gz" for m in mirrors),
        checksum_of="gunzip",
        hint=hint,
    )


#: Every file, keyed by ``(family, split, kind)``; tests and mirrors may read it.
FILES: dict[tuple[str, str, str], FileSpec] = {
    (family, split, kind): _spec(family, f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte")
    for family in _RAW_SHA256
    for split, (prefix, _) in _SPLITS.items()
    for kind in ("images", "labels")
}


def parse_idx(data: bytes, name: str = "idx data") -> np.ndarray:
    """Parse an uncompressed idx file into a uint8 array of the shape its header gives.

    Args:
        data: the whole file's bytes.
        name: how to name the file in an error.

    Raises:
        CorruptDataError: bad magic number, not uint8, or a length that disagrees with the header.

    Example:
        >>> parse_idx(bytes([0, 0, 8, 1, 0, 0, 0, 2, 7, 9])).tolist()
        [7, 9]
    """
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise CorruptDataError(f"{name} is not an idx file (bad magic number).", None)
    if data[2] != 0x08:
        raise CorruptDataError(f"{name}: idx type 0x{data[2]:02x} is not uint8 (0x08).", None)
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise CorruptDataError(f"{name}: header cut short.", None)
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = math.prod(shape)  # Python ints: a huge header cannot overflow (np.prod wraps at 2**63)
    if len(data) - header != expected:
        raise CorruptDataError(f"{name}: header says shape {shape} ({expected:,} bytes), "
                               f"file holds {len(data) - header:,} bytes.", None)
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _load(family: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    if split not in _SPLITS:
        raise ValueError(f"split={split!r}; use 'train' or 'test'")
    n = _SPLITS[split][1]
    arrays = {}
    for kind in ("images", "labels"):
        spec = FILES[(family, split, kind)]
        arrays[kind] = parse_idx(fetch_bytes(spec), spec.path)
    images, labels = arrays["images"], arrays["labels"]
    if images.shape != (n, 28, 28) or labels.shape != (n,) or labels.max() > 9:
        raise CorruptDataError(f"{family} {split}: unexpected shapes {images.shape}, {labels.shape}.", None)
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def load_fashion_mnist(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST images and labels.

    Args:
        split: ``"train"`` (60,000) or ``"test"`` (10,000).

    Returns:
        ``(images, labels)``: uint8 ``(N, 28, 28)`` and int64 ``(N,)`` in ``0..9``
        (names in :data:`FASHION_MNIST_CLASSES`). Add the channel dimension with
        ``images.unsqueeze(1)`` for a CNN.

    Raises:
        MissingDataError: no copy and no download possible (the message says where it looked).
        ChecksumError: a copy is truncated or corrupted (the message names it).

    Example:
        >>> x, y = load_fashion_mnist("test")   # doctest: +SKIP
        >>> FASHION_MNIST_CLASSES[int(y[0])]    # doctest: +SKIP
        'Ankle boot'
    """
    return _load("fashion-mnist", split)


def load_mnist(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST digits, like :func:`load_fashion_mnist` (no offline copy ships with the book).

    Example:
        >>> x, y = load_mnist("train")   # doctest: +SKIP
    """
    return _load("mnist", split)


def mnist_available(family: str = "mnist") -> bool:
    """True if every file of ``family`` (``"mnist"`` or ``"fashion-mnist"``) is on disk.

    Chapters use it to pick MNIST only where it is already there (or online) without
    attempting a download; nothing is verified or downloaded here.
    """
    return all(find_offline(s) or find_cached(s) for (f, _, _), s in FILES.items() if f == family)
