"""Recurrent models for real data, on PyTorch's fused ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN``.

Papers:
    Conneau et al., "Supervised Learning of Universal Sentence Representations from
    Natural Language Inference Data", EMNLP 2017: a BiLSTM with max-pooling over time
    was their best sentence encoder.
    Gal & Ghahramani, "A Theoretically Grounded Application of Dropout in Recurrent
    Neural Networks", NeurIPS 2016: dropout on the word embeddings.

* :class:`RNNClassifier`: tokens → label (SST-2, chapters 3.2 and 4.2). Padded batches
  are packed, so the padding never reaches the recurrence. The sentence vector is the
  last layer's final states (``pooling="last"``: the forward direction at the last
  word, the backward one at the first), or a mean or maximum over the outputs of
  every real time step, or the final states and the maximum together. On small
  data sets a word that decides the sentiment in the middle of a long sentence has
  to survive many recurrent steps to reach the final states; pooling over time
  gives the head a direct path to each position.
* :class:`SequenceRegressor`: a window of a time series → the next value(s).

The step-by-step equations behind these layers are in :mod:`dlbook.models.rnn`.

Example:
    >>> import torch
    >>> model = RNNClassifier(RNNClassifierConfig.tiny(vocab_size=20, pooling="last+max"))
    >>> model(torch.tensor([[5, 6, 7], [8, 9, 0]]), torch.tensor([3, 2])).shape
    torch.Size([2, 2])
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from dlbook.data.text import PAD_INDEX, check_token_batch, masked_mean, padding_mask
from dlbook.models import check_config

CELLS = ("lstm", "gru", "rnn")
POOLINGS = ("last", "mean", "max", "last+max")
_TORCH_RNN = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


def _last_layer_state(h_n: Tensor, num_layers: int, num_directions: int) -> Tensor:
    """The last layer's final hidden state, both directions concatenated: ``(B, D * H)``.

    ``h_n`` from ``nn.LSTM``/``nn.GRU``/``nn.RNN`` is ``(L * D, B, H)``, layers outermost.
    """
    _, batch, hidden = h_n.shape
    last = h_n.view(num_layers, num_directions, batch, hidden)[-1]  # (D, B, H)
    return last.transpose(0, 1).reshape(batch, num_directions * hidden)  # (B, D, H) -> (B, D * H)


@dataclass
class RNNClassifierConfig:
    """Sizes of an :class:`RNNClassifier`; the defaults suit SST-2 trained from scratch on a CPU.

    The padding token is ``dlbook.data.text.PAD_INDEX`` (``Vocab``'s ``<pad>``); its embedding stays zero.
    """

    vocab_size: int  # rows of the embedding table, from the training vocabulary (required)
    embedding_dim: int = 128  # plenty for ~15k SST-2 word types without pretrained vectors
    hidden_size: int = 128  # per direction; trains in seconds per epoch on two CPU cores
    num_layers: int = 1  # a second layer rarely helps on 6,920 sentences
    # A sentence's last word is not its most important one: a backward pass that ends
    # at the first word gives the classifier both ends.
    bidirectional: bool = True
    cell: str = "lstm"  # "lstm", "gru" or "rnn" (the vanilla tanh RNN)
    # On the sentence vector before the head (and between layers when num_layers > 1);
    # 0.5 as in Kim (2014) for small text sets.
    dropout: float = 0.5
    num_classes: int = 2  # 2 for SST-2, 5 for SST-5
    # The sentence vector: "last" (the final states; chapter 3.2), "mean" or "max" over the
    # outputs of the real time steps, or "last+max" (both: the head sees 2 * D * H features).
    pooling: str = "last"
    # Dropout on the word vectors before the RNN: none by default; 0.5 in chapter 4.2,
    # where the embeddings over-fit first.
    embedding_dropout: float = 0.0

    def __post_init__(self) -> None:
        check_config(self, positive=("vocab_size", "embedding_dim", "hidden_size", "num_layers", "num_classes"),
                     fractions=("dropout", "embedding_dropout"), choices={"cell": CELLS, "pooling": POOLINGS})

    @classmethod
    def tiny(cls, vocab_size: int = 50, **overrides) -> "RNNClassifierConfig":
        """A few thousand parameters, for tests."""
        return replace(cls(vocab_size=vocab_size, embedding_dim=8, hidden_size=6, dropout=0.0), **overrides)


class RNNClassifier(nn.Module):
    """Embedding → dropout → packed LSTM/GRU/RNN → pooling → dropout → linear.

    Padded batches are packed with ``pack_padded_sequence(..., enforce_sorted=False)``, so
    each sentence's recurrence stops at its own last word and a padded batch gives the
    same logits as one sentence at a time. The embedding is the submodule ``embedding``
    (the layer Captum's ``LayerIntegratedGradients`` attributes to).

    Args:
        config: sizes; see :class:`RNNClassifierConfig`.

    Example:
        >>> model = RNNClassifier(RNNClassifierConfig.tiny(vocab_size=20))
        >>> tokens = torch.tensor([[5, 6, 7], [8, 9, 0]])       # (B, T), 0 = <pad>
        >>> model(tokens, torch.tensor([3, 2])).shape              # logits (B, C)
        torch.Size([2, 2])
        >>> RNNClassifier(RNNClassifierConfig.tiny(vocab_size=20, pooling="last+max")).head.in_features
        24
    """

    def __init__(self, config: RNNClassifierConfig):
        super().__init__()
        self.config = c = config
        self.num_directions = 2 if c.bidirectional else 1
        self.embedding = nn.Embedding(c.vocab_size, c.embedding_dim, padding_idx=PAD_INDEX)
        self.embedding_dropout = nn.Dropout(c.embedding_dropout)
        self.rnn = _TORCH_RNN[c.cell](c.embedding_dim, c.hidden_size, num_layers=c.num_layers,
                                      batch_first=True, bidirectional=c.bidirectional,
                                      dropout=c.dropout if c.num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(c.dropout)
        width = self.num_directions * c.hidden_size * (2 if c.pooling == "last+max" else 1)
        self.head = nn.Linear(width, c.num_classes)

    def encode(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """The sentence vector before dropout and the head: ``(B, D * H)`` (``(B, 2 * D * H)`` for last+max)."""
        tokens, lengths = check_token_batch(tokens, lengths)  # lengths: CPU int64, as packing wants
        embedded = self.embedding_dropout(self.embedding(tokens))  # (B, T, E)
        packed = pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
        outputs, state = self.rnn(packed)
        pooling = self.config.pooling
        parts = []
        if pooling in ("last", "last+max"):
            h_n = state[0] if isinstance(state, tuple) else state  # LSTM returns (h_n, c_n)
            parts.append(_last_layer_state(h_n, self.config.num_layers, self.num_directions))  # (B, D * H)
        if pooling in ("max", "last+max"):
            padded, _ = pad_packed_sequence(outputs, batch_first=True,
                                            padding_value=torch.finfo(outputs.data.dtype).min)  # (B, T', D * H)
            parts.append(padded.max(dim=1).values)  # (B, D * H); padding never wins the max
        if pooling == "mean":
            padded, _ = pad_packed_sequence(outputs, batch_first=True)  # (B, T', D * H)
            keep = padding_mask(lengths.to(padded.device), max_len=padded.shape[1])  # (B, T')
            parts.append(masked_mean(padded, keep))  # (B, D * H)
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """Logits ``(B, num_classes)`` for padded ``tokens`` ``(B, T)`` with true ``lengths`` ``(B,)``."""
        return self.head(self.dropout(self.encode(tokens, lengths)))


@dataclass
class SequenceRegressorConfig:
    """Sizes of a :class:`SequenceRegressor`; defaults suit a univariate yearly series of a few hundred points."""

    input_size: int = 1  # features per time step (1 for a univariate series)
    hidden_size: int = 32  # a few hundred training windows cannot feed a bigger network
    num_layers: int = 1  # one layer is enough for a series this short
    cell: str = "gru"  # fewer parameters than an LSTM and trains as well here; or "lstm", "rnn"
    dropout: float = 0.0  # between layers only (needs num_layers > 1)
    output_size: int = 1  # how many future values to predict at once (the horizon)

    def __post_init__(self) -> None:
        check_config(self, positive=("input_size", "hidden_size", "num_layers", "output_size"),
                     fractions=("dropout",), choices={"cell": CELLS})

    @classmethod
    def tiny(cls, **overrides) -> "SequenceRegressorConfig":
        """A few hundred parameters, for tests."""
        return replace(cls(hidden_size=8), **overrides)


class SequenceRegressor(nn.Module):
    """Many-to-one regression: a window ``(B, T, F)`` → the next ``output_size`` values ``(B, output_size)``.

    The recurrent layer reads the window; the last layer's final hidden state goes
    through a linear head. Train it with squared loss (``nn.MSELoss``) on scaled data.

    Args:
        config: sizes; see :class:`SequenceRegressorConfig`.

    Example:
        >>> model = SequenceRegressor(SequenceRegressorConfig.tiny())
        >>> model(torch.randn(4, 12, 1)).shape
        torch.Size([4, 1])
    """

    def __init__(self, config: SequenceRegressorConfig):
        super().__init__()
        self.config = c = config
        self.rnn = _TORCH_RNN[c.cell](c.input_size, c.hidden_size, num_layers=c.num_layers, batch_first=True,
                                      dropout=c.dropout if c.num_layers > 1 else 0.0)
        self.head = nn.Linear(c.hidden_size, c.output_size)

    def forward(self, x: Tensor) -> Tensor:
        """Predictions ``(B, output_size)`` for windows ``x`` of shape ``(B, T, input_size)``."""
        if x.dim() != 3 or x.shape[2] != self.config.input_size:
            raise ValueError(f"SequenceRegressor expects (B, T, {self.config.input_size}) inputs, got "
                             f"{tuple(x.shape)}; a univariate series needs x.unsqueeze(-1)")
        _, state = self.rnn(x)
        h_n = state[0] if isinstance(state, tuple) else state  # (L, B, H)
        return self.head(h_n[-1])


__all__ = ["CELLS", "POOLINGS", "RNNClassifierConfig", "RNNClassifier", "SequenceRegressorConfig",
           "SequenceRegressor"]
