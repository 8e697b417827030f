"""Text tools: a tokenizer, a vocabulary, padding, and a length-bucketing loader.

The pipeline of chapters 3.2, 3.3 and 4.2::

    texts -> tokenize -> Vocab.build / vocab.encode -> TextLoader -> ((tokens, lengths), labels)

Padding is done here, and so is everything the models need to read a padded batch
(:data:`PAD_INDEX`, :func:`check_token_batch`, :func:`padding_mask`, :func:`masked_mean`);
packing (``pack_padded_sequence``) and attention are done in the models, from the true ``lengths``.

Example:
    >>> vocab = Vocab.build([tokenize("a good film ."), tokenize("a bad film .")])
    >>> vocab.encode(tokenize("A good, good film!"))
    [3, 6, 1, 6, 4, 1]
    >>> tokens, lengths = pad_batch([[4, 6], [5]])
    >>> tokens.tolist(), lengths.tolist()
    ([[4, 6], [5, 0]], [2, 1])
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import Iterable, Iterator, Sequence

import torch

from dlbook.data.loaders import epoch_generator

PAD_INDEX = 0
"""The id of ``<pad>``: the one place the padding index is defined (``Vocab``, ``pad_batch``, the models)."""

# One translation before splitting: curly apostrophes become ', and invisible characters are never
# tokens: a zero-width space separates words like a space; soft hyphens, zero-width (non-)joiners,
# direction marks, the word joiner, the byte-order mark and control characters other than whitespace
# (NUL, ESC, DEL, ...) join or mean nothing, and are dropped. Whitespace controls (tab, newline) stay spaces.
_INVISIBLE = [0x00AD, *range(0x200C, 0x2010), *range(0x202A, 0x202F), *range(0x2060, 0x2065), 0xFEFF,
              *(c for c in [*range(0x20), *range(0x7F, 0xA0)] if not chr(c).isspace())]
_NORMALISE = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u200b": " ",
                            **{chr(c): None for c in _INVISIBLE}})


def _mark_class() -> str:
    """A regex class of the combining marks (categories Mn, Mc, Me), which ``\\w`` leaves out.

    Every mark is in the first two planes except the variation selectors U+E0100..E01EF.
    """
    marks = [c for c in [*range(0x20000), *range(0xE0100, 0xE01F0)] if unicodedata.category(chr(c))[0] == "M"]
    ranges, start = [], marks[0]
    for previous, c in zip(marks, marks[1:] + [None]):
        if c != previous + 1:
            ranges.append(re.escape(chr(start)) + ("" if previous == start else "-" + re.escape(chr(previous))))
            start = c
    return "".join(ranges)


_M = _mark_class()
_TOKEN = re.compile(
    rf"""
      -[lr][rcs]b-              # Penn Treebank brackets as written in SST: -lrb- -rrb-
    | \.\.\.|--|``|''            # multi-character punctuation: ... -- `` ''
    | \w[\w{_M}]*(?=n't\b)       # "do" of "don't", "ca" of "can't" (Penn Treebank style, as in SST)
    | n't\b                     # the negation itself
    | '(?:s|re|ve|ll|d|m)\b     # other clitics: 's 're 've 'll 'd 'm
    | (?:[^\W\d_][{_M}]*\.){{2,}}  # initialisms: u.s. e.t.
    | \d+(?:[.,]\d+)+           # numbers such as 3.5 and 1,000
    | \w[\w{_M}]*(?:-\w[\w{_M}]*)*  # words: letters of any script with their combining marks; compounds
    | [^\w\s][{_M}]*             # any other visible character on its own (with its marks): punctuation, symbols
    """,
    re.VERBOSE,
)


def tokenize(text: str) -> list[str]:
    """Normalise ``text`` (NFC), lower-case it and split it into words, clitics and punctuation.

    Splits like the Penn Treebank, as the SST files are split, so raw text and SST
    text give the same tokens: ``"don't"`` -> ``do n't``, ``"it's"`` -> ``it 's``.
    Letters and digits of any script count as word characters, with their combining
    marks (accents, Devanagari vowel signs, Arabic harakat, Hebrew niqqud), so
    ``"café"`` is one token whether typed composed or decomposed. A word ends only at
    a space or punctuation: scripts written without spaces (Thai, Chinese, Japanese)
    give one token per run of letters, not per word. Hyphenated compounds stay whole;
    curly apostrophes count as ``'``. Invisible characters are never tokens: a
    zero-width space splits words, and soft hyphens, zero-width joiners, direction
    marks, byte-order marks and control characters (NUL, ESC, ...) are dropped.

    Example:
        >>> tokenize("Don't miss it: a café-style gem!")
        ['do', "n't", 'miss', 'it', ':', 'a', 'café-style', 'gem', '!']
        >>> tokenize("")
        []
    """
    if not isinstance(text, str):
        raise TypeError(f"tokenize expects a str, got {type(text).__name__}")
    return _TOKEN.findall(unicodedata.normalize("NFC", text).lower().translate(_NORMALISE))


class Vocab:
    """A mapping between tokens and integer ids, with ``<pad>`` = 0 and ``<unk>`` = 1.

    Build it from training data with :meth:`build`; save it as ``vocab.itos`` (a list
    of strings) and restore it with ``Vocab(itos)``.

    Args:
        itos: every token in id order, starting with ``"<pad>", "<unk>"``.

    Example:
        >>> vocab = Vocab.build([["a", "b", "a"], ["a", "c"]], min_freq=2)
        >>> vocab.itos, vocab.encode(["a", "z"]), len(vocab)
        (['<pad>', '<unk>', 'a'], [2, 1], 3)
    """

    PAD, UNK = "<pad>", "<unk>"
    pad_index, unk_index = PAD_INDEX, PAD_INDEX + 1

    def __init__(self, itos: Sequence[str]):
        itos = list(itos)
        if itos[:2] != [self.PAD, self.UNK]:
            raise ValueError(f"a vocabulary starts with {self.PAD!r}, {self.UNK!r}; got {itos[:2]}")
        self.itos = itos
        self.stoi = {token: i for i, token in enumerate(itos)}
        if len(self.stoi) != len(itos):
            duplicates = [t for t, n in Counter(itos).items() if n > 1]
            raise ValueError(f"duplicate tokens in the vocabulary: {duplicates[:5]}")

    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], min_freq: int = 1, max_size: int | None = None) -> "Vocab":
        """Count tokens and keep the frequent ones, most frequent first (ties alphabetical).

        Args:
            token_lists: tokenised training texts (never the test set).
            min_freq: keep tokens seen at least this often.
            max_size: the most entries, the two specials included.

        Example:
            >>> Vocab.build([["b", "a", "b"]]).itos
            ['<pad>', '<unk>', 'b', 'a']
        """
        if min_freq < 1:
            raise ValueError(f"min_freq={min_freq}; it must be at least 1")
        if max_size is not None and max_size < 2:
            raise ValueError(f"max_size={max_size}; it must leave room for the 2 specials")
        counts: Counter[str] = Counter()
        for tokens in token_lists:
            if isinstance(tokens, str):
                raise TypeError("build expects token lists, not strings; pass [tokenize(t) for t in texts]")
            counts.update(tokens)
        specials = {cls.PAD, cls.UNK}
        kept = sorted((t for t, n in counts.items() if n >= min_freq and t not in specials),
                      key=lambda t: (-counts[t], t))
        if max_size is not None:
            kept = kept[:max_size - 2]
        return cls([cls.PAD, cls.UNK, *kept])

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def __getitem__(self, token: str) -> int:
        return self.stoi.get(token, self.unk_index)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Token ids; unknown tokens become ``unk_index``.

        Example:
            >>> Vocab(["<pad>", "<unk>", "hi"]).encode(["hi", "there"])
            [2, 1]
        """
        if isinstance(tokens, str):
            raise TypeError("encode expects a list of tokens; use vocab.encode(tokenize(text))")
        return [self.stoi.get(t, self.unk_index) for t in tokens]

    def decode(self, ids: Iterable[int] | torch.Tensor, skip_pad: bool = False) -> list[str]:
        """Tokens for ``ids`` (optionally without ``<pad>``).

        Example:
            >>> Vocab(["<pad>", "<unk>", "hi"]).decode([2, 1, 0], skip_pad=True)
            ['hi', '<unk>']
        """
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        out = []
        for i in ids:
            if not 0 <= int(i) < len(self.itos):
                raise IndexError(f"id {i} is outside the vocabulary (size {len(self.itos)})")
            if not (skip_pad and i == self.pad_index):
                out.append(self.itos[int(i)])
        return out

    def coverage(self, token_lists: Iterable[Sequence[str]]) -> float:
        """Fraction of all tokens in ``token_lists`` that the vocabulary knows.

        Example:
            >>> Vocab(["<pad>", "<unk>", "a"]).coverage([["a", "b"], ["a", "a"]])
            0.75
        """
        known = total = 0
        for tokens in token_lists:
            total += len(tokens)
            known += sum(t in self.stoi and t not in (self.PAD, self.UNK) for t in tokens)
        if total == 0:
            raise ValueError("coverage of no tokens is undefined")
        return known / total

    def __repr__(self) -> str:
        preview = ", ".join(self.itos[2:7])
        return f"Vocab(size={len(self)}, most frequent: {preview}{', ...' if len(self) > 7 else ''})"


def pad_batch(seqs: Sequence[Sequence[int] | torch.Tensor],
              pad_index: int = PAD_INDEX) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad id sequences to a common length.

    Args:
        seqs: B sequences of token ids.
        pad_index: the id that fills the tail.

    Returns:
        ``(tokens, lengths)``: int64 ``(B, T)`` with ``T = max(lengths)`` (at least 1),
        and the true lengths ``(B,)``. An empty sequence gets length 0, which
        ``pack_padded_sequence`` refuses: drop empty texts before batching.

    Example:
        >>> pad_batch([[7, 8, 9], [5]], pad_index=0)[0].tolist()
        [[7, 8, 9], [5, 0, 0]]
    """
    if len(seqs) == 0:
        raise ValueError("pad_batch needs at least one sequence")
    tensors = [torch.as_tensor(s, dtype=torch.int64).reshape(-1) for s in seqs]
    lengths = torch.tensor([len(t) for t in tensors], dtype=torch.int64)
    tokens = torch.full((len(tensors), max(1, int(lengths.max()))), pad_index, dtype=torch.int64)  # (B, T)
    for row, t in enumerate(tensors):
        tokens[row, :len(t)] = t
    return tokens, lengths


def check_token_batch(tokens: torch.Tensor | Sequence[Sequence[int]], lengths: torch.Tensor | Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a padded batch ``(tokens (B, T), lengths (B,))``; the one check every text model uses.

    Args:
        tokens: padded token ids, an int64 or int32 tensor ``(B, T)`` (e.g. from :func:`pad_batch`).
        lengths: the true length of each row, integers in ``[1, T]``.

    Returns:
        ``(tokens, lengths)``: the ids as int64 on their device, the lengths as a CPU int64
        ``(B,)`` tensor (what ``pack_padded_sequence`` wants).

    Raises:
        ValueError: wrong rank, dtype or shape, an empty batch, or a length outside ``[1, T]``.

    Example:
        >>> tokens, lengths = check_token_batch(torch.tensor([[4, 6], [5, 0]]), [2, 1])
        >>> lengths
        tensor([2, 1])
    """
    tokens = torch.as_tensor(tokens)
    if tokens.dim() != 2 or tokens.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"tokens must be integer token ids of shape (B, T), got shape {tuple(tokens.shape)} "
                         f"{tokens.dtype}; build batches with pad_batch([vocab.encode(tokenize(text)), ...])")
    lengths = torch.as_tensor(lengths)
    if lengths.dtype.is_floating_point or lengths.dtype.is_complex or lengths.dtype == torch.bool:
        raise ValueError(f"lengths must be integers, got {lengths.dtype}")
    if lengths.shape != (tokens.shape[0],):
        raise ValueError(f"lengths must have shape ({tokens.shape[0]},) to match tokens {tuple(tokens.shape)}, "
                         f"got {tuple(lengths.shape)}")
    if tokens.shape[0] == 0:
        raise ValueError("the batch is empty (B=0): pass at least one sentence")
    lengths = lengths.to("cpu", torch.int64)
    low, high = int(lengths.min()), int(lengths.max())
    if low < 1 or high > tokens.shape[1]:
        raise ValueError(f"lengths must lie in [1, {tokens.shape[1]}] (the padded length T), got min {low}, "
                         f"max {high}; drop empty sentences before batching")
    return tokens.long(), lengths


def padding_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """A ``(B, T)`` boolean mask, True at real tokens and False at padding.

    Args:
        lengths: ``(B,)`` integer lengths, each at least 1; the mask is on their device.
        max_len: T; defaults to ``lengths.max()``.

    Example:
        >>> padding_mask(torch.tensor([3, 1]), max_len=4)
        tensor([[ True,  True,  True, False],
                [ True, False, False, False]])
    """
    if lengths.dim() != 1 or lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
        raise ValueError(f"lengths must be a 1-D integer tensor, got shape {tuple(lengths.shape)} {lengths.dtype}")
    if lengths.numel() and int(lengths.min()) < 1:
        raise ValueError("every length must be at least 1 (an empty sequence has nothing to attend to)")
    T = int(lengths.max()) if max_len is None else max_len
    if lengths.numel() and int(lengths.max()) > T:
        raise ValueError(f"a length ({int(lengths.max())}) exceeds max_len={T}")
    return torch.arange(T, device=lengths.device)[None, :] < lengths[:, None]  # (B, T)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean of the vectors of ``x`` where ``mask`` is true: ``(B, T, D), (B, T) -> (B, D)``.

    Mean pooling over the real tokens of a padded batch (``mask`` from :func:`padding_mask`,
    or a 0/1 attention mask). A row with no true entry gives zeros rather than NaN.

    Example:
        >>> masked_mean(torch.tensor([[[1.0], [3.0], [100.0]]]), torch.tensor([[True, True, False]]))
        tensor([[2.]])
    """
    if x.dim() != 3 or mask.shape != x.shape[:2]:
        raise ValueError(f"masked_mean expects x (B, T, D) and mask (B, T), got {tuple(x.shape)} and "
                         f"{tuple(mask.shape)}")
    weights = mask.unsqueeze(-1).to(x.dtype)  # (B, T, 1)
    return (x * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)  # (B, D)


class TextLoader:
    """Batches of ``((tokens, lengths), labels)`` from encoded texts, bucketed by length.

    With ``bucket=True`` the examples (shuffled first if ``shuffle``) are cut into
    chunks of ``chunk_batches`` batches, each chunk is sorted by length and cut into
    batches, and (if ``shuffle``) the order of all batches is shuffled: batches hold
    texts of similar length, so far less padding is processed, while every epoch
    still mixes the data. Each example appears exactly once per epoch.

    Note that bucketing changes the order even when ``shuffle=False``: labels travel
    with their texts, so accuracy and F1 are unaffected, and ``last_indices`` gives the
    example order of the latest pass; use ``bucket=False`` to keep the input order.

    Args:
        encoded_seqs: token-id sequences (lists or 1-D tensors).
        labels: one label per sequence.
        batch_size: sequences per batch.
        shuffle: new order every epoch (seeded by ``(seed, epoch)``, see :meth:`set_epoch`).
        bucket: group similar lengths.
        seed: seed of the shuffling.
        pad_index: the padding id (:data:`PAD_INDEX`, ``Vocab``'s ``<pad>``).
        chunk_batches: batches per sorting chunk.

    Example:
        >>> loader = TextLoader([[5, 6, 7], [8], [9, 10]], torch.tensor([1, 0, 1]), batch_size=2)
        >>> [(t.shape[1], y.tolist()) for (t, lengths), y in loader]
        [(2, [0, 1]), (3, [1])]
    """

    def __init__(self, encoded_seqs: Sequence[Sequence[int] | torch.Tensor], labels: torch.Tensor | Sequence[int],
                 batch_size: int, shuffle: bool = False, bucket: bool = True, seed: int = 0,
                 pad_index: int = PAD_INDEX, chunk_batches: int = 50):
        self.seqs = [torch.as_tensor(s, dtype=torch.int64).reshape(-1) for s in encoded_seqs]
        self.labels = torch.as_tensor(labels)
        if len(self.seqs) != len(self.labels):
            raise ValueError(f"{len(self.seqs)} sequences but {len(self.labels)} labels")
        if len(self.seqs) == 0:
            raise ValueError("TextLoader needs at least one sequence")
        if int(batch_size) < 1 or int(chunk_batches) < 1:
            raise ValueError(f"batch_size={batch_size}, chunk_batches={chunk_batches}; both must be at least 1")
        self.lengths = torch.tensor([len(s) for s in self.seqs], dtype=torch.int64)
        self.batch_size, self.shuffle, self.bucket, self.seed = int(batch_size), shuffle, bucket, seed
        self.pad_index, self.chunk_batches, self.epoch = pad_index, int(chunk_batches), 0
        self.last_indices: torch.Tensor | None = None

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass use epoch ``epoch``'s order."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return -(-len(self.seqs) // self.batch_size)

    def batches(self, epoch: int) -> list[torch.Tensor]:
        """The example indices of every batch of epoch ``epoch``, in order."""
        n, size = len(self.seqs), self.batch_size
        generator = epoch_generator(self.seed, epoch)
        order = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
        if not self.bucket:
            return list(order.split(size))
        batches: list[torch.Tensor] = []
        chunk = size * self.chunk_batches
        for start in range(0, n, chunk):
            idx = order[start:start + chunk]
            idx = idx[torch.sort(self.lengths[idx], stable=True).indices]
            batches.extend(idx.split(size))
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        return batches

    def __iter__(self) -> Iterator[tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        batches = self.batches(epoch)
        self.last_indices = torch.cat(batches)
        for idx in batches:
            tokens, lengths = pad_batch([self.seqs[i] for i in idx.tolist()], self.pad_index)
            yield (tokens, lengths), self.labels[idx]

    def __repr__(self) -> str:
        return (f"TextLoader(n={len(self.seqs)}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"bucket={self.bucket})")
