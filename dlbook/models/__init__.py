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
* **Parameters** are counted with :func:`count_parameters`, forward FLOPs with :func:`count_flops`.
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

import torch
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


def count_flops(model: nn.Module, *example_inputs: Any) -> int:
    """Floating-point operations of one forward pass of ``model`` on ``example_inputs``, in eval mode.

    Counted by PyTorch's ``torch.utils.flop_counter.FlopCounterMode``, which charges a
    multiply-add as 2 FLOPs and counts only the matrix products and convolutions (the
    operations that dominate): a ``Linear(i, o)`` on a batch of ``B`` rows costs ``2 * B * i * o``,
    a ``Conv2d`` ``2 * B * H_out * W_out * C_out * C_in * k_h * k_w / groups``; biases,
    activations, pooling, normalisation and embedding lookups count 0. The total is for the
    whole batch given: divide by its size for a per-example figure. A training step costs
    about 3x the forward pass (the backward pass computes two products per forward one).
    The model runs under ``torch.no_grad()`` in eval mode (each submodule's flag is
    restored afterwards), so dropout and BatchNorm statistics are untouched.

    Args:
        model: the network.
        example_inputs: the positional arguments of ``model(...)``, e.g. one image batch, or
            ``tokens, lengths`` for the text classifiers.

    Returns:
        The number of FLOPs, an int.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
        ValueError: no example inputs; the forward pass fails on them (the message shows their
            shapes); or a recurrent layer ran a fused kernel the counter cannot see (PyTorch's
            CPU ``nn.LSTM`` on an unpacked batch, or on a packed batch of equal lengths), which
            would make the total silently too low.

    Example:
        >>> count_flops(nn.Linear(3, 5), torch.zeros(7, 3))          # 2 * 7 * 3 * 5
        210
        >>> count_flops(nn.Conv2d(2, 4, 3, padding=1), torch.zeros(1, 2, 6, 6))   # 2 * 36 * 4 * 2 * 9
        5184
    """
    from torch.utils.flop_counter import FlopCounterMode

    from dlbook.train.inference import eval_mode  # here, not at the top: dlbook.train is the heavier package

    if not isinstance(model, nn.Module):
        raise TypeError(f"count_flops needs an nn.Module, got {type(model).__name__}")
    if not example_inputs:
        raise ValueError("count_flops needs example inputs to run the model on, e.g. "
                         "count_flops(model, torch.zeros(1, 1, 28, 28)) or count_flops(model, tokens, lengths)")
    counter = FlopCounterMode(display=False)
    totals_before: dict[str, int] = {}
    unseen: list[str] = []
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, nn.RNNBase):      # a fused recurrent kernel may be invisible to the counter
            name = name or type(module).__name__

            def before(mod, args, name=name):
                totals_before[name] = counter.get_total_flops()

            def after(mod, args, output, name=name):
                if counter.get_total_flops() == totals_before[name] and name not in unseen:
                    unseen.append(name)
            hooks += [module.register_forward_pre_hook(before), module.register_forward_hook(after)]
    try:
        with eval_mode(model), torch.no_grad(), counter:
            model(*example_inputs)
    except Exception as exc:
        shapes = [tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__ for x in example_inputs]
        raise ValueError(f"count_flops could not run {type(model).__name__} on inputs {shapes}: {exc}; pass the "
                         "arguments of one forward call, with a batch dimension") from exc
    finally:
        for hook in hooks:
            hook.remove()
    if unseen:
        raise ValueError(f"the recurrent layer(s) {unseen} ran a fused kernel that FlopCounterMode counts as 0 FLOPs "
                         "(PyTorch's CPU nn.LSTM does on an unpacked batch, and on a packed one whose sequences all "
                         "have the same length), so the total would be too low; pass a PackedSequence of sequences of "
                         "different lengths (a real batch for dlbook.models.rnn_classifier.RNNClassifier) or count "
                         "them by hand")
    return int(counter.get_total_flops())


__all__ = ["count_parameters", "count_flops", "check_config"]
