"""Checks for the exercises of chapter 3.3 (Transformer).

* :func:`check_multihead_attention`: the "find the bug" exercise on the source article's head split
  (``view(B, H, T, d_k)``, which mixes positions and heads), checked against
  ``nn.MultiheadAttention`` with the student's weights, and for two properties real attention has:
  permuting the words permutes the outputs, and masked padding changes nothing.
* :func:`check_attention`: scaled dot-product attention with a mask, checked against
  ``F.scaled_dot_product_attention``.
* :func:`check_positional_encoding`: the sinusoidal encoding, checked against the formula
  computed here in NumPy.

Example:
    >>> import math
    >>> from dlbook.exercises import report
    >>> def attend(q, k, v, mask=None):
    ...     scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    ...     if mask is not None:
    ...         scores = scores.masked_fill(~mask, float("-inf"))
    ...     return scores.softmax(-1) @ v
    >>> report(check_attention(attend))
    3.3 exercise 2 (masked attention): correct
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dlbook.exercises import Check, Problem, attempt, run_check

D_MODEL, HEADS = 16, 4
SPLIT_FIX = ("split the features, not the memory: x.view(B, T, H, d_k).transpose(1, 2) gives (B, H, T, d_k), "
             "and merge back with out.transpose(1, 2).reshape(B, T, d_model)")


def _first(out):
    return out[0] if isinstance(out, tuple) else out


def check_multihead_attention(cls: Callable[[int, int], nn.Module]) -> Check:
    """Check a multi-head attention class ``cls(d_model, num_heads)`` with projections ``W_q, W_k, W_v, W_o``.

    ``forward(query, key, value, mask=None)`` returns the output ``(B, T, d_model)`` (or a tuple
    whose first element it is); ``mask`` is boolean, True where a query may attend, broadcastable
    to ``(B, H, T_q, T_k)``.

    Example:
        >>> from dlbook.models.transformer import MultiHeadAttention, merge_heads, split_heads
        >>> class Fixed(nn.Module):
        ...     def __init__(self, d_model, num_heads):
        ...         super().__init__()
        ...         self.h = num_heads
        ...         self.W_q, self.W_k, self.W_v, self.W_o = (nn.Linear(d_model, d_model) for _ in range(4))
        ...     def forward(self, query, key, value, mask=None):
        ...         q, k, v = (split_heads(W(t), self.h) for W, t in ((self.W_q, query), (self.W_k, key), (self.W_v, value)))
        ...         out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        ...         return self.W_o(merge_heads(out))
        >>> check_multihead_attention(Fixed).passed
        True
    """

    def body(problems: list[Problem]) -> None:
        layer = attempt(cls, D_MODEL, HEADS, what=f"{getattr(cls, '__name__', 'the class')}({D_MODEL}, {HEADS})")
        projections = [getattr(layer, n, None) for n in ("W_q", "W_k", "W_v", "W_o")]
        if not all(isinstance(p, nn.Linear) and (p.in_features, p.out_features) == (D_MODEL, D_MODEL)
                   for p in projections):
            problems.append(Problem("the layer lacks W_q, W_k, W_v, W_o = nn.Linear(d_model, d_model)",
                                    "keep the article's four projections: the check copies weights into them"))
            return
        torch.manual_seed(0)
        reference = nn.MultiheadAttention(D_MODEL, HEADS, batch_first=True).eval()
        layer.eval()
        with torch.no_grad():
            for proj, w, b in zip(projections[:3], reference.in_proj_weight.chunk(3), reference.in_proj_bias.chunk(3)):
                proj.weight.copy_(w)
                proj.bias.copy_(b)
            projections[3].weight.copy_(reference.out_proj.weight)
            projections[3].bias.copy_(reference.out_proj.bias)
            x = torch.randn(2, 6, D_MODEL)  # (B, T, d_model)

            def call(inp, mask=None, note=""):
                out = _first(attempt(layer, inp, inp, inp, mask, what=f"the layer on {tuple(inp.shape)}{note}"))
                if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(inp.shape):
                    raise_shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                    problems.append(Problem(f"for input {tuple(inp.shape)} the output is {raise_shape}, "
                                            f"expected {tuple(inp.shape)}"))
                    return None
                return out

            y = call(x)
            if y is None:
                return
            expected = reference(x, x, x, need_weights=False)[0]
            perm = torch.tensor([5, 2, 0, 4, 1, 3])
            y_perm = call(x[:, perm], note=" (positions permuted)")
            lengths = torch.tensor([6, 4])
            padded = torch.cat([x, torch.zeros(2, 3, D_MODEL)], dim=1)  # (B, T + 3, d_model)
            keep = torch.arange(9)[None, :] < lengths[:, None]  # (B, T + 3): True at real tokens
            y_pad = call(padded, keep[:, None, None, :], note=" with a padding mask")
            if y_perm is None or y_pad is None:
                return
            short = _first(reference(x[1:, :4], x[1:, :4], x[1:, :4], need_weights=False))
        if torch.allclose(y, expected, atol=1e-5) and torch.allclose(y_pad[1, :4], short[0], atol=1e-5):
            return
        mixed = not torch.allclose(y_perm, y[:, perm], atol=1e-5)
        problems.append(Problem(
            f"with the same weights the output differs from nn.MultiheadAttention's by up to "
            f"{(y - expected).abs().max():.3g}", SPLIT_FIX))
        if mixed:
            problems.append(Problem(
                "the heads mix positions: permuting the words does not permute the outputs, so a word's output "
                "depends on where it sits in memory, not on the words alone"))
        if not torch.allclose(y_pad[0, :6], y[0], atol=1e-5):
            problems.append(Problem(
                "padding a sentence (with its padding masked) changes its outputs: its prediction would depend on "
                "the longest sentence in its batch"))

    return run_check("3.3 exercise 1 (the article's head split)", body)


def check_attention(fn: Callable) -> Check:
    """Check ``fn(q, k, v, mask=None)``: softmax(q kᵀ / √d_k) v, mask True where a query may attend.

    Checked against ``F.scaled_dot_product_attention`` without a mask, with a causal mask and with a
    padding mask, on 4-D ``(B, H, T, d)`` inputs with ``T_q != T_k`` and ``d_v != d_k``.
    """

    def body(problems: list[Problem]) -> None:
        g = torch.Generator().manual_seed(0)
        q, k, v = (torch.randn(2, 3, 5, 8, generator=g), torch.randn(2, 3, 7, 8, generator=g),
                   torch.randn(2, 3, 7, 4, generator=g))
        masks = {"no mask": None, "a causal mask (5, 7)": torch.ones(5, 7, dtype=torch.bool).tril(),
                 "a padding mask (2, 1, 1, 7)": (torch.arange(7)[None, :] < torch.tensor([7, 4])[:, None])[:, None, None, :]}
        for name, mask in masks.items():
            got = _first(attempt(fn, q, k, v, mask, what=f"attention(q {tuple(q.shape)}, k {tuple(k.shape)}, "
                                                         f"v {tuple(v.shape)}) with {name}"))
            expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            if not isinstance(got, torch.Tensor) or got.shape != expected.shape:
                shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
                problems.append(Problem(f"with {name} it returns {shape}, expected {tuple(expected.shape)}",
                                        "(..., T_q, d_k) @ (..., d_k, T_k) gives the scores; weights @ v the output"))
                return
            if torch.allclose(got, expected, atol=1e-5):
                continue
            if torch.allclose(got, F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=1.0), atol=1e-5):
                problems.append(Problem("the scores are not divided by sqrt(d_k)",
                                        "scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5"))
            elif mask is not None and torch.allclose(got, F.scaled_dot_product_attention(q, k, v), atol=1e-5):
                problems.append(Problem(f"with {name} the output is that of no mask: the mask is ignored",
                                        "scores.masked_fill(~mask, float('-inf')) before the softmax"))
            elif mask is not None and torch.allclose(
                    got, F.scaled_dot_product_attention(q, k, v, attn_mask=~mask).nan_to_num(), atol=1e-5):
                problems.append(Problem("the mask is used the wrong way round: True means the query MAY attend",
                                        "fill the scores where ~mask, not where mask"))
            else:
                scores = q @ k.transpose(-2, -1) / 8 ** 0.5
                if mask is None and torch.allclose(got, scores.softmax(-2) @ v, atol=1e-5):
                    problems.append(Problem("the softmax runs over the queries (dim=-2)",
                                            "softmax over the keys, dim=-1, so each query's weights sum to 1"))
                else:
                    problems.append(Problem(f"with {name} it differs from F.scaled_dot_product_attention by up to "
                                            f"{(got - expected).abs().max():.3g}",
                                            "softmax(q @ k.transpose(-2, -1) / sqrt(d_k), dim=-1) @ v"))
            return

    return run_check("3.3 exercise 2 (masked attention)", body)


def positional_encoding_reference(max_len: int, d_model: int) -> np.ndarray:
    """PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(p / 10000^(2i/d)), in float64 NumPy."""
    p = np.arange(max_len, dtype=np.float64)[:, None]
    two_i = np.arange(0, d_model, 2, dtype=np.float64)[None, :]
    angle = p / 10000.0 ** (two_i / d_model)  # (max_len, ceil(d/2))
    pe = np.zeros((max_len, d_model))
    pe[:, 0::2] = np.sin(angle)
    pe[:, 1::2] = np.cos(angle[:, : d_model // 2])
    return pe


def check_positional_encoding(fn: Callable[[int, int], torch.Tensor]) -> Check:
    """Check ``fn(max_len, d_model)`` against the sinusoidal formula of Vaswani et al.

    Example:
        >>> from dlbook.models.transformer import sinusoidal_positional_encoding
        >>> check_positional_encoding(sinusoidal_positional_encoding).passed
        True
    """

    def body(problems: list[Problem]) -> None:
        for max_len, d_model in ((50, 16), (7, 6)):
            got = attempt(fn, max_len, d_model, what=f"positional_encoding({max_len}, {d_model})")
            got = torch.as_tensor(got).detach().double() if not isinstance(got, torch.Tensor) else got.detach().double()
            ref = positional_encoding_reference(max_len, d_model)
            if tuple(got.shape) != ref.shape:
                problems.append(Problem(f"positional_encoding({max_len}, {d_model}) has shape {tuple(got.shape)}, "
                                        f"expected {ref.shape}: one row per position"))
                return
            got = got.numpy()
            if np.allclose(got, ref, atol=1e-5):
                continue
            angle = np.arange(max_len)[:, None] / 10000.0 ** (np.arange(0, d_model, 2)[None, :] / d_model)
            if (np.allclose(got[:, 0::2], np.cos(angle), atol=1e-5)
                    and np.allclose(got[:, 1::2], np.sin(angle[:, : d_model // 2]), atol=1e-5)):
                problems.append(Problem("sin and cos are swapped", "even dimensions 2i get sin, odd ones 2i+1 get cos"))
            elif np.allclose(got, np.concatenate([ref[:, 0::2], ref[:, 1::2]], axis=1), atol=1e-5):
                problems.append(Problem("the sines fill the first half and the cosines the second",
                                        "interleave them: pe[:, 0::2] = sin(...), pe[:, 1::2] = cos(...)"))
            else:
                problems.append(Problem(f"positional_encoding({max_len}, {d_model}) differs from the formula by up "
                                        f"to {np.abs(got - ref).max():.3g}",
                                        "angle = p / 10000 ** (2i / d_model) for i = 0 .. d_model/2 - 1"))
            return

    return run_check("3.3 exercise 3 (positional encoding)", body)
