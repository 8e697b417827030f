"""Figures a reader would rather look at than read: curves, image grids, confusion matrices, attributions.

Every plotting function returns the matplotlib Figure (and draws into ``ax``/``axes``
when given), so notebooks can adjust or save it. The attributions of
:mod:`dlbook.interpret` are drawn here: coloured words in HTML (:func:`render_html`,
:func:`render_attributions_html`, :func:`attribution_legend`) or in a figure
(:func:`plot_word_attributions`), and maps over images (:func:`overlay`); convolution filters
(:func:`plot_filters`) and the randomisation sanity check's curves (:func:`plot_randomization`).
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:
    from dlbook.calibration import ReliabilityBins
    from dlbook.interpret.text import WordAttribution


def _finish(fig, title: str | None = None):
    """The common last lines of every figure: an optional title, a tight layout, the figure."""
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


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
    # a callback's own validation (e.g. WeightAverage's "ema_val_loss") is drawn beside the trainer's
    splits = [("train", "-o"), ("val", "-s")] + [(k[:-len("_loss")], "-^") for k in keys if k.endswith("_val_loss")]
    for split, style in splits:
        if f"{split}_loss" in keys:
            axes[0].plot(epochs, [r[f"{split}_loss"] for r in records], style, ms=3, label=split.replace("_", " "))
    axes[0].set(xlabel="epoch", ylabel="loss", title="loss")
    axes[0].legend()
    if metrics:
        for m in metrics:
            for split, style in splits:
                if f"{split}_{m}" in keys:
                    axes[1].plot(epochs, [r[f"{split}_{m}"] for r in records], style, ms=3, label=f"{split.replace('_', ' ')} {m}")
        axes[1].set(xlabel="epoch", title=", ".join(metrics))
        axes[1].legend()
    for ax in axes:
        ax.grid(alpha=0.3)
    return _finish(fig, title)


def _to_hwc(image: torch.Tensor) -> np.ndarray:
    """One image as ``(H, W)`` or ``(H, W, C)`` floats in [0, 1] for ``imshow`` (normalised ones rescaled)."""
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
    return _finish(fig, title)


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
    return _finish(fig)


def plot_reliability_diagram(bins: "ReliabilityBins", ax=None, label: str | None = None,
                             title: str = "reliability diagram"):
    """Accuracy against confidence per bin (bars), the diagonal of perfect calibration, and the ECE.

    Args:
        bins: from :func:`dlbook.calibration.reliability_bins`; empty bins are left blank.
        ax: draw into this axes (e.g. side by side, before and after temperature scaling).
        label: what the bars show, e.g. ``"before"``; the legend adds the ECE and bin count.

    Example:
        >>> from dlbook.calibration import reliability_bins
        >>> bins = reliability_bins(torch.tensor([[0.9, 0.1], [0.3, 0.7]]), torch.tensor([0, 0]), n_bins=10)
        >>> plot_reliability_diagram(bins).axes[0].get_xlabel()
        'confidence (top softmax probability)'
    """
    edges = bins.edges.numpy()
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.2, 4.0))
    else:
        fig = ax.figure
    widths, filled = np.diff(edges), (bins.counts > 0).numpy()
    accuracy, confidence = bins.accuracy.numpy(), bins.confidence.numpy()
    name = f"{label}: " if label else ""
    ax.bar(edges[:-1][filled], accuracy[filled], width=widths[filled], align="edge", edgecolor="black",
           color="tab:blue", alpha=0.8, label=f"{name}ECE {bins.ece:.3f} ({len(widths)} equal-width bins)")
    gap_bottom = np.minimum(accuracy, confidence)[filled]
    ax.bar(edges[:-1][filled], np.abs(accuracy - confidence)[filled], bottom=gap_bottom, width=widths[filled],
           align="edge", color="tab:red", alpha=0.25, hatch="//", label="gap to the mean confidence")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top softmax probability)", ylabel="accuracy", title=title)
    ax.legend(loc="upper left", fontsize=7)
    return _finish(fig)

# --------------------------------------------------------------------------------------
# Attributions (dlbook.interpret): coloured words, maps over images
# --------------------------------------------------------------------------------------


def _colour(score: float, max_abs: float) -> str:
    strength = min(abs(score) / max_abs, 1.0) if max_abs > 0 else 0.0
    rgb = "22,163,74" if score >= 0 else "220,38,38"  # green / red
    return f"rgba({rgb},{0.08 + 0.72 * strength:.2f})"


def render_html(words: Sequence[str], scores: Tensor | Sequence[float], max_abs: float | None = None) -> str:
    """Words as HTML spans, green where the score is positive, red where negative, stronger when larger.

    Inline styles only, so the colours survive in static HTML (Jupyter Book, nbviewer).
    Each span's tooltip shows its score.

    Args:
        words: the tokens.
        scores: one number per token.
        max_abs: the score that gets full colour (default: the largest ``|score|`` here);
            pass the same value to several sentences to make them comparable.

    Example:
        >>> render_html(["good", "film"], [0.5, -0.1])[:40]
        "<span title='+0.500' style='background:r"
    """
    scores = [float(s) for s in torch.as_tensor(scores, dtype=torch.float32).reshape(-1).tolist()]
    words = list(words)
    if len(scores) < len(words):
        raise ValueError(f"{len(words)} words but {len(scores)} scores")
    scale = max_abs if max_abs is not None else max((abs(s) for s in scores[:len(words)]), default=0.0)
    spans = [f"<span title='{s:+.3f}' style='background:{_colour(s, scale)};padding:1px 3px;margin:0 1px;"
             f"border-radius:3px'>{html.escape(w)}</span>" for w, s in zip(words, scores)]
    return " ".join(spans)


def attribution_legend(target_name: str = "the target class") -> str:
    """A one-line HTML legend for :func:`render_html`'s colours."""
    return (f"<div style='font-size:85%'>"
            f"<span style='background:{_colour(1, 1)};padding:1px 4px'>green</span> pushes toward "
            f"<b>{html.escape(target_name)}</b>, "
            f"<span style='background:{_colour(-1, 1)};padding:1px 4px'>red</span> pushes away; "
            f"stronger colour, larger attribution (hover for the value).</div>")


def render_attributions_html(items: Sequence[WordAttribution], title: str | None = None) -> str:
    """Several explained sentences as one HTML block, with a legend."""
    if not items:
        raise ValueError("nothing to render: pass at least one WordAttribution")
    targets = {item._name(item.target) for item in items}
    legend = attribution_legend(targets.pop() if len(targets) == 1 else "the class named on each line")
    rows = "".join(f"<div style='margin:6px 0;line-height:2.0'>{item.to_html()}</div>" for item in items)
    head = f"<div style='font-weight:bold'>{html.escape(title)}</div>" if title else ""
    return f"<div>{head}{rows}{legend}</div>"


def plot_word_attributions(items: Sequence[WordAttribution], width: float = 10.0, fontsize: int = 11):
    """The coloured words as a matplotlib figure (for print, slides, or a notebook without HTML).

    Words are laid out left to right and wrapped at ``width`` inches; one block per
    sentence, headed by its true and predicted classes. Returns the figure.
    """
    from matplotlib.colors import to_rgba

    if not items:
        raise ValueError("nothing to plot: pass at least one WordAttribution")
    fig = plt.figure(figsize=(width, 1.0))
    ax = fig.add_axes((0, 0, 1, 1))  # one data unit = one pixel: lay out in pixels
    ax.set_axis_off()
    renderer = fig.canvas.get_renderer()
    dpi = fig.dpi
    pad, line_h = 0.15 * dpi, fontsize * dpi / 72 * 1.9
    x_max = width * dpi - pad
    y = pad

    def text(s, x, y, **kw):
        return ax.text(x, y, s, va="top", ha="left", **{"fontsize": fontsize, **kw})

    for item in items:
        ok = "" if item.label is None else (("correct" if item.label == item.pred else "WRONG")
                                            + f", true {item._name(item.label)}, ")
        text(f"{ok}predicted {item._name(item.pred)} ({item.prob:.0%})",
             pad, y, color="0.35", fontsize=fontsize - 1)
        y += line_h * 0.85
        x = pad
        scale = float(item.scores.abs().max()) or 1.0
        for word, s in zip(item.words, item.scores.tolist()):
            colour = to_rgba("#16a34a" if s >= 0 else "#dc2626", 0.08 + 0.72 * min(abs(s) / scale, 1.0))
            box = dict(boxstyle="round,pad=0.15", fc=colour, ec="none")
            t = text(word, x, y, bbox=box)
            w = t.get_window_extent(renderer).width
            if x > pad and x + w > x_max:  # wrap to the next line
                t.set_position((pad, y + line_h))
                x, y = pad, y + line_h
            x += w + fontsize * dpi / 72 * 0.55
        y += line_h * 1.35
    height = y + pad
    fig.set_figheight(height / dpi)
    ax.set_xlim(0, width * dpi)
    ax.set_ylim(height, 0)
    return fig


def overlay(images: Tensor, maps: Tensor, titles: Sequence[str] | None = None, *, alpha: float = 0.5,
            cmap: str | None = None, signed: bool | None = None, ncols: int = 6, size: float = 2.0,
            mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
    """Draw attribution maps over their images, one panel per image; returns the figure.

    Each map is scaled to its own largest absolute value. Unsigned maps (Grad-CAM)
    use ``"jet"`` from transparent to hot; signed maps (IG, occlusion) use ``"bwr"``,
    red for evidence for the class and blue against.

    Example:
        >>> fig = overlay(torch.rand(2, 3, 8, 8), torch.randn(2, 8, 8), titles=["a", "b"])

    Args:
        images: ``(B, C, H, W)`` or ``(B, H, W)``; if normalised, pass ``mean``/``std`` to undo it.
        maps: ``(B, H, W)`` attribution maps, e.g. from :func:`dlbook.interpret.grad_cam`.
        titles: one caption per panel.
        alpha: opacity of the map.
        cmap: override the colour map.
        signed: treat maps as signed (default: if any value is negative).
        ncols, size: grid layout.
        mean, std: per-channel normalisation to undo for display.
    """
    images = torch.as_tensor(images).detach().float().cpu()
    maps = torch.as_tensor(maps).detach().float().cpu()
    if images.dim() == 3:
        images = images.unsqueeze(1)
    if images.dim() != 4 or maps.dim() != 3:
        raise ValueError(f"overlay needs images (B, C, H, W) and maps (B, H, W); got {tuple(images.shape)} "
                         f"and {tuple(maps.shape)}")
    if images.shape[0] != maps.shape[0] or images.shape[-2:] != maps.shape[-2:]:
        raise ValueError(f"images {tuple(images.shape)} and maps {tuple(maps.shape)} must agree in B, H and W; "
                         "upsample the maps to the image size first (the functions here already do)")
    if len(images) == 0:
        raise ValueError("overlay got an empty batch (B=0): pass at least one image and its map")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"{len(titles)} titles for {len(images)} images")
    if mean is not None and std is not None:
        images = images * torch.tensor(std).view(1, -1, 1, 1) + torch.tensor(mean).view(1, -1, 1, 1)
    signed = bool((maps < 0).any()) if signed is None else signed
    cmap = cmap or ("bwr" if signed else "jet")
    n = len(images)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, (size + 0.3) * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i >= n:
            continue
        img = _to_hwc(images[i])
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
        m = maps[i].numpy()
        scale = float(np.abs(m).max()) or 1.0
        if signed:
            ax.imshow(m, cmap=cmap, vmin=-scale, vmax=scale, alpha=alpha)
        else:
            ax.imshow(m, cmap=cmap, vmin=0, vmax=scale, alpha=alpha)
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    return _finish(fig)


def plot_filters(weight: Tensor, ncols: int = 8, size: float = 1.0, title: str | None = None):
    """Convolution filters ``(O, C, kh, kw)`` as small images on one shared, symmetric colour scale.

    One input channel: red positive, blue negative (``"RdBu_r"``), zero white, so filters
    compare by strength. Three input channels: drawn as RGB, rescaled jointly to [0, 1].

    Example:
        >>> fig = plot_filters(torch.randn(6, 1, 5, 5))
        >>> len([ax for ax in fig.axes if ax.images])
        6
    """
    weight = torch.as_tensor(weight).detach().float().cpu()
    if weight.dim() != 4 or weight.shape[1] not in (1, 3) or weight.shape[0] == 0:
        raise ValueError(f"plot_filters needs conv weights (O, C, kh, kw) with C = 1 or 3 and O >= 1, got "
                         f"{tuple(weight.shape)}; for other C pass one input channel, e.g. weight[:, c:c + 1]")
    n = weight.shape[0]
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, (size + 0.3) * nrows), squeeze=False)
    scale = float(weight.abs().max()) or 1.0
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i >= n:
            continue
        if weight.shape[1] == 1:
            ax.imshow(weight[i, 0].numpy(), cmap="RdBu_r", vmin=-scale, vmax=scale)
        else:
            ax.imshow((weight[i].permute(1, 2, 0) / (2 * scale) + 0.5).numpy())  # (kh, kw, 3) in [0, 1]
        ax.set_title(f"filter {i}", fontsize=7)
    return _finish(fig, title)


def plot_randomization(results: dict, ax=None, title: str = "cascading randomisation (Adebayo et al. 2018)"):
    """The sanity check's curves: mean Spearman correlation with the original maps after each stage, per method.

    Args:
        results: ``{method name: RandomizationResult}`` from :func:`dlbook.interpret.cascading_randomization`,
            all over the same layers.
        ax: draw into this axes.

    Example:
        >>> from dlbook.interpret import RandomizationResult
        >>> r = RandomizationResult(["fc", "conv"], torch.tensor([[0.9, 0.7], [0.2, 0.0]], dtype=torch.float64), [])
        >>> plot_randomization({"saliency": r}).axes[0].lines[0].get_ydata().tolist()
        [1.0, 0.8, 0.1]
    """
    if not results:
        raise ValueError("results is empty: pass {method name: cascading_randomization(...)}")
    layers = {tuple(r.layers) for r in results.values()}
    if len(layers) != 1:
        raise ValueError(f"the results randomise different layers {sorted(layers)}; run every method over the same "
                         "layers so the curves share an x axis")
    names = ["original"] + [f"+{name}" for name in layers.pop()]
    if ax is None:
        fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(names) + 2), 3.6))
    else:
        fig = ax.figure
    for method, result in results.items():
        ax.plot(range(len(names)), [1.0] + result.mean_spearman.tolist(), marker="o", label=method)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set(ylim=(-0.2, 1.05), xlabel="layers re-initialised, from the top down (cumulative)",
           ylabel="Spearman rank correlation\nwith the original map", title=title)
    ax.legend(fontsize=7)
    return _finish(fig)


__all__ = [
    "plot_filters", "plot_randomization",
    "plot_history", "show_images", "plot_confusion_matrix", "plot_reliability_diagram", "render_html",
    "attribution_legend",
    "render_attributions_html", "plot_word_attributions", "overlay",
]
