"""Simulated production shifts: CIFAR-10-C style corruptions of images, and typos or negations of sentences.

The image corruptions follow Hendrycks and Dietterich, "Benchmarking neural network robustness to
common corruptions and perturbations" (ICLR 2019), whose CIFAR-10-C parameters for severities 1 to 5
are the tables below: Gaussian noise (standard deviation on pixels in [0, 1]), Gaussian blur (sigma in
pixels), brightness (added to the V channel in HSV) and contrast (a factor on the distance from each
image's mean). They are generated here, seeded, from uint8 images ``(N, 3, H, W)``.

Example:
    >>> images = np.full((2, 3, 32, 32), 128, np.uint8)
    >>> corrupt(images, "contrast", 5).shape, int(corrupt(images, "brightness", 5).max())
    ((2, 3, 32, 32), 204)
    >>> add_typos("a gorgeous movie", rate=1.0, seed=0) != "a gorgeous movie", negate("dull .")
    (True, 'it is not true that dull .')
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

SEVERITIES = {  # CIFAR-10-C's parameters (make_cifar_c.py), severity 1..5
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
}


def corrupt(images, kind: str, severity: int, seed: int = 0) -> np.ndarray:
    """A corrupted copy of uint8 images ``(N, C, H, W)``, as uint8.

    Args:
        images: uint8 array or tensor ``(N, C, H, W)``.
        kind: one of ``gaussian_noise``, ``gaussian_blur``, ``brightness``, ``contrast``.
        severity: 1 (mildest) to 5, CIFAR-10-C's scale.
        seed: of the noise (the other corruptions are deterministic).
    """
    if kind not in SEVERITIES:
        raise ValueError(f"kind={kind!r}; use one of {sorted(SEVERITIES)}")
    if severity not in range(1, 6):
        raise ValueError(f"severity={severity}; CIFAR-10-C's severities are 1 to 5")
    x = np.asarray(images)
    if x.ndim != 4 or x.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (N, C, H, W), got {x.dtype} {x.shape}; pass load_cifar10's images")
    c = SEVERITIES[kind][severity - 1]
    x = x.astype(np.float64) / 255.0
    if kind == "gaussian_noise":
        x = x + np.random.default_rng(seed).normal(scale=c, size=x.shape)
    elif kind == "gaussian_blur":
        x = gaussian_filter(x, sigma=(0, 0, c, c), mode="reflect")  # within each channel only
    elif kind == "brightness":  # V = max over channels; HSV keeps H and S, so RGB scales by V'/V
        v = x.max(axis=1, keepdims=True)  # (N, 1, H, W)
        v_new = np.minimum(v + c, 1.0)
        x = np.where(v > 0, x * v_new / np.where(v > 0, v, 1), v_new)
    else:
        mean = x.mean(axis=(1, 2, 3), keepdims=True)  # (N, 1, 1, 1)
        x = (x - mean) * c + mean
    return (np.clip(x, 0, 1) * 255).round().astype(np.uint8)


def add_typos(sentence: str, rate: float = 0.3, seed: int = 0) -> str:
    """Swap two adjacent letters in each word of 4+ characters with probability ``rate`` (a typing slip).

    Example:
        >>> add_typos("a wonderful film", rate=0.0)
        'a wonderful film'
    """
    if not 0 <= rate <= 1:
        raise ValueError(f"rate={rate}; a probability lies in [0, 1]")
    rng = np.random.default_rng(seed)
    words = sentence.split(" ")
    for i, w in enumerate(words):
        if len(w) >= 4 and w.isalpha() and rng.random() < rate:
            j = int(rng.integers(0, len(w) - 1))
            words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:]
    return " ".join(words)


def negate(sentence: str) -> str:
    """Wrap a sentence in a negation, ``it is not true that ...``: its sentiment label flips."""
    return "it is not true that " + sentence
