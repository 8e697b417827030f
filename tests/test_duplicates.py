"""Near-duplicate search: hashes against hand-computed bits, chunked search against brute force, groups."""

import doctest

import pytest
import torch
import torch.nn.functional as F

import dlbook.data.duplicates as dup
from dlbook.data.duplicates import (average_hash, close_pairs, difference_hash, duplicate_groups, hamming_distances,
                                    nearest_by_embedding, nearest_by_hash)


def _images(n, seed=0, size=32):
    g = torch.Generator().manual_seed(seed)
    # smooth random images (upsampled noise), so a hash sees structure rather than pixel noise
    low = torch.rand(n, 3, 4, 4, generator=g)
    return (F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False) * 255).round().to(torch.uint8)


def test_docstring_examples():
    failures, _ = doctest.testmod(dup, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert failures == 0


def test_hashes_match_a_direct_computation_of_the_classic_rules():
    x = _images(5)
    gray = (x.float() * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1)   # (N, H, W)
    small = gray.view(5, 8, 4, 8, 4).mean(dim=(2, 4))                                 # 32 -> 8 by 4x4 blocks
    bits = (small > small.mean(dim=(1, 2), keepdim=True)).flatten(1)                  # (N, 64)
    expected = [int("".join("1" if b else "0" for b in row.tolist()), 2) for row in bits]
    got = [int.from_bytes(bytes(h.tolist()), "big") for h in average_hash(x)]
    assert got == expected
    d = difference_hash(x, hash_size=4)                       # 16 bits = 2 bytes per image
    assert d.shape == (5, 2) and d.dtype == torch.uint8
    assert average_hash(x, hash_size=5).shape == (5, 4)       # 25 bits padded to 4 bytes


def test_hashes_survive_brightness_and_small_noise_but_separate_different_images():
    x = _images(50)
    noisy = (x.int() + torch.randint(-3, 4, x.shape, generator=torch.Generator().manual_seed(1)) + 10)
    noisy = noisy.clamp(0, 255).to(torch.uint8)
    for fn in (average_hash, difference_hash):
        same = hamming_distances(fn(x), fn(noisy)).diagonal()
        other = hamming_distances(fn(x), fn(x))
        off = other[~torch.eye(50, dtype=torch.bool)]
        assert same.float().mean() < 3 and off.float().mean() > 15, fn.__name__
    assert difference_hash(x[:, :1]).shape == (50, 8)         # (N, 1, H, W) grayscale works


def test_nearest_by_hash_equals_brute_force_and_respects_chunks():
    g = torch.Generator().manual_seed(0)
    q = torch.randint(0, 256, (37, 8), dtype=torch.uint8, generator=g)
    x = torch.randint(0, 256, (101, 8), dtype=torch.uint8, generator=g)
    brute = hamming_distances(q, x)
    xor = (q[:, None, :] ^ x[None, :, :]).long()
    popcount = sum(((xor >> s) & 1) for s in range(8)).sum(-1)
    assert torch.equal(brute, popcount)
    for chunk in (1, 5, 1000):
        d, i = nearest_by_hash(q, x, chunk=chunk)
        assert torch.equal(d, brute.min(1).values)
        assert torch.equal(brute[torch.arange(37), i], d)
    d3, i3 = nearest_by_hash(q, x, k=3, chunk=7)
    assert d3.shape == (37, 3) and torch.equal(d3, brute.sort(1).values[:, :3])


def test_exclude_self_finds_the_planted_copy_not_the_item_itself():
    x = _images(40)
    x[25] = x[3]                                              # a duplicate inside one set
    h = difference_hash(x)
    d, i = nearest_by_hash(h, h, exclude_self=True, chunk=16)
    assert d[3] == 0 and i[3] == 25 and i[25] == 3
    assert not (i == torch.arange(40)).any()
    emb = x.flatten(1).float()
    s, j = nearest_by_embedding(emb, emb, exclude_self=True, chunk=7)
    assert j[3] == 25 and s[3] == pytest.approx(1.0) and not (j == torch.arange(40)).any()


def test_nearest_by_embedding_equals_brute_force_cosine():
    g = torch.Generator().manual_seed(0)
    q, x = torch.randn(23, 16, generator=g), torch.randn(60, 16, generator=g)
    cos = F.cosine_similarity(q[:, None], x[None], dim=-1)
    s, i = nearest_by_embedding(q, x, chunk=4)
    assert torch.allclose(s, cos.max(1).values, atol=1e-5) and torch.equal(i, cos.argmax(1))
    s2, _ = nearest_by_embedding(q.double() * 7, x, k=2)
    assert s2.shape == (23, 2) and torch.allclose(s2[:, 0], s, atol=1e-5)


def test_cifar_scale_search_is_memory_bounded():
    # 10,000 x 50,000 in the book; here a fifth of each side, with a chunk that keeps 256 x 10,000 floats
    g = torch.Generator().manual_seed(0)
    q = torch.randint(0, 256, (2000, 8), dtype=torch.uint8, generator=g)
    x = torch.randint(0, 256, (10000, 8), dtype=torch.uint8, generator=g)
    x[1234] = q[7]
    d, i = nearest_by_hash(q, x, chunk=256)
    assert d.shape == (2000,) and d[7] == 0 and i[7] == 1234


def test_close_pairs_and_groups():
    x = _images(30)
    x[10], x[20], x[29] = x[2], x[2], x[5]
    h = average_hash(x)
    d, i = nearest_by_hash(h, h, k=2, exclude_self=True)
    pairs = close_pairs(d, i, max_distance=0)
    groups = duplicate_groups(pairs, 30)
    assert groups[2] == groups[10] == groups[20] and groups[5] == groups[29] and groups[2] != groups[5]
    assert len(groups.unique()) == 30 - 3
    first_seen = [g for k, g in enumerate(groups.tolist()) if g not in groups.tolist()[:k]]
    assert first_seen == list(range(27))                      # ids 0, 1, 2, ... in order of first item
    assert duplicate_groups(torch.empty(0, 2, dtype=torch.long), 3).tolist() == [0, 1, 2]
    assert duplicate_groups([[4, 1]], 5).tolist() == [0, 1, 2, 3, 1]


def test_bad_inputs_raise_clearly():
    x = _images(2)
    with pytest.raises(ValueError, match="uint8"):
        average_hash(x.float())
    with pytest.raises(ValueError, match=r"unsqueeze\(0\).*unsqueeze\(1\)"):
        average_hash(x[0])                                    # one (C, H, W) image is not 3 grayscale ones
    with pytest.raises(ValueError, match="2 channels"):
        average_hash(x[:, :2])
    with pytest.raises(ValueError, match="hash_size"):
        difference_hash(x, hash_size=1)
    with pytest.raises(ValueError, match="channels-last"):
        average_hash(x.permute(0, 2, 3, 1))
    with pytest.raises(ValueError, match="empty"):
        average_hash(x[:0])
    with pytest.raises(ValueError, match="smaller hash_size"):
        difference_hash(x, hash_size=32)
    with pytest.raises(ValueError, match="different lengths"):
        nearest_by_hash(average_hash(x), average_hash(x, hash_size=4))
    with pytest.raises(ValueError, match="uint8"):
        nearest_by_hash(torch.zeros(2, 8), average_hash(x))
    with pytest.raises(ValueError, match="empty"):
        nearest_by_hash(average_hash(x)[:0], average_hash(x))
    with pytest.raises(ValueError, match="same tensor"):
        nearest_by_hash(average_hash(x)[:1], average_hash(x), exclude_self=True)
    with pytest.raises(ValueError, match="k="):
        nearest_by_hash(average_hash(x), average_hash(x), k=2, exclude_self=True)
    with pytest.raises(ValueError, match="chunk"):
        nearest_by_embedding(torch.randn(2, 3), torch.randn(2, 3), chunk=0)
    with pytest.raises(ValueError, match="zero or not finite"):
        nearest_by_embedding(torch.zeros(2, 3), torch.randn(2, 3))
    with pytest.raises(ValueError, match="float features"):
        nearest_by_embedding(torch.ones(2, 3, dtype=torch.long), torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        close_pairs(torch.ones(2), torch.zeros(2, dtype=torch.long), min_similarity=1.5)
    with pytest.raises(ValueError, match="max_distance"):
        close_pairs(torch.ones(2), torch.zeros(2, dtype=torch.long), max_distance=-1)
    with pytest.raises(ValueError, match="exactly one"):
        close_pairs(torch.ones(2), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="outside"):
        duplicate_groups([[0, 5]], 5)
    with pytest.raises(ValueError, match=r"\(E, 2\)"):
        duplicate_groups([0, 1, 2], 5)
