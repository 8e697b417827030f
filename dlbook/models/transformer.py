"""The Transformer encoder, written out: attention, heads, positions, masks, a block, a classifier.

Vaswani et al., "Attention Is All You Need", NeurIPS 2017 (arXiv:1706.03762).
The pre-norm block (LayerNorm before each sub-layer, as in GPT-2 and
nn.TransformerEncoderLayer(norm_first=True)) is from Xiong et al., "On Layer
Normalization in the Transformer Architecture", ICML 2020; it trains from
scratch without a learning-rate warm-up.

Everything here is plain PyTorch, small enough to read in one sitting:

* :func:`scaled_dot_product_attention` -- ``softmax(Q K^T / sqrt(d_k)) V`` with a mask;
* :class:`MultiHeadAttention` -- H heads of size ``d_k = d_model / H``, with the head
  split done right: ``view(B, T, H, d_k).transpose(1, 2)``. (The source article
  wrote ``view(B, H, T, d_k)``, which mixes positions and heads; the chapter shows
  it on a tiny example.)
* :func:`sinusoidal_positional_encoding` and :class:`PositionalEncoding`;
* :func:`padding_mask` and :func:`causal_mask` (True = "may attend");
* :class:`EncoderBlock` -- pre-norm self-attention + feed-forward, residuals;
* :class:`TransformerClassifier` -- embeddings, positions, N blocks, mean-pool (or a
  CLS vector), a linear head. ``forward(tokens, lengths)`` like the RNN classifier
  of chapter 3.2, so both plug into the same ``TextLoader`` and ``Trainer``.

Mask convention (the same as ``F.scaled_dot_product_attention``): a boolean mask
is True where a query may attend to a key. ``nn.MultiheadAttention``'s
``key_padding_mask`` uses the opposite (True = ignore); pass ``~padding_mask(...)``
to it.

Example:
    >>> cfg = TransformerClassifierConfig.tiny(vocab_size=100)
    >>> model = TransformerClassifier(cfg)
    >>> tokens = torch.randint(2, 100, (3, 7))
    >>> model(tokens, torch.tensor([7, 5, 2])).shape
    torch.Size([3, 2])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "scaled_dot_product_attention",
    "split_heads",
    "merge_heads",
    "padding_mask",
    "causal_mask",
    "sinusoidal_positional_encoding",
    "PositionalEncoding",
    "MultiHeadAttention",
    "EncoderBlock",
    "TransformerClassifierConfig",
    "TransformerClassifier",
]


# --------------------------------------------------------------------------- attention


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    dropout: nn.Module | None = None,
) -> tuple[Tensor, Tensor]:
    """Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V, returning the output and the weights.

    Args:
        q: queries ``(..., T_q, d_k)``.
        k: keys ``(..., T_k, d_k)``.
        v: values ``(..., T_k, d_v)``.
        mask: optional boolean mask broadcastable to ``(..., T_q, T_k)``; True where the
            query may attend to the key (the convention of ``F.scaled_dot_product_attention``).
            A query whose keys are all masked gets all-zero weights (and a zero output)
            instead of NaN.
        dropout: optional dropout module applied to the attention weights.

    Returns:
        ``(output (..., T_q, d_v), weights (..., T_q, T_k))``; each row of weights sums to 1
        over the keys it may attend to and is exactly 0 on masked keys.

    Example:
        >>> q = k = v = torch.randn(2, 5, 8)
        >>> out, w = scaled_dot_product_attention(q, k, v, causal_mask(5))
        >>> out.shape, w.shape, bool(w[0, 0, 1:].eq(0).all())
        (torch.Size([2, 5, 8]), torch.Size([2, 5, 5]), True)
    """
    if q.size(-1) != k.size(-1):
        raise ValueError(f"queries and keys need the same size d_k, got {q.size(-1)} and {k.size(-1)}")
    if k.size(-2) != v.size(-2):
        raise ValueError(f"keys and values need the same length T_k, got {k.size(-2)} and {v.size(-2)}")
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (..., T_q, T_k)
    if mask is not None:
        if mask.dtype != torch.bool:
            raise TypeError(f"mask must be boolean (True = may attend), got {mask.dtype}")
        # The most negative finite number, not -inf: a fully masked row then gives a
        # finite (uniform) softmax, which the masked_fill below sets to exactly zero.
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores.float(), dim=-1).to(v.dtype)  # (..., T_q, T_k)
    if mask is not None:
        weights = weights.masked_fill(~mask, 0.0)
    if dropout is not None:
        weights = dropout(weights)
    return weights @ v, weights  # (..., T_q, d_v), (..., T_q, T_k)


def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """``(B, T, d_model)`` -> ``(B, H, T, d_k)``: each position keeps its own features.

    The channel dimension is cut into H chunks of ``d_k``; then heads and time swap
    places. ``x.view(B, H, T, d_k)`` (the source article's version) would instead cut the
    flat memory of all T positions into H slabs, so a "head" would hold features of
    different positions.

    Example:
        >>> split_heads(torch.randn(2, 5, 8), num_heads=4).shape
        torch.Size([2, 4, 5, 2])
    """
    B, T, d_model = x.shape
    if d_model % num_heads != 0:
        raise ValueError(f"d_model={d_model} is not divisible by num_heads={num_heads}")
    return x.view(B, T, num_heads, d_model // num_heads).transpose(1, 2)  # (B, T, H, d_k) -> (B, H, T, d_k)


def merge_heads(x: Tensor) -> Tensor:
    """``(B, H, T, d_k)`` -> ``(B, T, H * d_k)``: the inverse of :func:`split_heads`.

    Example:
        >>> x = torch.randn(2, 5, 8)
        >>> torch.equal(merge_heads(split_heads(x, 4)), x)
        True
    """
    B, H, T, d_k = x.shape
    return x.transpose(1, 2).reshape(B, T, H * d_k)  # (B, T, H, d_k) -> (B, T, d_model)


# --------------------------------------------------------------------------- masks


def padding_mask(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """A ``(B, T)`` boolean mask, True at real tokens and False at padding.

    Args:
        lengths: ``(B,)`` integer lengths, each at least 1.
        max_len: T; defaults to ``lengths.max()``.

    Example:
        >>> padding_mask(torch.tensor([3, 1]), max_len=4)
        tensor([[ True,  True,  True, False],
                [ True, False, False, False]])
    """
    if lengths.dim() != 1 or lengths.dtype.is_floating_point:
        raise ValueError(f"lengths must be a 1-D integer tensor, got shape {tuple(lengths.shape)} {lengths.dtype}")
    if lengths.numel() and int(lengths.min()) < 1:
        raise ValueError("every length must be at least 1 (an empty sequence has nothing to attend to)")
    T = int(lengths.max()) if max_len is None else max_len
    if lengths.numel() and int(lengths.max()) > T:
        raise ValueError(f"a length ({int(lengths.max())}) exceeds max_len={T}")
    return torch.arange(T, device=lengths.device)[None, :] < lengths[:, None]  # (B, T)


def causal_mask(T: int, device: torch.device | str | None = None) -> Tensor:
    """A ``(T, T)`` boolean mask, True on and below the diagonal: position t sees 0..t.

    Example:
        >>> causal_mask(3)
        tensor([[ True, False, False],
                [ True,  True, False],
                [ True,  True,  True]])
    """
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


# --------------------------------------------------------------------------- positions


def sinusoidal_positional_encoding(max_len: int, d_model: int) -> Tensor:
    """The fixed encoding of Vaswani et al.: ``PE[p, 2i] = sin(p / 10000^(2i/d))``, ``PE[p, 2i+1] = cos(...)``.

    Returns:
        A ``(max_len, d_model)`` float tensor with values in [-1, 1].

    Example:
        >>> pe = sinusoidal_positional_encoding(50, 16)
        >>> pe.shape, pe[0, :4].tolist()
        (torch.Size([50, 16]), [0.0, 1.0, 0.0, 1.0])
    """
    if max_len < 1 or d_model < 1:
        raise ValueError(f"max_len and d_model must be positive, got {max_len} and {d_model}")
    position = torch.arange(max_len, dtype=torch.float32)[:, None]  # (max_len, 1)
    freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    pe = torch.zeros(max_len, d_model)
    pe[:, 0::2] = torch.sin(position * freq)
    pe[:, 1::2] = torch.cos(position * freq[: d_model // 2])
    return pe


class PositionalEncoding(nn.Module):
    """Adds the sinusoidal encoding to ``(B, T, d_model)`` embeddings, then dropout.

    Example:
        >>> PositionalEncoding(16, max_len=50)(torch.zeros(2, 7, 16)).shape
        torch.Size([2, 7, 16])
    """

    def __init__(self, d_model: int, max_len: int = 512, dropout: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("pe", sinusoidal_positional_encoding(max_len, d_model), persistent=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        T = x.size(1)
        if T > self.pe.size(0):
            raise ValueError(f"sequence of length {T} is longer than max_len={self.pe.size(0)}; raise max_len")
        return self.dropout(x + self.pe[:T].to(x.dtype))


# --------------------------------------------------------------------------- multi-head attention


class MultiHeadAttention(nn.Module):
    """Multi-head attention: project, split into H heads, attend, merge, project.

    ``MultiHead(Q, K, V) = Concat(head_1..head_H) W_O`` with
    ``head_i = Attention(Q W_Q_i, K W_K_i, V W_V_i)``. The per-head projections are one
    ``d_model x d_model`` Linear each, whose output is split into heads.

    Args:
        d_model: model width; must be divisible by ``num_heads``.
        num_heads: number of heads H; each has size ``d_k = d_model // H``.
        dropout: dropout on the attention weights.
        bias: biases in the four projections.

    Example:
        >>> mha = MultiHeadAttention(16, 4)
        >>> x = torch.randn(2, 5, 16)
        >>> out, w = mha(x, mask=padding_mask(torch.tensor([5, 3]))[:, None, None, :])
        >>> out.shape, w.shape
        (torch.Size([2, 5, 16]), torch.Size([2, 4, 5, 5]))
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__()
        if d_model % num_heads != 0:
            raise ValueError(f"d_model={d_model} must be divisible by num_heads={num_heads}")
        self.d_model, self.num_heads, self.d_k = d_model, num_heads, d_model // num_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        self.attn_dropout = nn.Dropout(dropout)

    def forward(
        self,
        query: Tensor,
        key: Tensor | None = None,
        value: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Attend from ``query`` to ``key``/``value`` (both default to ``query``: self-attention).

        Args:
            query: ``(B, T_q, d_model)``.
            key: ``(B, T_k, d_model)``; defaults to ``query``.
            value: ``(B, T_k, d_model)``; defaults to ``key``.
            mask: boolean, broadcastable to ``(B, H, T_q, T_k)``, True = may attend. For a
                padding mask ``pm`` of shape ``(B, T_k)`` pass ``pm[:, None, None, :]``;
                for a causal mask pass ``causal_mask(T)``.

        Returns:
            ``(output (B, T_q, d_model), weights (B, H, T_q, T_k))``.
        """
        key = query if key is None else key
        value = key if value is None else value
        for name, t in (("query", query), ("key", key), ("value", value)):
            if t.dim() != 3 or t.size(-1) != self.d_model:
                raise ValueError(f"{name} must be (B, T, {self.d_model}), got {tuple(t.shape)}")
        q = split_heads(self.q_proj(query), self.num_heads)  # (B, H, T_q, d_k)
        k = split_heads(self.k_proj(key), self.num_heads)  # (B, H, T_k, d_k)
        v = split_heads(self.v_proj(value), self.num_heads)  # (B, H, T_k, d_k)
        out, weights = scaled_dot_product_attention(q, k, v, mask, self.attn_dropout)  # (B, H, T_q, d_k)
        return self.out_proj(merge_heads(out)), weights  # (B, T_q, d_model), (B, H, T_q, T_k)

    @torch.no_grad()
    def load_from_torch(self, mha: nn.MultiheadAttention) -> "MultiHeadAttention":
        """Copy the weights of an ``nn.MultiheadAttention`` (same d_model and heads) into this module.

        PyTorch stores the three input projections stacked in ``in_proj_weight``
        ``(3 d_model, d_model)``, in the order Q, K, V.

        Example:
            >>> ref = nn.MultiheadAttention(16, 4, batch_first=True)
            >>> ours = MultiHeadAttention(16, 4).load_from_torch(ref)
        """
        if mha.embed_dim != self.d_model or mha.num_heads != self.num_heads:
            raise ValueError(
                f"shape mismatch: ours d_model={self.d_model}, heads={self.num_heads}; "
                f"theirs embed_dim={mha.embed_dim}, num_heads={mha.num_heads}"
            )
        if mha.in_proj_weight is None:
            raise ValueError("nn.MultiheadAttention with kdim/vdim != embed_dim is not supported")
        for proj, w in zip((self.q_proj, self.k_proj, self.v_proj), mha.in_proj_weight.chunk(3)):
            proj.weight.copy_(w)
        self.out_proj.weight.copy_(mha.out_proj.weight)
        if mha.in_proj_bias is not None and self.q_proj.bias is not None:
            for proj, b in zip((self.q_proj, self.k_proj, self.v_proj), mha.in_proj_bias.chunk(3)):
                proj.bias.copy_(b)
            self.out_proj.bias.copy_(mha.out_proj.bias)
        return self


# --------------------------------------------------------------------------- encoder block


class EncoderBlock(nn.Module):
    """A pre-norm encoder block: ``x + Attn(LN(x))``, then ``x + FFN(LN(x))``.

    The same computation as ``nn.TransformerEncoderLayer(d_model, num_heads, d_ff, dropout,
    activation="relu", batch_first=True, norm_first=True)``.

    Example:
        >>> block = EncoderBlock(16, 4, 32)
        >>> y, w = block(torch.randn(2, 5, 16))
        >>> y.shape, w.shape
        (torch.Size([2, 5, 16]), torch.Size([2, 4, 5, 5]))
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = MultiHeadAttention(d_model, num_heads, dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, d_ff)
        self.relu = nn.ReLU()
        self.dropout_ff = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ff, d_model)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``x (B, T, d_model)`` and ``mask`` as in :class:`MultiHeadAttention` -> ``(y, weights)``.

        ``y`` is ``(B, T, d_model)``; ``weights`` are the attention weights ``(B, H, T, T)``.
        """
        attn_out, weights = self.attn(self.norm1(x), mask=mask)
        x = x + self.dropout1(attn_out)
        ff = self.linear2(self.dropout_ff(self.relu(self.linear1(self.norm2(x)))))
        return x + self.dropout2(ff), weights

    @torch.no_grad()
    def load_from_torch(self, layer: nn.TransformerEncoderLayer) -> "EncoderBlock":
        """Copy the weights of a ``nn.TransformerEncoderLayer`` (norm_first=True, ReLU)."""
        if not layer.norm_first:
            raise ValueError("this block is pre-norm; copy from nn.TransformerEncoderLayer(norm_first=True)")
        self.attn.load_from_torch(layer.self_attn)
        for ours, theirs in ((self.norm1, layer.norm1), (self.norm2, layer.norm2),
                             (self.linear1, layer.linear1), (self.linear2, layer.linear2)):
            ours.load_state_dict(theirs.state_dict())
        return self


# --------------------------------------------------------------------------- classifier


@dataclass
class TransformerClassifierConfig:
    """A Transformer encoder classifier's shape. The defaults suit SST-2 from scratch on a CPU.

    Attributes:
        vocab_size: rows of the embedding table (index 0 is ``<pad>``).
        num_classes: 2 for SST-2, 5 for SST-5.
        d_model: width; 64 is plenty for 7k training sentences (bigger over-fits faster).
        num_heads: 4 heads of 16 dimensions each.
        num_layers: 2 blocks; SST sentences are short (about 20 tokens).
        d_ff: feed-forward width, 2x d_model (4x is usual; 2x is enough here).
        dropout: on embeddings, attention weights, both residual branches and before the head.
        max_len: longest sentence accepted (the positional table's length).
        pad_index: the padding token id (``dlbook.data.text.Vocab`` uses 0); its embedding stays zero.
        pooling: ``"mean"`` over non-pad positions, or ``"cls"``: a learned vector prepended
            to every sentence whose final state is classified (BERT's [CLS]).
        positional: ``"sinusoidal"`` or ``"none"`` (an order-blind bag of words with attention).
    """

    vocab_size: int
    num_classes: int = 2
    d_model: int = 64
    num_heads: int = 4
    num_layers: int = 2
    d_ff: int = 128
    dropout: float = 0.1
    max_len: int = 512
    pad_index: int = 0
    pooling: str = "mean"
    positional: str = "sinusoidal"

    def __post_init__(self) -> None:
        if self.vocab_size < 2:
            raise ValueError(f"vocab_size must be at least 2, got {self.vocab_size}")
        if self.d_model % self.num_heads != 0:
            raise ValueError(f"d_model={self.d_model} must be divisible by num_heads={self.num_heads}")
        if self.pooling not in ("mean", "cls"):
            raise ValueError(f"pooling={self.pooling!r}; use 'mean' or 'cls'")
        if self.positional not in ("sinusoidal", "none"):
            raise ValueError(f"positional={self.positional!r}; use 'sinusoidal' or 'none'")

    @classmethod
    def tiny(cls, vocab_size: int = 50, **overrides) -> "TransformerClassifierConfig":
        """A very small model for tests and smoke runs (d_model=16, 2 heads, 1 layer)."""
        fields = dict(vocab_size=vocab_size, d_model=16, num_heads=2, num_layers=1, d_ff=32, max_len=128)
        fields.update(overrides)
        return cls(**fields)


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
        self.embedding = nn.Embedding(c.vocab_size, c.d_model, padding_idx=c.pad_index)
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
            self.embedding.weight[self.config.pad_index].zero_()
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
        if tokens.dim() != 2 or tokens.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"tokens must be (B, T) integer ids, got shape {tuple(tokens.shape)} {tokens.dtype}")
        if lengths.shape != (tokens.size(0),):
            raise ValueError(f"lengths must be ({tokens.size(0)},) to match tokens, got {tuple(lengths.shape)}")
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
            w = keep.unsqueeze(-1).to(x.dtype)  # (B, T, 1)
            pooled = (x * w).sum(dim=1) / w.sum(dim=1)  # (B, d_model)
        return pooled, maps

    def num_parameters(self) -> int:
        """The number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
