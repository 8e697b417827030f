"""An RNN sentence classifier that reads the final states *and* max-pools over time.

Papers:
    Conneau et al., "Supervised Learning of Universal Sentence Representations from
    Natural Language Inference Data", EMNLP 2017: a BiLSTM with max-pooling over time
    was their best sentence encoder.
    Gal & Ghahramani, "A Theoretically Grounded Application of Dropout in Recurrent
    Neural Networks", NeurIPS 2016: dropout on the word embeddings.

:class:`dlbook.models.rnn.RNNClassifier` classifies from the last layer's final
states (forward direction at the last word, backward direction at the first). On
small data sets such as SST-2 a word that decides the sentiment in the middle of a
long sentence has to survive many recurrent steps to reach those states. Max-pooling
the outputs of every time step gives the head a direct path to each position; the
final states are kept as well. This subclass adds that, and dropout on the
embeddings, as two config fields; everything else (packing, the ``embedding``
submodule that Captum attributes to, input checks) is inherited.

Example:
    >>> import torch
    >>> model = PooledRNNClassifier(PooledRNNClassifierConfig.tiny(vocab_size=20))
    >>> model(torch.tensor([[5, 6, 7], [8, 9, 0]]), torch.tensor([3, 2])).shape
    torch.Size([2, 2])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from dlbook.models.rnn import RNNClassifier, RNNClassifierConfig, _last_layer_state

POOLINGS = ("last", "max", "last+max")


@dataclass
class PooledRNNClassifierConfig(RNNClassifierConfig):
    """:class:`~dlbook.models.rnn.RNNClassifierConfig` plus two fields.

    Attributes:
        pooling: ``"last"`` (the final states, as ``RNNClassifier``), ``"max"`` (the
            element-wise maximum of the outputs over the real time steps) or
            ``"last+max"`` (both, concatenated: the head sees ``2 * D * H`` features).
        embedding_dropout: dropout on the word vectors before the RNN (0: none).
    """

    pooling: str = "last+max"
    embedding_dropout: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling={self.pooling!r}; choose one of {POOLINGS}")
        if not 0.0 <= self.embedding_dropout < 1.0:
            raise ValueError(f"embedding_dropout={self.embedding_dropout} must be in [0, 1)")


class PooledRNNClassifier(RNNClassifier):
    """Embedding → dropout → packed (Bi)LSTM/GRU → [final states ; max over time] → dropout → linear.

    Args:
        config: see :class:`PooledRNNClassifierConfig`.

    Example:
        >>> cfg = PooledRNNClassifierConfig.tiny(vocab_size=20, pooling="max")
        >>> PooledRNNClassifier(cfg).head.in_features      # D * H = 2 * 6
        12
    """

    def __init__(self, config: PooledRNNClassifierConfig):
        super().__init__(config)
        width = self.num_directions * config.hidden_size
        self.embedding_dropout = nn.Dropout(config.embedding_dropout)
        if config.pooling == "last+max":
            self.head = nn.Linear(2 * width, config.num_classes)

    def encode(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """The sentence vector before dropout and the head: ``(B, D * H)`` or ``(B, 2 * D * H)``."""
        lengths = self._check(tokens, lengths)
        embedded = self.embedding_dropout(self.embedding(tokens))  # (B, T, E)
        packed = pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
        outputs, state = self.rnn(packed)
        h_n = state[0] if isinstance(state, tuple) else state  # LSTM returns (h_n, c_n)
        parts = []
        if self.config.pooling in ("last", "last+max"):
            parts.append(_last_layer_state(h_n, self.config.num_layers, self.num_directions))  # (B, D * H)
        if self.config.pooling in ("max", "last+max"):
            padded, _ = pad_packed_sequence(outputs, batch_first=True,
                                            padding_value=torch.finfo(outputs.data.dtype).min)  # (B, T', D * H)
            parts.append(padded.max(dim=1).values)  # (B, D * H); padding never wins the max
        return torch.cat(parts, dim=1)


__all__ = ["PooledRNNClassifierConfig", "PooledRNNClassifier", "POOLINGS"]
