"""The tokeniser and vocabulary the text service uses, without torch.

:mod:`dlbook.data.text` holds the book's tokeniser, but it imports torch (its ``Vocab``
decodes tensors and its loader batches them). A service that imports it would carry
PyTorch. So the rules are not written a second time here: :func:`dlbook.deploy.export.save_text_spec`
copies them out of :mod:`dlbook.data.text` (its compiled token pattern, its character
table and the vocabulary's ``itos``) into one JSON file, and :class:`TextEncoder` applies
them in the same order as ``tokenize``: NFC, lower-case, translate, ``findall``. A test
compares the two on every SST-2 dev sentence and on the tokeniser's own edge cases.

Example:
    >>> spec = {"format": 1, "itos": ["<pad>", "<unk>", "good", "film"], "pattern": r"\\w+|[^\\w\\s]",
    ...         "flags": 32, "normalise": "NFC", "translate": {}, "max_tokens": 8}
    >>> enc = TextEncoder(spec)
    >>> enc.tokenize("Good FILM!"), enc.encode("a good film")
    (['good', 'film', '!'], [1, 2, 3])
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from pathlib import Path

SPEC_FORMAT = 1
PAD_INDEX, UNK_INDEX = 0, 1


class TextEncoder:
    """Text -> token ids by the rules in a spec written by ``save_text_spec``.

    Args:
        spec: the parsed JSON (keys ``itos``, ``pattern``, ``flags``, ``normalise``, ``translate``, ``max_tokens``).
    """

    def __init__(self, spec: dict):
        missing = {"itos", "pattern", "flags", "normalise", "translate", "max_tokens"} - set(spec)
        if missing or spec.get("format") != SPEC_FORMAT:
            raise ValueError(f"not a text spec of format {SPEC_FORMAT} (missing {sorted(missing)}); write it with "
                             "dlbook.deploy.export.save_text_spec(vocab, path)")
        self.itos = list(spec["itos"])
        if self.itos[:2] != ["<pad>", "<unk>"]:
            raise ValueError(f"a vocabulary starts with '<pad>', '<unk>'; got {self.itos[:2]}")
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        self.pattern = re.compile(spec["pattern"], spec["flags"])
        self.form = spec["normalise"]
        self.table = {int(k): v for k, v in spec["translate"].items()}
        self.max_tokens = int(spec["max_tokens"])

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TextEncoder":
        """Read a spec file (JSON)."""
        path = Path(path)
        try:
            return cls(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read the text spec {path}: {exc}") from exc

    def tokenize(self, text: str) -> list[str]:
        """The same tokens as ``dlbook.data.text.tokenize(text)``."""
        if not isinstance(text, str):
            raise TypeError(f"tokenize expects a str, got {type(text).__name__}")
        return self.pattern.findall(unicodedata.normalize(self.form, text).lower().translate(self.table))

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; unknown words are ``<unk>`` (1)."""
        return [self.stoi.get(t, UNK_INDEX) for t in self.tokenize(text)]

    def __len__(self) -> int:
        return len(self.itos)
