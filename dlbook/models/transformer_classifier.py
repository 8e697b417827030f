"""A Transformer encoder classifier: embeddings, positions, N encoder blocks, pooling, a linear head.

Vaswani et al., "Attention Is All You Need", NeurIPS 2017; the [CLS] pooling option is
from Devlin et al., "BERT", NAACL 2019. The blocks are written out in
:mod:`dlbook.models.transformer`.

``forward(tokens, lengths)`` like the RNN classifier of chapter 3.2, so both plug into
the same ``TextLoader`` and ``Trainer``; padding never influences the result (it is
masked as a key and left out of the mean).

Example:
    >>> import torch
    >>> model = TransformerClassifier(TransformerClassifierConfig.tiny(vocab_size=100))
    >>> model(torch.randint(2, 100, (3, 7)), torch.tensor([7, 5, 2])).shape
    torch.Size([3, 2])
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from dlbook.data.text import PAD_INDEX, check_token_batch, masked_mean, padding_mask
from dlbook.models import check_config
from dlbook.models.transformer import EncoderBlock, PositionalEncoding

POOLINGS = ("mean", "cls")
POSITIONALS = ("sinusoidal", "none")


@dataclass
class TransformerClassifierConfig:
    """A Transformer encoder classifier's shape. The defaults suit SST-2 from scratch on a CPU.

    The padding token is ``dlbook.data.text.PAD_INDEX`` (``Vocab``'s ``<pad>``); its embedding stays zero.
    """

    vocab_size: int  # rows of the embedding table (at least <pad> and one word; required)
    num_classes: int = 2  # 2 for SST-2, 5 for SST-5
    d_model: int = 64  # plenty for 7k training sentences (wider over-fits faster)
    num_heads: int = 4  # 4 heads of 16 dimensions each
    num_layers: int = 2  # SST sentences are short (about 20 tokens)
    d_ff: int = 128  # feed-forward width, 2x d_model (4x is usual; 2x is enough here)
    dropout: float = 0.1  # on embeddings, attention weights, both residual branches and before the head
    max_len: int = 512  # the longest sentence accepted (the positional table's length)
    # "mean" over the real tokens, or "cls": a learned vector prepended to every sentence,
    # whose final state is classified (BERT's [CLS]).
    pooling: str = "mean"
    positional: str = "sinusoidal"  # or "none": an order-blind bag of words with attention

    def __post_init__(self) -> None:
        check_config(self, positive=("num_classes", "d_model", "num_heads", "num_layers", "d_ff", "max_len"),
                     fractions=("dropout",), choices={"pooling": POOLINGS, "positional": POSITIONALS})
        if self.vocab_size < 2:
            raise ValueError(f"TransformerClassifierConfig.vocab_size={self.vocab_size} must be at least 2 "
                             "(<pad> and one word)")
        if self.d_model % self.num_heads != 0:
            raise ValueError(f"d_model={self.d_model} must be divisible by num_heads={self.num_heads}")

    @classmethod
    def tiny(cls, vocab_size: int = 50, **overrides) -> "TransformerClassifierConfig":
        """A very small model for tests and smoke runs (d_model=16, 2 heads, 1 layer)."""
        return replace(cls(vocab_size=vocab_size, d_model=16, num_heads=2, num_layers=1, d_ff=32, max_len=128),
                       **overrides)


class TransformerClassifier(nn.Module):
    """Embed, add positions, run N encoder blocks, pool, classify.

    ``forward(tokens, lengths)`` takes the batches of ``dlbook.data.text.TextLoader``
    (padded token ids and true lengths) and returns class logits; padding never
    influences the result (it is masked as a key and left out of the mean).

    Example:
        >>> model = TransformerClassifier(TransformerClassifierConfig.tiny(vocab_size=50))
        >>> logits = model(torch.randint(2, 50, (4, 9)), torch.tensor([9, 4, 1, 6]))
        >>> logits.shape
        torch.Size([4, 2])
    """

    def __init__(self, config: TransformerClassifierConfig) -> None:
        super().__init__()
        self.config = c = config
        self.embedding = nn.Embedding(c.vocab_size, c.d_model, padding_idx=PAD_INDEX)
        self.cls = nn.Parameter(torch.zeros(1, 1, c.d_model)) if c.pooling == "cls" else None
        max_len = c.max_len + (1 if c.pooling == "cls" else 0)
        self.positions = PositionalEncoding(c.d_model, max_len, c.dropout) if c.positional == "sinusoidal" else None
        self.embed_dropout = nn.Dropout(c.dropout) if self.positions is None else None
        self.blocks = nn.ModuleList(
            EncoderBlock(c.d_model, c.num_heads, c.d_ff, c.dropout) for _ in range(c.num_layers)
        )
        self.norm = nn.LayerNorm(c.d_model)
        self.head_dropout = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.d_model, c.num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Embeddings and linear weights ~ N(0, 0.02) (GPT-2), biases 0; the pad row stays 0."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
        with torch.no_grad():
            self.embedding.weight[PAD_INDEX].zero_()
        if self.cls is not None:
            nn.init.normal_(self.cls, std=0.02)

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """``tokens (B, T)`` int64 ids, ``lengths (B,)`` -> logits ``(B, num_classes)``."""
        return self.head(self.head_dropout(self.encode(tokens, lengths)))

    def encode(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """The sentence vector before dropout and the head: ``(B, d_model)``."""
        return self._run(tokens, lengths)[0]

    def attention_maps(self, tokens: Tensor, lengths: Tensor) -> list[Tensor]:
        """The attention weights of every layer: a list of ``num_layers`` tensors ``(B, H, T', T')``.

        ``T' = T + 1`` with ``pooling="cls"`` (the CLS vector is position 0). Call it in
        ``eval()`` mode to see the weights without dropout.
        """
        return self._run(tokens, lengths)[1]

    def _run(self, tokens: Tensor, lengths: Tensor) -> tuple[Tensor, list[Tensor]]:
        """The pooled sentence vector and the per-layer attention weights."""
        c = self.config
        tokens, lengths = check_token_batch(tokens, lengths)
        B, T = tokens.shape
        if T > c.max_len:
            raise ValueError(
                f"sequence length {T} exceeds max_len={c.max_len}; raise TransformerClassifierConfig.max_len"
            )
        keep = padding_mask(lengths.to(tokens.device), max_len=T)  # (B, T)
        x = self.embedding(tokens)  # (B, T, d_model)
        if self.cls is not None:
            x = torch.cat([self.cls.expand(B, 1, c.d_model), x], dim=1)  # (B, 1 + T, d_model)
            keep = torch.cat([keep.new_ones(B, 1), keep], dim=1)  # (B, 1 + T)
        x = self.positions(x) if self.positions is not None else self.embed_dropout(x)
        mask = keep[:, None, None, :]  # (B, 1, 1, T'): every query sees the real keys only
        maps = []
        for block in self.blocks:
            x, weights = block(x, mask)
            maps.append(weights)
        x = self.norm(x)  # (B, T', d_model)
        if self.cls is not None:
            pooled = x[:, 0]  # (B, d_model)
        else:
            pooled = masked_mean(x, keep)  # (B, T, d_model) -> (B, d_model), padding left out
        return pooled, maps


__all__ = ["POOLINGS", "POSITIONALS", "TransformerClassifierConfig", "TransformerClassifier"]
