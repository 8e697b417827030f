"""Models, one family per file, and the conventions they share.

Families (import from the family's module, e.g. ``from dlbook.models.lenet import LeNet5``):

* ``lenet``: LeNet-5 (chapter 3.1); ``vgg``: VGG as data (chapter 4.1);
* ``rnn``: the vanilla RNN, LSTM and GRU written out, one step at a time (chapter 3.2);
* ``rnn_classifier``: ``RNNClassifier`` (tokens → label, with ``pooling`` and
  ``embedding_dropout``) and ``SequenceRegressor`` on PyTorch's fused RNNs (3.2, 4.2);
* ``transformer``: attention, heads, positions, the encoder block (chapter 3.3);
* ``transformer_classifier``: ``TransformerClassifier`` (chapter 3.3);
* ``pretrained``: a pretrained MiniLM encoder with a linear head (chapter 4.2).

Conventions, the same in every family:

* **Configs** are ``@dataclass`` es whose fields say why each default was chosen,
  validated in ``__post_init__`` (with :func:`check_config`), with a ``tiny()``
  classmethod preset for tests.
* **Parameters** are counted with :func:`count_parameters`.
* **PyTorch's weights** are loaded into ours with a ``load_from_torch(theirs)`` method
  that returns ``self``: ``ours = GRU(3, 4).load_from_torch(nn.GRU(3, 4, batch_first=True))``.
* **Padding**: token id ``dlbook.data.text.PAD_INDEX`` (0) everywhere.

Example:
    >>> from torch import nn
    >>> count_parameters(nn.Linear(3, 2))
    8
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from torch import nn


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """The number of parameters of ``model`` (only those with ``requires_grad`` if ``trainable_only``).

    Example:
        >>> layer = nn.Linear(3, 2)
        >>> _ = layer.bias.requires_grad_(False)
        >>> count_parameters(layer), count_parameters(layer, trainable_only=True)
        (8, 6)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"count_parameters needs an nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def check_config(config: Any, *, positive: Sequence[str] = (), fractions: Sequence[str] = (),
                 choices: Mapping[str, Sequence[Any]] | None = None) -> None:
    """Validate a config's fields in its ``__post_init__``; the error names the config and the field.

    Args:
        config: the dataclass instance.
        positive: fields that must be integers >= 1 (sizes, counts).
        fractions: fields that must lie in ``[0, 1)`` (dropout rates).
        choices: ``{field: allowed values}``.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class Cfg:
        ...     width: int = 0
        ...     def __post_init__(self):
        ...         check_config(self, positive=("width",))
        >>> Cfg()
        Traceback (most recent call last):
        ...
        ValueError: Cfg.width=0 must be an integer >= 1
    """
    name = type(config).__name__
    for field in positive:
        value = getattr(config, field)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}.{field}={value!r} must be an integer >= 1")
    for field in fractions:
        value = getattr(config, field)
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name}.{field}={value!r} must be in [0, 1) (a dropout rate)")
    for field, allowed in (choices or {}).items():
        value = getattr(config, field)
        if value not in allowed:
            raise ValueError(f"{name}.{field}={value!r}; choose one of {tuple(allowed)}")


__all__ = ["count_parameters", "check_config"]
