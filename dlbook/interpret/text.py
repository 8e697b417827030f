"""Word attributions for text classifiers: Layer Integrated Gradients on the embedding layer.

Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep Networks", ICML 2017
(Integrated Gradients, and its *completeness* axiom: the attributions add up to
``f(x) - f(baseline)``).

:func:`word_attributions` integrates from a baseline sentence of ``<pad>`` tokens of
the same length (``model.embedding`` by default) and sums over the embedding
dimensions, giving one score per token. :func:`explain_text` predicts and explains a
batch, one :class:`WordAttribution` per sentence, which draws itself as coloured words
(:func:`dlbook.viz.render_html`, :func:`dlbook.viz.plot_word_attributions`).

Example:
    >>> import torch
    >>> from dlbook.models.rnn_classifier import RNNClassifier, RNNClassifierConfig
    >>> model = RNNClassifier(RNNClassifierConfig.tiny(vocab_size=20))
    >>> tokens, lengths = torch.tensor([[5, 6, 7], [8, 9, 0]]), torch.tensor([3, 2])
    >>> word_attributions(model, tokens, lengths, target=1).shape     # one score per token
    torch.Size([2, 3])
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import Tensor, nn

from dlbook.data.text import PAD_INDEX, check_token_batch, padding_mask
from dlbook.interpret._common import (check_n_steps, check_submodule, explaining, resolve_target,
                                     scored_forward_and_target)
from dlbook.train.inference import model_device


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
        baseline_index: the baseline token (default ``dlbook.data.text.PAD_INDEX``, ``<pad>``).
        keep_tokens: token ids left unchanged in the baseline, e.g. a Transformer's
            ``[CLS]`` and ``[SEP]``; they then get no attribution.
        score: what to explain: ``"logit"``, ``"log_odds"`` or ``"prob"`` (see ``class_scores``).
        n_steps: integration steps (Gauss-Legendre), at least 2; 50 is usually within 1% of the total.
        internal_batch_size: split the ``B * n_steps`` forward passes into chunks this big.
        return_delta: also return the completeness error per sentence ``(B,)``.

    Returns:
        ``(B, T)`` float32 scores on the CPU (and the ``(B,)`` deltas if asked).

    Raises:
        ValueError: on shapes, lengths or targets that do not fit the model, an empty batch,
            a non-integer target, or fewer than 2 steps.
        AttributeError: if the model has no ``embedding`` and no ``layer`` is given.

    Example:
        >>> from dlbook.models.rnn_classifier import RNNClassifier, RNNClassifierConfig
        >>> model = RNNClassifier(RNNClassifierConfig.tiny(vocab_size=20))
        >>> attr, delta = word_attributions(model, torch.tensor([[4, 5, 6]]), torch.tensor([3]),
        ...                                 target=0, return_delta=True)
        >>> attr.shape, bool(delta.abs().max() < 1e-2)
        (torch.Size([1, 3]), True)
    """
    from captum.attr import LayerIntegratedGradients

    tokens, lengths = check_token_batch(tokens, lengths)
    if layer is None:
        layer = getattr(model, "embedding", None)
        if not isinstance(layer, nn.Module):
            raise AttributeError(f"{type(model).__name__} has no `embedding` submodule; pass the embedding layer "
                                 "as layer=... (e.g. layer=model.encoder.embeddings.word_embeddings)")
    else:
        check_submodule(model, layer, "pass the model's embedding layer")
    baseline_index = PAD_INDEX if baseline_index is None else baseline_index
    check_n_steps(n_steps)
    device = model_device(model)
    tokens = tokens.to(device)
    inside = padding_mask(lengths.to(device), max_len=tokens.shape[1])  # (B, T) True on real tokens
    replaced = inside
    if len(keep_tokens):
        replaced = inside & ~torch.isin(tokens, torch.as_tensor(list(keep_tokens), device=device))
    baseline = torch.where(replaced, torch.full_like(tokens, baseline_index), tokens)
    with explaining(model):
        forward, target = scored_forward_and_target(model, score, target, tokens, lengths)
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
        from dlbook.viz import render_html

        return head + render_html(self.words, self.scores, max_abs=max_abs)

    def _repr_html_(self) -> str:
        from dlbook.viz import attribution_legend

        legend = attribution_legend(self._name(self.target))
        return f"<div style='line-height:2.0'>{self.to_html()}</div>{legend}"


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
        >>> from dlbook.models.rnn_classifier import RNNClassifier, RNNClassifierConfig
        >>> model = RNNClassifier(RNNClassifierConfig.tiny(vocab_size=20))
        >>> [item] = explain_text(model, torch.tensor([[4, 5]]), torch.tensor([2]), [["a", "film"]], target=1)
        >>> item.words, item.target
        (['a', 'film'], 1)
    """
    tokens, lengths = check_token_batch(tokens, lengths)
    if len(words) != tokens.shape[0]:
        raise ValueError(f"{len(words)} word lists for {tokens.shape[0]} sentences")
    with explaining(model), torch.no_grad():
        probs = model(tokens.to(model_device(model)), lengths).float().softmax(dim=1).cpu()
    pred = probs.argmax(dim=1)
    target_t = pred if target is None else resolve_target(target, probs)
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


__all__ = ["word_attributions", "WordAttribution", "explain_text"]
