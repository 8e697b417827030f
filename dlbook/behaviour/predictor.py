"""Any ``model(tokens, lengths)`` text classifier, with its encoding, as a function ``texts -> probabilities``."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from dlbook.data.text import PAD_INDEX


class TextPredictor:
    """Wrap a ``model(tokens, lengths) -> logits`` classifier and its encoding as ``texts -> probabilities``.

    Args:
        model: the classifier (run in eval mode for every call, its training flags restored after).
        encode: ``text -> (ids, shown)``: the token ids the model reads and the tokens to
            show for them (same length), e.g. from :meth:`for_vocab` or :meth:`for_wordpiece`.
            Batches are padded with ``dlbook.data.text.PAD_INDEX``.
        class_names: for display.
        batch_size: texts per forward pass.
        precision: of the predictions, as in :func:`dlbook.train.predict`: ``"fp32"`` (default,
            exact), ``"bf16"`` (as the Trainer runs on a CPU that supports it), ``"fp16"`` or ``"auto"``.
        baseline_index: the token of the Integrated Gradients baseline in :meth:`explain`
            (default: ``PAD_INDEX``, ``<pad>``).
        keep_tokens: token ids kept as they are in that baseline (e.g. ``[CLS]``, ``[SEP]``).

    Example:
        >>> from dlbook.data.text import Vocab, tokenize
        >>> from dlbook.models.rnn_classifier import RNNClassifier, RNNClassifierConfig
        >>> vocab = Vocab.build([tokenize("a good film"), tokenize("a bad film")])
        >>> predictor = TextPredictor.for_vocab(RNNClassifier(RNNClassifierConfig.tiny(len(vocab))), vocab)
        >>> predictor(["A good film!", "a bad one"]).shape
        torch.Size([2, 2])
    """

    def __init__(self, model: nn.Module, encode: Callable[[str], tuple[list[int], list[str]]],
                 class_names: Sequence[str] = ("negative", "positive"), batch_size: int = 256,
                 precision: str = "fp32", baseline_index: int | None = None, keep_tokens: Sequence[int] = ()):
        from dlbook.train.device import autocast_dtype

        autocast_dtype("cpu", precision)  # a bad name fails here, not at the first prediction
        self.model, self.encode, self.precision = model, encode, precision
        self.class_names, self.batch_size = tuple(class_names), int(batch_size)
        self.baseline_index = PAD_INDEX if baseline_index is None else baseline_index
        self.keep_tokens = tuple(keep_tokens)

    @classmethod
    def for_vocab(cls, model: nn.Module, vocab, tokenize: Callable[[str], list[str]] | None = None,
                  **kwargs) -> "TextPredictor":
        """For models over a word :class:`~dlbook.data.text.Vocab`; unknown words are shown as ``word*``.

        Pass ``baseline_index=vocab.unk_index`` for an all-``<unk>`` attribution baseline.
        """
        if tokenize is None:
            from dlbook.data.text import tokenize

        def encode(text: str) -> tuple[list[int], list[str]]:
            words = tokenize(text)
            return vocab.encode(words), [w if w in vocab else f"{w}*" for w in words]

        return cls(model, encode, **kwargs)

    @classmethod
    def for_wordpiece(cls, model: nn.Module, tokenizer, max_length: int = 64, **kwargs) -> "TextPredictor":
        """For :class:`~dlbook.models.pretrained.EncoderClassifier` and its WordPiece tokenizer.

        The attribution baseline keeps ``[CLS]`` and ``[SEP]`` and replaces the other pieces
        by ``[PAD]`` (pass ``baseline_index=tokenizer.unk_token_id`` for ``[UNK]``).
        """
        from dlbook.models.pretrained import encode_texts

        if tokenizer.pad_token_id not in (None, PAD_INDEX):
            raise ValueError(f"the tokenizer pads with id {tokenizer.pad_token_id}, but dlbook pads with "
                             f"PAD_INDEX={PAD_INDEX} (dlbook.data.text); use a tokenizer whose [PAD] id is 0")

        def encode(text: str) -> tuple[list[int], list[str]]:
            [ids] = encode_texts(tokenizer, [text], max_length=max_length)
            return ids, list(tokenizer.convert_ids_to_tokens(ids))

        kwargs.setdefault("keep_tokens", (tokenizer.cls_token_id, tokenizer.sep_token_id))
        return cls(model, encode, **kwargs)

    def batch(self, texts: Sequence[str]) -> tuple[Tensor, Tensor, list[list[str]]]:
        """``(tokens (B, T), lengths (B,), shown tokens)`` for ``texts``; empty texts are an error."""
        from dlbook.data.text import pad_batch

        if isinstance(texts, str):
            raise TypeError("pass a list of texts; wrap a single text as [text]")
        blank = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
        if blank:
            raise ValueError(f"text {blank[0]} ({texts[blank[0]]!r}) is empty: there is nothing to classify")
        encoded = [self.encode(t) for t in texts]
        empty = [i for i, (ids, _) in enumerate(encoded) if len(ids) == 0]
        if empty:
            raise ValueError(f"text {empty[0]} ({texts[empty[0]]!r}) has no tokens: there is nothing to classify")
        tokens, lengths = pad_batch([ids for ids, _ in encoded])
        return tokens, lengths, [shown for _, shown in encoded]

    def __call__(self, texts: Sequence[str]) -> Tensor:
        """Class probabilities ``(N, K)`` on the CPU."""
        from dlbook.train.inference import predict

        texts = list(texts)
        if not texts:
            raise ValueError("no texts to predict")

        def batches():
            for start in range(0, len(texts), self.batch_size):
                tokens, lengths, _ = self.batch(texts[start:start + self.batch_size])
                yield (tokens, lengths), torch.zeros(len(lengths))

        logits, _ = predict(self.model, batches(), precision=self.precision)
        return logits.softmax(dim=1)

    def predict(self, texts: Sequence[str]) -> Tensor:
        """Predicted classes ``(N,)``."""
        return self(texts).argmax(dim=1)

    def explain(self, texts: Sequence[str], labels: Sequence[int] | None = None, target=None, **kwargs):
        """Predict and explain: one :class:`dlbook.interpret.WordAttribution` per text.

        ``kwargs`` go to :func:`dlbook.interpret.word_attributions` (``score``, ``n_steps``,
        ``baseline_index`` to override this predictor's baseline, ...).
        """
        from dlbook.interpret import explain_text

        kwargs.setdefault("baseline_index", self.baseline_index)
        kwargs.setdefault("keep_tokens", self.keep_tokens)
        tokens, lengths, shown = self.batch(list(texts))
        return explain_text(self.model, tokens, lengths, shown, target=target, labels=labels,
                            class_names=self.class_names, **kwargs)


__all__ = ["TextPredictor"]
