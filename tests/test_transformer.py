"""Tests of dlbook.models.transformer: equivalence with PyTorch's own attention, masks, behaviour."""

from __future__ import annotations

import doctest

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dlbook.models.transformer as tr
from dlbook.data.text import padding_mask
from dlbook.models.transformer import (
    EncoderBlock,
    MultiHeadAttention,
    PositionalEncoding,
    causal_mask,
    merge_heads,
    scaled_dot_product_attention,
    sinusoidal_positional_encoding,
    split_heads,
)

ATOL = 1e-5


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# --------------------------------------------------------------------------- attention


def test_attention_equals_torch_without_mask():
    q, k, v = torch.randn(2, 3, 5, 8), torch.randn(2, 3, 7, 8), torch.randn(2, 3, 7, 4)
    out, w = scaled_dot_product_attention(q, k, v)
    assert torch.allclose(out, F.scaled_dot_product_attention(q, k, v), atol=ATOL)
    assert w.shape == (2, 3, 5, 7)
    assert torch.allclose(w.sum(-1), torch.ones(2, 3, 5), atol=ATOL)


def test_attention_equals_torch_with_padding_mask():
    q, k, v = torch.randn(3, 2, 6, 8), torch.randn(3, 2, 6, 8), torch.randn(3, 2, 6, 8)
    mask = padding_mask(torch.tensor([6, 4, 1]))[:, None, None, :]  # (B, 1, 1, T)
    out, _ = scaled_dot_product_attention(q, k, v, mask)
    assert torch.allclose(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), atol=ATOL)


def test_attention_equals_torch_with_causal_mask():
    q, k, v = torch.randn(2, 4, 9, 8), torch.randn(2, 4, 9, 8), torch.randn(2, 4, 9, 8)
    out, _ = scaled_dot_product_attention(q, k, v, causal_mask(9))
    assert torch.allclose(out, F.scaled_dot_product_attention(q, k, v, is_causal=True), atol=ATOL)


def test_masked_positions_receive_zero_attention():
    q = k = v = torch.randn(3, 6, 8)
    lengths = torch.tensor([6, 2, 4])
    keep = padding_mask(lengths)  # (B, T)
    mask = keep[:, None, :] & causal_mask(6)  # (B, T, T)
    _, w = scaled_dot_product_attention(q, k, v, mask)
    assert torch.all(w[~mask] == 0)
    assert torch.allclose(w.sum(-1), torch.ones(3, 6), atol=ATOL)  # each query sees >= 1 key


def test_fully_masked_query_gives_zeros_not_nan():
    q = k = v = torch.randn(1, 3, 4)
    mask = torch.tensor([[True, True, False], [False, False, False], [True, False, True]])
    out, w = scaled_dot_product_attention(q, k, v, mask)
    assert torch.isfinite(out).all() and torch.isfinite(w).all()
    assert torch.all(w[0, 1] == 0) and torch.all(out[0, 1] == 0)


def test_attention_rejects_bad_input():
    with pytest.raises(ValueError, match="d_k"):
        scaled_dot_product_attention(torch.randn(2, 3, 4), torch.randn(2, 3, 5), torch.randn(2, 3, 5))
    with pytest.raises(TypeError, match="boolean"):
        scaled_dot_product_attention(*(torch.randn(2, 3, 4),) * 3, mask=torch.ones(3, 3))


# --------------------------------------------------------------------------- heads


def test_split_heads_keeps_positions_apart_and_the_article_view_does_not():
    B, T, H, d_k = 1, 3, 2, 2
    x = torch.arange(B * T * H * d_k, dtype=torch.float32).view(B, T, H * d_k)  # row t = features of position t
    heads = split_heads(x, H)  # (B, H, T, d_k)
    for h in range(H):
        assert torch.equal(heads[0, h], x[0, :, h * d_k:(h + 1) * d_k])  # head h = slice h of every position
    wrong = x.view(B, H, T, d_k)  # the article's split
    assert not torch.equal(wrong, heads)
    assert torch.equal(wrong[0, 0, 1], x[0, 0, 2:4])  # "position 1" of head 0 is really position 0's features
    assert torch.equal(merge_heads(heads), x)


def test_split_heads_rejects_indivisible_width():
    with pytest.raises(ValueError, match="divisible"):
        split_heads(torch.randn(2, 3, 10), 4)


def _pair(d_model=16, num_heads=4, bias=True):
    ref = nn.MultiheadAttention(d_model, num_heads, bias=bias, batch_first=True).eval()
    ours = MultiHeadAttention(d_model, num_heads, bias=bias).load_from_torch(ref).eval()
    return ours, ref


@pytest.mark.parametrize("bias", [True, False])
def test_multihead_equals_torch(bias):
    ours, ref = _pair(bias=bias)
    x = torch.randn(3, 7, 16)
    out, w = ours(x)
    ref_out, ref_w = ref(x, x, x, need_weights=True, average_attn_weights=False)
    assert torch.allclose(out, ref_out, atol=ATOL)
    assert torch.allclose(w, ref_w, atol=ATOL)


def test_multihead_equals_torch_with_key_padding_mask():
    ours, ref = _pair()
    x = torch.randn(3, 7, 16)
    keep = padding_mask(torch.tensor([7, 5, 2]))  # (B, T) True = real token
    out, w = ours(x, mask=keep[:, None, None, :])
    ref_out, ref_w = ref(x, x, x, key_padding_mask=~keep, need_weights=True, average_attn_weights=False)
    assert torch.allclose(out, ref_out, atol=ATOL)
    assert torch.allclose(w, ref_w, atol=ATOL)
    assert torch.all(w.masked_select(~keep[:, None, None, :].expand_as(w)) == 0)


def test_multihead_cross_attention_equals_torch():
    ours, ref = _pair()
    q, kv = torch.randn(2, 4, 16), torch.randn(2, 9, 16)
    out, _ = ours(q, kv, kv)
    assert torch.allclose(out, ref(q, kv, kv, need_weights=False)[0], atol=ATOL)


def test_multihead_gradients_match_torch():
    ours, ref = _pair()
    x = torch.randn(2, 5, 16)
    ours(x)[0].square().sum().backward()
    ref(x, x, x, need_weights=False)[0].square().sum().backward()
    ref_q_grad = ref.in_proj_weight.grad.chunk(3)[0]
    assert torch.allclose(ours.q_proj.weight.grad, ref_q_grad, atol=1e-4)
    assert torch.allclose(ours.out_proj.weight.grad, ref.out_proj.weight.grad, atol=1e-4)


def test_multihead_rejects_bad_shapes():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match=r"\(B, T, 16\)"):
        MultiHeadAttention(16, 4)(torch.randn(5, 16))


# --------------------------------------------------------------------------- positions and masks


def test_sinusoidal_encoding_matches_formula():
    pe = sinusoidal_positional_encoding(30, 10)
    p, i = 7, 3
    assert pe.shape == (30, 10)
    assert abs(pe[p, 2 * i].item() - torch.sin(torch.tensor(p / 10000 ** (2 * i / 10))).item()) < 1e-6
    assert abs(pe[p, 2 * i + 1].item() - torch.cos(torch.tensor(p / 10000 ** (2 * i / 10))).item()) < 1e-6
    assert sinusoidal_positional_encoding(5, 7).shape == (5, 7)  # odd widths work


def test_positional_encoding_rejects_long_input():
    with pytest.raises(ValueError, match="max_len"):
        PositionalEncoding(8, max_len=4)(torch.zeros(1, 5, 8))


def test_masks():
    assert torch.equal(padding_mask(torch.tensor([2, 3])), torch.tensor([[True, True, False], [True, True, True]]))
    assert torch.equal(causal_mask(4), torch.tril(torch.ones(4, 4)).bool())
    with pytest.raises(ValueError, match="at least 1"):
        padding_mask(torch.tensor([3, 0]))
    with pytest.raises(ValueError, match="exceeds"):
        padding_mask(torch.tensor([3, 5]), max_len=4)


# --------------------------------------------------------------------------- encoder block


def test_encoder_block_equals_torch_layer():
    ref = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, activation="relu", batch_first=True, norm_first=True)
    ours = EncoderBlock(16, 4, 32, dropout=0.0).load_from_torch(ref)
    x = torch.randn(3, 6, 16)
    keep = padding_mask(torch.tensor([6, 3, 1]))
    ref.train()  # training mode (dropout 0) avoids the fused fast path, which zeroes padded outputs
    expected = ref(x, src_key_padding_mask=~keep)
    got, _ = ours(x, keep[:, None, None, :])
    assert torch.allclose(got, expected, atol=ATOL)


def test_encoder_block_is_permutation_equivariant():
    block = EncoderBlock(16, 4, 32, dropout=0.1).eval()
    x = torch.randn(2, 8, 16)
    perm = torch.randperm(8)
    y, _ = block(x)
    y_perm, _ = block(x[:, perm])
    assert torch.allclose(y_perm, y[:, perm], atol=ATOL)


def test_causal_mask_blocks_the_future():
    block = EncoderBlock(16, 4, 32, dropout=0.0).eval()
    T, t = 10, 4
    x = torch.randn(1, T, 16)
    x2 = x.clone()
    x2[:, t + 1:] = torch.randn(1, T - t - 1, 16)  # change only the future of t
    y, _ = block(x, causal_mask(T))
    y2, _ = block(x2, causal_mask(T))
    assert torch.allclose(y[:, : t + 1], y2[:, : t + 1], atol=ATOL)
    assert not torch.allclose(y[:, t + 1:], y2[:, t + 1:], atol=ATOL)
    # the same through gradients: d y_t / d x_s = 0 for every s > t
    x = x.clone().requires_grad_(True)
    block(x, causal_mask(T))[0][0, t].sum().backward()
    assert torch.all(x.grad[0, t + 1:] == 0) and x.grad[0, : t + 1].abs().sum() > 0


def test_docstring_examples():
    failures, attempted = doctest.testmod(tr, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert failures == 0 and attempted > 10
