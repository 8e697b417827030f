"""Datasets, batching, augmentation, splits and text tools for the book.

Loaders return tensors and never download or print on import. Each looks for its
files in the offline folder named by ``DLBOOK_DATA``, then in the cache
(``DLBOOK_CACHE``, default ``~/.cache/dlbook``), then downloads them from their
canonical source (or ``DLBOOK_MIRROR``), always checking SHA-256; see
:mod:`dlbook.data.sources` and :mod:`dlbook.data.fetch`.

Modules::

    sources     file specs, the offline and cache folders, the error classes
    fetch       a verified copy: offline, cached, or downloaded atomically (``fetch``, ``fetch_bytes``)
    vision      MNIST and Fashion-MNIST (idx files)
    cifar10     CIFAR-10 (JPEG offline copy or the original python tarball), decoded once and cached
    sst         the Stanford Sentiment Treebank, SST-2 and SST-5
    loaders     ``TensorLoader``: in-memory batching
    transforms  batch transforms on ``(B, C, H, W)`` tensors (crop, flip, ``Cutout``, normalise) and constants
    splits      ``stratified_split``, ``group_split`` (no group straddles), ``time_split``
    duplicates  perceptual hashes and nearest-neighbour search for near-duplicates and leakage
    label_errors  confident learning: likely label errors from out-of-fold probabilities
    text        ``tokenize``, ``Vocab``, ``pad_batch``, ``TextLoader``; reading a padded batch:
                ``PAD_INDEX``, ``check_token_batch``, ``padding_mask``, ``masked_mean``

Example:
    >>> from dlbook.data import load_cifar10, TensorLoader, stratified_split   # doctest: +SKIP
    >>> x, y = load_cifar10("train")                                          # doctest: +SKIP
    >>> train_idx, val_idx = stratified_split(y, val_size=5000, seed=0)       # doctest: +SKIP
    >>> loader = TensorLoader(x[train_idx], y[train_idx], 128, shuffle=True)  # doctest: +SKIP
"""

from dlbook.data.cifar10 import (CIFAR10_CLASSES, CIFAR10Images, cifar10_image_dataset, cifar10_source,
                                 decode_cifar10_archive, load_cifar10)
from dlbook.data.loaders import TensorLoader
from dlbook.data.sources import (CacheWriteError, ChecksumError, CorruptDataError, DataError, DownloadError, MissingDataError,
                                 cache_dir, data_dirs)
from dlbook.data.duplicates import (average_hash, close_pairs, difference_hash, duplicate_groups,
                                    nearest_by_embedding, nearest_by_hash)
from dlbook.data.label_errors import confident_joint, find_label_issues
from dlbook.data.splits import group_split, stratified_split, time_split
from dlbook.data.sst import SST2_CLASSES, SST5_CLASSES, load_sst
from dlbook.data.text import (PAD_INDEX, TextLoader, Vocab, check_token_batch, masked_mean, pad_batch, padding_mask,
                              tokenize)
from dlbook.data.transforms import (CIFAR10_MEAN, CIFAR10_STD, FASHION_MNIST_MEAN, FASHION_MNIST_STD, Compose,
                                    Cutout, Normalize, RandomCrop, RandomHorizontalFlip, to_float)
from dlbook.data.vision import FASHION_MNIST_CLASSES, MNIST_CLASSES, load_fashion_mnist, load_mnist

__all__ = [
    "load_fashion_mnist", "load_mnist", "load_cifar10", "load_sst", "cifar10_image_dataset", "cifar10_source",
    "decode_cifar10_archive", "CIFAR10Images",
    "FASHION_MNIST_CLASSES", "MNIST_CLASSES", "CIFAR10_CLASSES", "SST2_CLASSES", "SST5_CLASSES",
    "TensorLoader", "TextLoader", "Vocab", "tokenize", "pad_batch", "stratified_split", "group_split", "time_split",
    "average_hash", "difference_hash", "nearest_by_hash", "nearest_by_embedding", "close_pairs", "duplicate_groups",
    "confident_joint", "find_label_issues",
    "PAD_INDEX", "check_token_batch", "padding_mask", "masked_mean",
    "to_float", "Normalize", "RandomCrop", "RandomHorizontalFlip", "Cutout", "Compose",
    "CIFAR10_MEAN", "CIFAR10_STD", "FASHION_MNIST_MEAN", "FASHION_MNIST_STD",
    "DataError", "MissingDataError", "DownloadError", "CacheWriteError", "CorruptDataError", "ChecksumError",
    "cache_dir", "data_dirs",
]
