"""Explanations with Captum: word attributions for text models; Grad-CAM, IG and occlusion for images.

Papers:
    Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep Networks", ICML 2017
    (Integrated Gradients, and its *completeness* axiom: the attributions add up to
    ``f(x) - f(baseline)``).
    Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
    Gradient-based Localization", ICCV 2017.
    Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014
    (occlusion).

Two halves, one convention: every function takes the model, its inputs and a
``target`` class (``None``: the predicted class), puts the model in eval mode for
the call (and back afterwards), and returns plain tensors on the CPU.

* **Text** (:func:`word_attributions`, :func:`explain_text`): Layer Integrated
  Gradients on the embedding layer (``model.embedding`` by default), from a baseline
  sentence of ``<pad>`` tokens of the same length, summed over the embedding
  dimensions to give one score per token. :class:`WordAttribution` holds one
  sentence's result and draws itself as coloured words in HTML
  (:func:`render_html`) or in a matplotlib figure (:func:`plot_word_attributions`).
* **Images** (:func:`grad_cam`, :func:`integrated_gradients`, :func:`occlusion`):
  maps ``(B, H, W)`` of the input's size, drawn over the images by :func:`overlay`.

Example:
    >>> import torch
    >>> from dlbook.models.rnn import RNNClassifier, RNNClassifierConfig
    >>> model = RNNClassifier(RNNClassifierConfig.tiny(vocab_size=20))
    >>> tokens, lengths = torch.tensor([[5, 6, 7], [8, 9, 0]]), torch.tensor([3, 2])
    >>> word_attributions(model, tokens, lengths, target=1).shape     # one score per token
    torch.Size([2, 3])
"""

from __future__ import annotations

import contextlib
import html
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

SCORES = ("logit", "log_odds", "prob")

# --------------------------------------------------------------------------------------
# Shared plumbing
# --------------------------------------------------------------------------------------


def class_scores(logits: Tensor, score: str = "logit") -> Tensor:
    """Turn logits ``(B, K)`` into the per-class score an explanation attributes.

    * ``"logit"``: the logits themselves (Captum's usual choice);
    * ``"log_odds"``: ``log p_k / (1 - p_k)``, i.e. ``z_k - logsumexp_{j != k} z_j``. For
      two classes it is the margin ``z_k - z_other``: the quantity that decides the
      prediction, so attributions to it explain the decision itself;
    * ``"prob"``: softmax probabilities (bounded, so IG attributions saturate).

    Example:
        >>> class_scores(torch.tensor([[1.0, 3.0]]), "log_odds")
        tensor([[-2.,  2.]])
    """
    if score not in SCORES:
        raise ValueError(f"score={score!r}; use one of {SCORES}")
    if logits.dim() != 2:
        raise ValueError(f"the model must return logits (B, K); got shape {tuple(logits.shape)}")
    if score == "logit":
        return logits
    if score == "prob":
        return logits.softmax(dim=1)
    k = logits.shape[1]
    if k < 2:
        raise ValueError("log_odds needs at least two classes")
    others = logits.unsqueeze(1).expand(-1, k, -1)  # (B, K, K): row k holds all logits
    mask = torch.eye(k, dtype=torch.bool, device=logits.device).unsqueeze(0)  # (1, K, K)
    others = others.masked_fill(mask, float("-inf"))
    return logits - torch.logsumexp(others, dim=2)  # (B, K)


def _scored_forward(model: nn.Module, score: str) -> Callable[..., Tensor]:
    if score not in SCORES:
        raise ValueError(f"score={score!r}; use one of {SCORES}")

    def forward(*args):
        return class_scores(model(*args), score)

    return forward


@contextlib.contextmanager
def _eval_mode(model: nn.Module):
    """Eval mode (no dropout, running BatchNorm statistics) for the duration; cuDNN RNNs need
    training mode for backward, so cuDNN is switched off inside too."""
    was_training = model.training
    model.eval()
    try:
        with torch.backends.cudnn.flags(enabled=False):
            yield model
    finally:
        model.train(was_training)


def _device_of(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def _resolve_target(target, logits: Tensor) -> Tensor:
    """A ``(B,)`` int64 target: None -> the predicted class; an int -> the same class for all."""
    batch, k = logits.shape
    if target is None:
        return logits.argmax(dim=1)
    target = torch.as_tensor(target, dtype=torch.int64, device=logits.device).reshape(-1)
    if target.numel() == 1:
        target = target.expand(batch)
    if target.shape[0] != batch:
        raise ValueError(f"target has {target.shape[0]} entries for a batch of {batch}; pass one per example, "
                         "a single int, or None for the predicted class")
    if int(target.min()) < 0 or int(target.max()) >= k:
        raise ValueError(f"target must lie in [0, {k - 1}] (the model has {k} classes); got {target.tolist()}")
    return target.contiguous()


def _is_submodule(model: nn.Module, layer: nn.Module) -> bool:
    return any(m is layer for m in model.modules())


# --------------------------------------------------------------------------------------
# Text: Layer Integrated Gradients on the embedding
# --------------------------------------------------------------------------------------


def _check_text_inputs(tokens: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    tokens = torch.as_tensor(tokens)
    if tokens.dim() != 2 or tokens.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"tokens must be integer token ids of shape (B, T); got {tuple(tokens.shape)} "
                         f"{tokens.dtype}. Encode text first, e.g. pad_batch([vocab.encode(tokenize(s))])")
    lengths = torch.as_tensor(lengths, dtype=torch.int64).reshape(-1)
    if lengths.shape[0] != tokens.shape[0]:
        raise ValueError(f"lengths has {lengths.shape[0]} entries for {tokens.shape[0]} sentences")
    if lengths.numel() and (int(lengths.min()) < 1 or int(lengths.max()) > tokens.shape[1]):
        raise ValueError(f"lengths must lie in [1, {tokens.shape[1]}]; got {lengths.tolist()}. "
                         "An empty sentence has nothing to attribute: drop it first")
    return tokens.long(), lengths


def word_attributions(model: nn.Module, tokens: Tensor, lengths: Tensor, target=None, *,
                      layer: nn.Module | None = None, baseline_index: int | None = None,
                      keep_tokens: Sequence[int] = (), score: str = "logit", n_steps: int = 50,
                      internal_batch_size: int | None = None,
                      return_delta: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """One attribution score per token, by Layer Integrated Gradients on the embedding layer.

    The path runs from a *baseline* sentence to the real one, in embedding space. The
    baseline has the same length, with every token replaced by ``baseline_index``: by
    default ``<pad>``, whose embedding is zero in an ``nn.Embedding(padding_idx=...)``;
    ``<unk>`` is the other common choice ("a sentence of words we do not know"), and
    often gives a smoother path for recurrent models, since a zero sequence is an
    input they never saw in training. Attributions of the embedding dimensions are
    summed per token. By completeness, the scores of a sentence add up to
    ``f(x) - f(baseline)`` for the target class, up to the integration error that
    ``return_delta=True`` reports: check it, and raise ``n_steps`` or change the
    baseline when it is not small against ``f(x) - f(baseline)``.

    Args:
        model: called as ``model(tokens, lengths)`` → logits ``(B, K)``.
        tokens: padded token ids ``(B, T)``.
        lengths: true lengths ``(B,)``; padding positions get a score of exactly 0.
        target: the class to explain: an int, one per sentence ``(B,)``, or None for the
            predicted class.
        layer: the embedding module (default ``model.embedding``).
        baseline_index: the baseline token (default ``model.config.pad_index``, else 0).
        keep_tokens: token ids left unchanged in the baseline, e.g. a Transformer's
            ``[CLS]`` and ``[SEP]``; they then get no attribution.
        score: what to explain: ``"logit"``, ``"log_odds"`` or ``"prob"`` (see :func:`class_scores`).
        n_steps: integration steps (Gauss-Legendre); 50 is usually within 1% of the total.
        internal_batch_size: split the ``B * n_steps`` forward passes into chunks this big.
        return_delta: also return the completeness error per sentence ``(B,)``.

    Returns:
        ``(B, T)`` float32 scores on the CPU (and the ``(B,)`` deltas if asked).

    Raises:
        ValueError: on shapes, lengths or targets that do not fit the model.
        AttributeError: if the model has no ``embedding`` and no ``layer`` is given.

    Example:
        >>> from dlbook.models.rnn import RNNClassifier, RNNClassifierConfig
        >>> model = RNNClassifier(RNNClassifierConfig.tiny(vocab_size=20))
        >>> attr, delta = word_attributions(model, torch.tensor([[4, 5, 6]]), torch.tensor([3]),
        ...                                 target=0, return_delta=True)
        >>> attr.shape, bool(delta.abs().max() < 1e-2)
        (torch.Size([1, 3]), True)
    """
    from captum.attr import LayerIntegratedGradients

    tokens, lengths = _check_text_inputs(tokens, lengths)
    if layer is None:
        layer = getattr(model, "embedding", None)
        if not isinstance(layer, nn.Module):
            raise AttributeError(f"{type(model).__name__} has no `embedding` submodule; pass the embedding layer "
                                 "as layer=... (e.g. layer=model.encoder.embeddings.word_embeddings)")
    elif not _is_submodule(model, layer):
        raise ValueError("layer is not a submodule of model: attributions would all be zero")
    if baseline_index is None:
        baseline_index = int(getattr(getattr(model, "config", None), "pad_index", 0))
    if n_steps < 2:
        raise ValueError(f"n_steps={n_steps}; integrate with at least 2 steps (50 is typical)")
    device = _device_of(model)
    tokens = tokens.to(device)
    positions = torch.arange(tokens.shape[1], device=device)
    inside = positions.unsqueeze(0) < lengths.to(device).unsqueeze(1)  # (B, T) True on real tokens
    replaced = inside
    if len(keep_tokens):
        replaced = inside & ~torch.isin(tokens, torch.as_tensor(list(keep_tokens), device=device))
    baseline = torch.where(replaced, torch.full_like(tokens, baseline_index), tokens)
    with _eval_mode(model):
        forward = _scored_forward(model, score)
        with torch.no_grad():
            target = _resolve_target(target, forward(tokens, lengths))
        lig = LayerIntegratedGradients(forward, layer)
        result = lig.attribute(tokens, baselines=baseline, target=target, additional_forward_args=(lengths,),
                               n_steps=n_steps, internal_batch_size=internal_batch_size,
                               return_convergence_delta=return_delta)
    attributions, delta = result if return_delta else (result, None)
    if attributions.dim() != 3 or attributions.shape[:2] != tokens.shape:
        raise ValueError(f"the layer's output has shape {tuple(attributions.shape)}; word_attributions needs an "
                         f"embedding layer with outputs (B, T, E) for tokens {tuple(tokens.shape)}")
    scores = attributions.sum(dim=2).float() * inside  # (B, T, E) -> (B, T), zero on padding
    scores = scores.detach().cpu()
    return (scores, delta.detach().float().cpu()) if return_delta else scores


@dataclass
class WordAttribution:
    """One explained sentence: its tokens, a score per token, and what the model said.

    Attributes:
        words: the tokens as the model saw them (``<unk>`` where it did not know a word).
        scores: ``(T,)`` attribution per token: positive pushes toward ``target``.
        target: the class the scores explain.
        pred: the predicted class; ``prob`` its probability.
        label: the true class, if known.
        delta: completeness error of the integral (``sum(scores) - (f(x) - f(baseline))``).
        class_names: names of the classes, for display.
    """

    words: list[str]
    scores: Tensor
    target: int
    pred: int
    prob: float
    label: int | None = None
    delta: float = float("nan")
    class_names: Sequence[str] = field(default_factory=lambda: ("negative", "positive"))

    def _name(self, k: int | None) -> str:
        if k is None:
            return "?"
        return self.class_names[k] if 0 <= k < len(self.class_names) else str(k)

    def top(self, n: int = 3) -> list[tuple[str, float]]:
        """The ``n`` tokens with the largest absolute scores, as ``(word, score)``."""
        order = self.scores.abs().argsort(descending=True)[:n].tolist()
        return [(self.words[i], float(self.scores[i])) for i in order]

    def to_html(self, max_abs: float | None = None) -> str:
        """One line: the prediction, then the words coloured by their scores."""
        truth = "" if self.label is None else (f"{'✓' if self.label == self.pred else '✗'} true: "
                                               f"{html.escape(self._name(self.label))} · ")
        head = (f"<span style='font-family:monospace;font-size:90%'>{truth}predicted: "
                f"{html.escape(self._name(self.pred))} ({self.prob:.0%})</span><br>")
        return head + render_html(self.words, self.scores, max_abs=max_abs)

    def _repr_html_(self) -> str:
        legend = attribution_legend(self._name(self.target))
        return f"<div style='line-height:2.0'>{self.to_html()}</div>{legend}"


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


def explain_text(model: nn.Module, tokens: Tensor, lengths: Tensor, words: Sequence[Sequence[str]], *,
                 target=None, labels: Tensor | Sequence[int] | None = None,
                 class_names: Sequence[str] = ("negative", "positive"), **kwargs) -> list[WordAttribution]:
    """Predict and explain a batch of sentences: one :class:`WordAttribution` each.

    Args:
        model, tokens, lengths, target: as in :func:`word_attributions` (``target=None``
            explains each sentence's predicted class).
        words: the tokens of each sentence as strings (what to display).
        labels: true classes, if known.
        class_names: for display.
        **kwargs: passed to :func:`word_attributions` (``score``, ``n_steps``, ...).

    Example:
        >>> from dlbook.models.rnn import RNNClassifier, RNNClassifierConfig
        >>> model = RNNClassifier(RNNClassifierConfig.tiny(vocab_size=20))
        >>> [item] = explain_text(model, torch.tensor([[4, 5]]), torch.tensor([2]), [["a", "film"]], target=1)
        >>> item.words, item.target
        (['a', 'film'], 1)
    """
    tokens, lengths = _check_text_inputs(tokens, lengths)
    if len(words) != tokens.shape[0]:
        raise ValueError(f"{len(words)} word lists for {tokens.shape[0]} sentences")
    device = _device_of(model)
    with _eval_mode(model), torch.no_grad():
        probs = model(tokens.to(device), lengths).float().softmax(dim=1).cpu()
    pred = probs.argmax(dim=1)
    target_t = pred if target is None else _resolve_target(target, probs)
    scores, delta = word_attributions(model, tokens, lengths, target_t, return_delta=True, **kwargs)
    labels_list = None if labels is None else torch.as_tensor(labels).reshape(-1).tolist()
    items = []
    for i, n in enumerate(lengths.tolist()):
        shown = list(words[i])[:n]
        if len(shown) != n:
            raise ValueError(f"sentence {i} has {n} tokens but {len(shown)} words to show")
        items.append(WordAttribution(words=shown, scores=scores[i, :n], target=int(target_t[i]),
                                     pred=int(pred[i]), prob=float(probs[i, pred[i]]),
                                     label=None if labels_list is None else int(labels_list[i]),
                                     delta=float(delta[i]), class_names=tuple(class_names)))
    return items


def plot_word_attributions(items: Sequence[WordAttribution], width: float = 10.0, fontsize: int = 11):
    """The coloured words as a matplotlib figure (for print, slides, or a notebook without HTML).

    Words are laid out left to right and wrapped at ``width`` inches; one block per
    sentence, headed by its true and predicted classes. Returns the figure.
    """
    import matplotlib.pyplot as plt
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


# --------------------------------------------------------------------------------------
# Images: Grad-CAM, Integrated Gradients, occlusion
# --------------------------------------------------------------------------------------


def _check_images(images: Tensor) -> Tensor:
    images = torch.as_tensor(images)
    if images.dim() != 4:
        raise ValueError(f"images must be a batch (B, C, H, W); got shape {tuple(images.shape)}. "
                         "For one image use images.unsqueeze(0)")
    if not images.is_floating_point():
        raise ValueError(f"images must be float tensors as the model sees them (normalised), got {images.dtype}; "
                         "convert uint8 images with the same transform used in training")
    return images


def grad_cam(model: nn.Module, layer: nn.Module, images: Tensor, target=None, *, relu: bool = True,
             interpolate_mode: str = "bilinear") -> Tensor:
    """Grad-CAM maps of the images' size: where, at ``layer``, the evidence for ``target`` lies.

    The channel weights are the spatial means of the gradient of the target's logit
    with respect to ``layer``'s output; the map is the ReLU of the weighted sum of
    the channels, upsampled to ``(H, W)``. Use the last convolutional block for maps
    that are both semantic and spatial.

    Args:
        model: an image classifier ``(B, C, H, W) -> (B, K)``.
        layer: a submodule of ``model`` with a ``(B, C', h, w)`` output.
        images: the batch, normalised as in training.
        target: class per image (int, ``(B,)``) or None for the predicted class.
        relu: keep only positive evidence (as in the paper).
        interpolate_mode: ``"bilinear"`` (smooth) or ``"nearest"`` (shows the layer's grid).

    Returns:
        ``(B, H, W)`` float32 maps on the CPU (not normalised; :func:`overlay` scales them).

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 2))
        >>> grad_cam(net, net[1], torch.randn(2, 3, 8, 8)).shape
        torch.Size([2, 8, 8])
    """
    from captum.attr import LayerAttribution, LayerGradCam

    images = _check_images(images)
    if not _is_submodule(model, layer):
        raise ValueError("layer is not a submodule of model; pass e.g. model.features[-3] (the last conv block)")
    device = _device_of(model)
    images = images.to(device)
    with _eval_mode(model):
        with torch.no_grad():
            target = _resolve_target(target, model(images))
        cam = LayerGradCam(model, layer).attribute(images, target=target, relu_attributions=relu)
    if cam.dim() != 4:
        raise ValueError(f"layer's output gives Grad-CAM maps of shape {tuple(cam.shape)}; choose a convolutional "
                         "layer whose output is (B, C, h, w)")
    cam = LayerAttribution.interpolate(cam, tuple(images.shape[-2:]), interpolate_mode=interpolate_mode)
    return cam[:, 0].detach().float().cpu()  # (B, 1, H, W) -> (B, H, W)


def _reduce_channels(attributions: Tensor, channel_reduce: str | None) -> Tensor:
    if channel_reduce is None:
        return attributions
    if channel_reduce == "sum":
        return attributions.sum(dim=1)
    if channel_reduce == "abs":
        return attributions.abs().sum(dim=1)
    if channel_reduce == "mean":
        return attributions.mean(dim=1)
    raise ValueError(f"channel_reduce={channel_reduce!r}; use 'sum', 'abs', 'mean' or None")


def integrated_gradients(model: nn.Module, images: Tensor, target=None, baseline: Tensor | float | None = None, *,
                         n_steps: int = 50, internal_batch_size: int | None = None, score: str = "logit",
                         channel_reduce: str | None = "sum",
                         return_delta: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Integrated Gradients per pixel, from ``baseline`` (default: all zeros, the mean image
    after normalisation) to the image.

    Args:
        model: an image classifier ``(B, C, H, W) -> (B, K)``.
        images: the batch, normalised as in training.
        target: class per image or None for the predicted class.
        baseline: a tensor broadcastable to the images, a number, or None (zeros).
        n_steps: integration steps.
        internal_batch_size: split the ``B * n_steps`` forward passes into chunks this big.
        score: ``"logit"``, ``"log_odds"`` or ``"prob"`` (see :func:`class_scores`).
        channel_reduce: ``"sum"`` (signed, keeps completeness), ``"abs"``, ``"mean"``, or None
            to keep ``(B, C, H, W)``.
        return_delta: also return the completeness error per image ``(B,)``.

    Returns:
        ``(B, H, W)`` (or ``(B, C, H, W)``) float32 on the CPU, and the deltas if asked.
        With ``"sum"``, each map adds up to ``f(image) - f(baseline)`` up to the delta.

    Example:
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
        >>> integrated_gradients(net, torch.randn(2, 3, 4, 4), target=1).shape
        torch.Size([2, 4, 4])
    """
    from captum.attr import IntegratedGradients

    images = _check_images(images)
    device = _device_of(model)
    images = images.to(device)
    if baseline is None:
        baseline = torch.zeros_like(images)
    elif isinstance(baseline, (int, float)):
        baseline = torch.full_like(images, float(baseline))
    else:
        baseline = torch.as_tensor(baseline, dtype=images.dtype, device=device)
        try:
            baseline = baseline.expand_as(images).contiguous()
        except RuntimeError:
            raise ValueError(f"baseline of shape {tuple(baseline.shape)} does not broadcast to the images "
                             f"{tuple(images.shape)}") from None
    with _eval_mode(model):
        forward = _scored_forward(model, score)
        with torch.no_grad():
            target = _resolve_target(target, forward(images))
        result = IntegratedGradients(forward).attribute(images, baselines=baseline, target=target, n_steps=n_steps,
                                                        internal_batch_size=internal_batch_size,
                                                        return_convergence_delta=return_delta)
    attributions, delta = result if return_delta else (result, None)
    maps = _reduce_channels(attributions.detach().float(), channel_reduce).cpu()
    return (maps, delta.detach().float().cpu()) if return_delta else maps


def occlusion(model: nn.Module, images: Tensor, target=None, window: int | tuple[int, int] = 8,
              stride: int | tuple[int, int] = 4, baseline: float = 0.0, *, score: str = "logit",
              perturbations_per_eval: int = 16) -> Tensor:
    """How much the target's score drops when a ``window`` of the image is blanked out.

    A patch of ``window`` pixels (all channels) slides over the image in steps of
    ``stride`` and is replaced by ``baseline``; each pixel's value is the average
    drop of the score over the patches that covered it. Model-agnostic (no gradients),
    slow: ``(H / stride) * (W / stride)`` forward passes per image.

    Args:
        model: an image classifier ``(B, C, H, W) -> (B, K)``.
        images: the batch, normalised as in training.
        target: class per image or None for the predicted class.
        window: patch size (an int for a square).
        stride: step of the patch.
        baseline: the value a blanked patch takes (0 = the mean pixel after normalisation).
        score: ``"logit"``, ``"log_odds"`` or ``"prob"``.
        perturbations_per_eval: patches evaluated per forward pass.

    Returns:
        ``(B, H, W)`` float32 on the CPU: positive where hiding the region lowers the score.

    Example:
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2))
        >>> occlusion(net, torch.randn(1, 3, 8, 8), target=0, window=4, stride=2).shape
        torch.Size([1, 8, 8])
    """
    from captum.attr import Occlusion

    images = _check_images(images)
    _, channels, height, width = images.shape
    win = (window, window) if isinstance(window, int) else tuple(window)
    step = (stride, stride) if isinstance(stride, int) else tuple(stride)
    if len(win) != 2 or len(step) != 2 or min(win) < 1 or min(step) < 1:
        raise ValueError(f"window={window} and stride={stride} must be positive ints or (h, w) pairs")
    if win[0] > height or win[1] > width:
        raise ValueError(f"window {win} is larger than the images ({height}, {width})")
    device = _device_of(model)
    images = images.to(device)
    with _eval_mode(model), torch.no_grad():
        forward = _scored_forward(model, score)
        target = _resolve_target(target, forward(images))
        attributions = Occlusion(forward).attribute(images, sliding_window_shapes=(channels, *win),
                                                    strides=(channels, *step), baselines=baseline, target=target,
                                                    perturbations_per_eval=perturbations_per_eval)
    return attributions.mean(dim=1).detach().float().cpu()  # (B, C, H, W), equal over C -> (B, H, W)


def overlay(images: Tensor, maps: Tensor, titles: Sequence[str] | None = None, *, alpha: float = 0.5,
            cmap: str | None = None, signed: bool | None = None, ncols: int = 6, size: float = 2.0,
            mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
    """Draw attribution maps over their images, one panel per image; returns the figure.

    Each map is scaled to its own largest absolute value. Unsigned maps (Grad-CAM)
    use ``"jet"`` from transparent to hot; signed maps (IG, occlusion) use ``"bwr"``,
    red for evidence for the class and blue against.

    Args:
        images: ``(B, C, H, W)`` or ``(B, H, W)``; if normalised, pass ``mean``/``std`` to undo it.
        maps: ``(B, H, W)`` attribution maps, e.g. from :func:`grad_cam`.
        titles: one caption per panel.
        alpha: opacity of the map.
        cmap: override the colour map.
        signed: treat maps as signed (default: if any value is negative).
        ncols, size: grid layout.
        mean, std: per-channel normalisation to undo for display.
    """
    import matplotlib.pyplot as plt
    import numpy as np

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
        img = images[i].permute(1, 2, 0)  # (C, H, W) -> (H, W, C)
        img = img[..., 0] if img.shape[-1] == 1 else img
        lo, hi = float(img.min()), float(img.max())
        if lo < 0 or hi > 1:
            img = (img - lo) / (hi - lo + 1e-8)
        ax.imshow(img.numpy(), cmap="gray" if img.dim() == 2 else None)
        m = maps[i].numpy()
        scale = float(np.abs(m).max()) or 1.0
        if signed:
            ax.imshow(m, cmap=cmap, vmin=-scale, vmax=scale, alpha=alpha)
        else:
            ax.imshow(m, cmap=cmap, vmin=0, vmax=scale, alpha=alpha)
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    fig.tight_layout()
    return fig


__all__ = [
    "class_scores", "word_attributions", "WordAttribution", "explain_text", "render_html",
    "render_attributions_html", "attribution_legend", "plot_word_attributions",
    "grad_cam", "integrated_gradients", "occlusion", "overlay",
]
