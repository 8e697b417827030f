"""The Transformer encoder, written out: attention, heads, positions, a mask, a block.

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
* :func:`causal_mask` (True = "may attend"); the padding mask is
  :func:`dlbook.data.text.padding_mask`, next to ``pad_batch``;
* :class:`EncoderBlock` -- pre-norm self-attention + feed-forward, residuals.

The classifier built from these blocks is
:class:`dlbook.models.transformer_classifier.TransformerClassifier`. Our modules load
PyTorch's weights with ``load_from_torch(theirs)`` (the tests compare them with
``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer``).

Mask convention (the same as ``F.scaled_dot_product_attention``): a boolean mask
is True where a query may attend to a key. ``nn.MultiheadAttention``'s
``key_padding_mask`` uses the opposite (True = ignore); pass ``~padding_mask(...)``
to it.

Example:
    >>> block = EncoderBlock(d_model=16, num_heads=4, d_ff=32)
    >>> y, weights = block(torch.randn(2, 7, 16), causal_mask(7))
    >>> y.shape, weights.shape
    (torch.Size([2, 7, 16]), torch.Size([2, 4, 7, 7]))
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = [
    "scaled_dot_product_attention",
    "split_heads",
    "merge_heads",
    "causal_mask",
    "sinusoidal_positional_encoding",
    "PositionalEncoding",
    "MultiHeadAttention",
    "EncoderBlock",
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


# --------------------------------------------------------------------------- mask


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
        >>> from dlbook.data.text import padding_mask
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
