"""Near-duplicates and train/test leakage: perceptual hashes, chunked nearest neighbours, duplicate groups.

Barz & Denzler (2020, "Do We Train on Test Data? Purging CIFAR of Near-Duplicates", J. Imaging 6(6):41,
the ciFAIR paper) found that 3.3% of the CIFAR-10 test images have a near-duplicate in the training set.
This module finds such pairs two ways: by a perceptual hash (cheap, catches re-encoded or slightly
shifted copies) and by the cosine similarity of a trained network's features (catches more, needs a model).

Hashes are the classic ones of Neal Krawetz's Hacker Factor blog, as implemented by the ``imagehash``
package: the *average hash* ("Looks Like It", 2011) and the *difference hash* ("Kind of Like That",
2013). A hash is a row of bits packed big-endian into bytes (the bit order of ``imagehash``'s hex
string), one ``uint8`` row per image. The nearest-neighbour searches turn bits into +-1 and do one
matrix multiply per chunk of queries: for ``B`` bits, ``hamming = (B - s @ t) / 2``, exact in float32.

Example:
    >>> g = torch.Generator().manual_seed(0)
    >>> train = torch.randint(0, 256, (100, 3, 32, 32), dtype=torch.uint8, generator=g)
    >>> new = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8, generator=g)
    >>> test = torch.cat([train[:2], new])                    # two copies of training images, three new ones
    >>> dist, idx = nearest_by_hash(difference_hash(test), difference_hash(train))
    >>> dist[:2].tolist(), idx[:2].tolist(), bool((dist[2:] > 10).all())
    ([0, 0], [0, 1], True)
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# ITU-R 601-2 luma, the weights of PIL's convert("L") that imagehash applies first
_LUMA = (0.299, 0.587, 0.114)
_BYTE_WEIGHTS = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.int64)


def _check_images(images, name: str = "images") -> torch.Tensor:
    """``images`` as a non-empty uint8 batch ``(N, C, H, W)`` with C = 1 or 3, or a ValueError saying what to do.

    One rule for every image batch in this module, in the order shape, channels, size, dtype: the same
    batch-first ``(N, C, H, W)`` rule as the Captum helpers of :mod:`dlbook.interpret.image` (which
    want float model inputs where these hashes want uint8 pixels). A 3-D tensor is refused rather
    than guessed at: ``(N, H, W)`` grayscale and one ``(C, H, W)`` image look the same.
    """
    x = torch.as_tensor(images)
    if x.dim() != 4:
        raise ValueError(f"{name} has shape {tuple(x.shape)}; pass a batch (N, C, H, W): for one image use "
                         f"{name}.unsqueeze(0), for grayscale (N, H, W) use {name}.unsqueeze(1)")
    if x.shape[1] not in (1, 3):
        raise ValueError(f"{name} has shape {tuple(x.shape)}: {x.shape[1]} channels; pass (N, C, H, W) with C = 1 "
                         f"or 3 (for channels-last images (N, H, W, C) use {name}.permute(0, 3, 1, 2))")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty: pass at least one image")
    if x.dtype != torch.uint8:
        raise ValueError(f"{name} has dtype {x.dtype}; pass uint8 pixels in [0, 255] "
                         "(e.g. (x * 255).round().to(torch.uint8) for floats in [0, 1])")
    return x


def _grayscale(images, hash_size: int, width: int) -> torch.Tensor:
    """uint8 ``(N, C, H, W)`` -> float ``(N, hash_size, width)`` by luminance and area resize."""
    x = _check_images(images)
    if not isinstance(hash_size, int) or hash_size < 2:
        raise ValueError(f"hash_size={hash_size!r}; it must be an int >= 2 (8 gives the classic 64-bit hash)")
    if x.shape[2] < hash_size or x.shape[3] < width:
        raise ValueError(f"images of {x.shape[2]}x{x.shape[3]} pixels are smaller than the {hash_size}x{width} "
                         "grid the hash needs: use a smaller hash_size")
    x = x.float()
    if x.shape[1] == 3:
        luma = torch.tensor(_LUMA, device=x.device).view(1, 3, 1, 1)
        x = (x * luma).sum(1, keepdim=True)                       # (N, 1, H, W)
    return F.interpolate(x, size=(hash_size, width), mode="area")[:, 0]   # (N, hash_size, width)


def _pack(bits: torch.Tensor) -> torch.Tensor:
    """bool ``(N, ...)`` -> uint8 ``(N, ceil(bits / 8))``, big-endian within each byte, zero-padded at the end."""
    flat = bits.reshape(bits.shape[0], -1).long()                 # (N, B)
    flat = F.pad(flat, (0, -flat.shape[1] % 8))                   # (N, 8 * n_bytes)
    weights = _BYTE_WEIGHTS.to(flat.device)
    return (flat.view(flat.shape[0], -1, 8) * weights).sum(-1).to(torch.uint8)   # (N, n_bytes)


def _rows(t, name: str, dtype_ok, expected: str) -> torch.Tensor:
    """``t`` as a non-empty 2-D tensor whose dtype passes ``dtype_ok``, or a ValueError saying ``expected``."""
    t = torch.as_tensor(t)
    if t.dim() != 2 or not dtype_ok(t):
        raise ValueError(f"{name} has shape {tuple(t.shape)} and dtype {t.dtype}; {expected}")
    if t.shape[0] == 0:
        raise ValueError(f"{name} is empty: pass at least one row")
    return t


def _signs(hashes, name: str) -> torch.Tensor:
    """uint8 packed hashes ``(N, n_bytes)`` -> float32 ``(N, 8 * n_bytes)`` of +-1."""
    h = _rows(hashes, name, lambda t: t.dtype == torch.uint8,
              "pass the uint8 (N, n_bytes) rows that average_hash or difference_hash return")
    shifts = torch.arange(7, -1, -1, device=h.device)
    bits = (h.long().unsqueeze(-1) >> shifts) & 1                 # (N, n_bytes, 8)
    return bits.reshape(h.shape[0], -1).float() * 2 - 1           # (N, B)


def average_hash(images, hash_size: int = 8) -> torch.Tensor:
    """aHash: shrink to ``hash_size x hash_size`` gray pixels; a bit is 1 where a pixel is brighter than their mean.

    Grayscale by ITU-R 601-2 luminance, shrink by area averaging (``imagehash`` uses PIL's Lanczos
    filter, so bits can differ from it on a few pixels).

    Args:
        images: uint8 ``(N, C, H, W)`` with C = 1 or 3 (grayscale ``(N, H, W)``: ``images.unsqueeze(1)``).
        hash_size: side of the grid; the hash has ``hash_size ** 2`` bits.

    Returns:
        uint8 ``(N, ceil(hash_size ** 2 / 8))``: the packed bits, 8 bytes per image for the default.

    Example:
        >>> img = torch.zeros(1, 1, 16, 16, dtype=torch.uint8); img[..., 8:] = 255   # dark left, bright right
        >>> [f"{b:08b}" for b in average_hash(img)[0].tolist()][:2]
        ['00001111', '00001111']
    """
    gray = _grayscale(images, hash_size, hash_size)               # (N, s, s)
    return _pack(gray > gray.mean(dim=(1, 2), keepdim=True))


def difference_hash(images, hash_size: int = 8) -> torch.Tensor:
    """dHash: shrink to ``hash_size`` rows of ``hash_size + 1`` gray pixels; a bit is 1 where a pixel outshines its left one.

    It encodes gradients rather than brightness, so it survives a global change of exposure. It takes
    the same ``images`` and ``hash_size`` as :func:`average_hash` and returns packed bits of the same size.

    Example:
        >>> ramp = torch.arange(0, 180, 10, dtype=torch.uint8).repeat(18, 1)[None, None]   # brighter to the right
        >>> difference_hash(ramp).tolist() == [[255] * 8], difference_hash(ramp.flip(-1)).tolist() == [[0] * 8]
        (True, True)
    """
    gray = _grayscale(images, hash_size, hash_size + 1)           # (N, s, s + 1)
    return _pack(gray[:, :, 1:] > gray[:, :, :-1])


def hamming_distances(a, b) -> torch.Tensor:
    """All pairwise Hamming distances between two sets of packed hashes, int64 ``(len(a), len(b))``.

    For small sets; for large ones use :func:`nearest_by_hash`, which never holds the full matrix.

    Example:
        >>> hamming_distances(torch.tensor([[0b1111_0000]], dtype=torch.uint8),
        ...                   torch.tensor([[0b1111_0000], [0b0000_0001]], dtype=torch.uint8)).tolist()
        [[0, 5]]
    """
    s, t = _signs(a, "a"), _signs(b, "b")
    _check_same_width(s, t)
    return ((s.shape[1] - s @ t.T) / 2).round().long()


def _check_same_width(q: torch.Tensor, x: torch.Tensor) -> None:
    if q.shape[1] != x.shape[1]:
        raise ValueError(f"the two sets have rows of different lengths ({q.shape[1]} and {x.shape[1]}): "
                         "hash both with the same function and hash_size, or embed both with the same model")
    if q.device != x.device:
        raise ValueError(f"the query is on {q.device} and the index on {x.device}: move both to one device")


def _chunked_top(q: torch.Tensor, x: torch.Tensor, k: int, chunk: int, exclude_self: bool):
    """Top-k of ``q @ x.T`` row by row, ``chunk`` query rows at a time: memory ``chunk * len(x)`` floats."""
    if not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk={chunk!r}; it must be a positive int (rows of queries per matrix multiply)")
    if exclude_self and len(q) != len(x):
        raise ValueError(f"exclude_self=True searches a set against itself, but the query has {len(q)} rows "
                         f"and the index {len(x)}: pass the same tensor twice")
    available = len(x) - int(exclude_self)
    if not isinstance(k, int) or not 1 <= k <= available:
        raise ValueError(f"k={k!r}; it must be an int in [1, {available}] for an index of {len(x)} items"
                         + (" minus the item itself" if exclude_self else ""))
    # One score buffer and preallocated outputs: small per-chunk results kept alive between large
    # allocations fragment the heap (a 10k x 50k search then held 2.7 GB instead of 0.3 GB).
    buffer = torch.empty(min(chunk, len(q)), len(x), dtype=q.dtype, device=q.device)
    values = torch.empty(len(q), k, dtype=q.dtype, device=q.device)
    indices = torch.empty(len(q), k, dtype=torch.int64, device=q.device)
    for start in range(0, len(q), chunk):
        rows = q[start:start + chunk]
        scores = torch.mm(rows, x.T, out=buffer[:len(rows)])     # (chunk, M)
        if exclude_self:
            r = torch.arange(len(rows), device=q.device)
            scores[r, r + start] = -float("inf")
        v, i = scores.topk(k, dim=1)                               # (chunk, k)
        values[start:start + chunk], indices[start:start + chunk] = v, i
    return (values[:, 0], indices[:, 0]) if k == 1 else (values, indices)


def nearest_by_hash(query_hashes, index_hashes, *, k: int = 1, chunk: int = 1024,
                    exclude_self: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """For each query hash, the ``k`` index hashes at the smallest Hamming distance.

    Memory is ``chunk * len(index)`` floats (200 MB for CIFAR-10's 50,000 training images at the
    default chunk); 10,000 test against 50,000 training hashes take about 3 s on two CPU cores.

    Args:
        query_hashes, index_hashes: packed hashes from the same hash function and ``hash_size``.
        k: neighbours per query.
        chunk: query rows per matrix multiply; lower it to save memory.
        exclude_self: the query and index are one set: skip each item's match with itself.

    Returns:
        ``(distances, indices)``, int64, shape ``(N,)`` for ``k=1``, else ``(N, k)`` nearest first.

    Example:
        >>> h = torch.tensor([[0b0000_0000], [0b0000_0011], [0b1111_1111]], dtype=torch.uint8)
        >>> d, i = nearest_by_hash(h, h, exclude_self=True)
        >>> d.tolist(), i.tolist()
        ([2, 2, 6], [1, 0, 1])
    """
    q, x = _signs(query_hashes, "query_hashes"), _signs(index_hashes, "index_hashes")
    _check_same_width(q, x)
    dots, indices = _chunked_top(q, x, k, chunk, exclude_self)
    return ((q.shape[1] - dots) / 2).round().long(), indices


def nearest_by_embedding(query, index, *, k: int = 1, chunk: int = 1024,
                         exclude_self: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """For each query row, the ``k`` index rows of highest cosine similarity.

    Both sets are L2-normalised, then multiplied ``chunk`` query rows at a time.

    Args:
        query: float ``(N, D)``, e.g. a trained network's penultimate features of the test set.
        index: float ``(M, D)``, e.g. the same features of the training set.
        k: neighbours per query.
        chunk: query rows per matrix multiply; memory is ``chunk * M`` floats.
        exclude_self: the query and index are one set: skip each item's match with itself.

    Returns:
        ``(similarities, indices)``: float32 in [-1, 1] and int64, ``(N,)`` for ``k=1``, else ``(N, k)``.

    Example:
        >>> sims, idx = nearest_by_embedding(torch.tensor([[1.0, 0.1]]), torch.tensor([[0.0, 1.0], [2.0, 0.0]]))
        >>> round(sims.item(), 3), idx.item()
        (0.995, 1)
    """
    q, x = _embeddings(query, "query"), _embeddings(index, "index")
    _check_same_width(q, x)
    sims, indices = _chunked_top(q, x, k, chunk, exclude_self)
    return sims.clamp(-1.0, 1.0), indices


def _embeddings(e, name: str) -> torch.Tensor:
    e = _rows(e, name, torch.Tensor.is_floating_point,
              "pass float features (N, D) (flatten images or pooled feature maps with x.flatten(1))").float()
    norms = e.norm(dim=1)
    if not torch.isfinite(norms).all() or (norms == 0).any():
        bad = torch.nonzero(~torch.isfinite(norms) | (norms == 0)).flatten()[:5].tolist()
        raise ValueError(f"{name} rows {bad} are zero or not finite, so their cosine similarity is undefined")
    return e / norms[:, None]


def close_pairs(scores: torch.Tensor, indices: torch.Tensor, *, max_distance: int | None = None,
                min_similarity: float | None = None) -> torch.Tensor:
    """The (query, index) pairs a nearest-neighbour search found close enough, int64 ``(E, 2)``.

    Give ``max_distance`` for the distances of :func:`nearest_by_hash` (a pair counts when
    distance <= max_distance) or ``min_similarity`` for the similarities of
    :func:`nearest_by_embedding` (similarity >= min_similarity).

    Example:
        >>> close_pairs(torch.tensor([0.99, 0.5]), torch.tensor([7, 3]), min_similarity=0.95).tolist()
        [[0, 7]]
    """
    if (max_distance is None) == (min_similarity is None):
        raise ValueError("give exactly one of max_distance (hash distances) and min_similarity (cosine similarities)")
    if max_distance is not None and not (isinstance(max_distance, int) and max_distance >= 0):
        raise ValueError(f"max_distance={max_distance!r}; it must be an int >= 0 (bits that may differ)")
    if min_similarity is not None and not -1.0 <= min_similarity <= 1.0:
        raise ValueError(f"min_similarity={min_similarity!r}; a cosine similarity lies in [-1, 1]")
    if scores.shape != indices.shape or scores.dim() not in (1, 2):
        raise ValueError(f"scores {tuple(scores.shape)} and indices {tuple(indices.shape)} must be the matching "
                         "(N,) or (N, k) outputs of one nearest_by_hash / nearest_by_embedding call")
    scores, indices = (scores[:, None], indices[:, None]) if scores.dim() == 1 else (scores, indices)
    keep = scores <= max_distance if max_distance is not None else scores >= min_similarity   # (N, k)
    rows = torch.arange(len(scores), device=scores.device)[:, None].expand_as(indices)
    return torch.stack([rows[keep], indices[keep]], dim=1).long().cpu()


def duplicate_groups(pairs, n: int) -> torch.Tensor:
    """Connected components (union-find) of near-duplicate pairs: a group id per item, for a group split.

    Items linked directly or through a chain of pairs share a group; every other item is a group
    of its own. Ids run 0, 1, 2, ... in order of each group's first item.

    Args:
        pairs: int ``(E, 2)`` of item indices in ``[0, n)``, e.g. :func:`close_pairs` of a set searched
            against itself. ``E`` may be 0.
        n: number of items.

    Returns:
        int64 ``(n,)`` group ids.

    Example:
        >>> duplicate_groups(torch.tensor([[0, 3], [3, 4], [1, 2]]), 6).tolist()
        [0, 1, 1, 0, 0, 2]
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n!r}; it must be a positive int (the number of items)")
    p = torch.as_tensor(pairs)
    if p.numel() == 0:
        p = p.reshape(0, 2)
    if p.dim() != 2 or p.shape[1] != 2 or p.is_floating_point() or p.dtype == torch.bool:
        raise ValueError(f"pairs has shape {tuple(p.shape)} and dtype {p.dtype}; pass integer (E, 2) index pairs")
    if len(p) and (p.min() < 0 or p.max() >= n):
        raise ValueError(f"pairs hold indices in [{int(p.min())}, {int(p.max())}], outside [0, {n}): "
                         "are they indices into a different set?")
    parent = np.arange(n)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]                          # path halving
            i = parent[i]
        return i

    for a, b in p.tolist():
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)                     # the smaller index stays the root
    roots = np.array([root(i) for i in range(n)])
    _, ids = np.unique(roots, return_inverse=True)                # roots are each group's first item, so ids ascend
    return torch.from_numpy(ids.astype(np.int64))
