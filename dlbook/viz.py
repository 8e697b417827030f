"""Figures a reader would rather look at than read: curves, image grids, confusion matrices.

Every function returns the matplotlib Figure (and draws into ``ax``/``axes``
when given), so notebooks can adjust or save it.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch


def plot_history(history, metrics: Sequence[str] | None = None, axes=None, title: str | None = None):
    """Loss curves (train and validation) on the left, other metrics on the right.

    Args:
        history: a :class:`dlbook.train.History` or a list of epoch records.
        metrics: metric names without the ``train_``/``val_`` prefix (default: all but loss).
    """
    records = getattr(history, "records", history)
    if not records:
        raise ValueError("the history is empty: train for at least one epoch first")
    keys = records[-1].keys()
    if metrics is None:
        metrics = sorted({k.split("_", 1)[1] for k in keys if k.startswith(("train_", "val_"))} - {"loss"})
    n_panels = 1 + (1 if metrics else 0)
    if axes is None:
        fig, axes = plt.subplots(1, n_panels, figsize=(5.5 * n_panels, 3.6), squeeze=False)
        axes = axes[0]
    else:
        axes = np.atleast_1d(axes)
        fig = axes[0].figure
    epochs = [r["epoch"] for r in records]
    for split, style in (("train", "-o"), ("val", "-s")):
        if f"{split}_loss" in keys:
            axes[0].plot(epochs, [r[f"{split}_loss"] for r in records], style, ms=3, label=split)
    axes[0].set(xlabel="epoch", ylabel="loss", title="loss")
    axes[0].legend()
    if metrics:
        for m in metrics:
            for split, style in (("train", "-o"), ("val", "-s")):
                if f"{split}_{m}" in keys:
                    axes[1].plot(epochs, [r[f"{split}_{m}"] for r in records], style, ms=3, label=f"{split} {m}")
        axes[1].set(xlabel="epoch", title=", ".join(metrics))
        axes[1].legend()
    for ax in axes:
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _to_hwc(image: torch.Tensor) -> np.ndarray:
    image = torch.as_tensor(image).detach().cpu()
    if image.dtype == torch.uint8:
        image = image.float() / 255
    image = image.float()
    if image.dim() == 3 and image.shape[0] in (1, 3):
        image = image.permute(1, 2, 0)  # (C, H, W) -> (H, W, C)
    if image.dim() == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    lo, hi = image.min(), image.max()
    if lo < 0 or hi > 1:  # normalised input: rescale for display only
        image = (image - lo) / (hi - lo + 1e-8)
    return image.numpy()


def show_images(images, labels: Sequence[str] | None = None, ncols: int = 8, cmap: str = "gray",
                size: float = 1.4, title: str | None = None):
    """A grid of images (``(N, H, W)``, ``(N, C, H, W)`` or a list), each with an optional caption."""
    images = list(images)
    if not images:
        raise ValueError("show_images needs at least one image")
    ncols = min(ncols, len(images))
    nrows = (len(images) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, (size + 0.35) * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, (ax, image) in enumerate(zip(axes.ravel(), images)):
        ax.imshow(_to_hwc(image), cmap=cmap)
        if labels is not None:
            ax.set_title(labels[i], fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_confusion_matrix(cm, class_names: Sequence[str], normalize: bool = True, ax=None,
                          title: str = "confusion matrix"):
    """Heat map of a confusion matrix (rows: true class, columns: predicted), row-normalised by default."""
    cm = torch.as_tensor(cm).double()
    values = cm / cm.sum(1, keepdim=True).clamp(min=1) if normalize else cm
    if ax is None:
        size = max(4.0, 0.55 * len(class_names) + 1.5)
        fig, ax = plt.subplots(figsize=(size, size * 0.85))
    else:
        fig = ax.figure
    im = ax.imshow(values.numpy(), cmap="Blues", vmin=0)
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    threshold = values.max().item() / 2
    for i in range(len(class_names)):
        for j in range(len(class_names)):
            v = values[i, j].item()
            text = f"{v:.2f}" if normalize else f"{int(v)}"
            ax.text(j, i, text, ha="center", va="center", fontsize=7,
                    color="white" if v > threshold else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig
