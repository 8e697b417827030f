"""What the text and image attributions share: the score explained, the target, eval mode, checks."""

from __future__ import annotations

import contextlib
import numbers
from typing import Callable, Iterator

import torch
from torch import Tensor, nn

from dlbook.train.inference import eval_mode

SCORES = ("logit", "log_odds", "prob")


def _check_score(score: str) -> None:
    if score not in SCORES:
        raise ValueError(f"score={score!r}; use one of {SCORES}")


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
    _check_score(score)
    if logits.dim() != 2:
        raise ValueError(f"the model must return logits (B, K); got shape {tuple(logits.shape)}")
    if score != "log_odds":
        return logits if score == "logit" else logits.softmax(dim=1)
    k = logits.shape[1]
    if k < 2:
        raise ValueError("log_odds needs at least two classes")
    others = logits.unsqueeze(1).expand(-1, k, -1)  # (B, K, K): row k holds all logits
    mask = torch.eye(k, dtype=torch.bool, device=logits.device).unsqueeze(0)  # (1, K, K)
    others = others.masked_fill(mask, float("-inf"))
    return logits - torch.logsumexp(others, dim=2)  # (B, K)


def scored_forward(model: nn.Module, score: str) -> Callable[..., Tensor]:
    """``model`` followed by :func:`class_scores`: the function Captum differentiates."""
    _check_score(score)  # now, not at Captum's first call

    def forward(*args):
        return class_scores(model(*args), score)

    return forward


def scored_forward_and_target(model: nn.Module, score: str, target, *inputs) -> tuple[Callable[..., Tensor], Tensor]:
    """:func:`scored_forward` and the ``(B,)`` targets it explains (:func:`resolve_target` on one pass over ``inputs``)."""
    forward = scored_forward(model, score)
    with torch.no_grad():
        return forward, resolve_target(target, forward(*inputs))


@contextlib.contextmanager
def explaining(model: nn.Module) -> Iterator[nn.Module]:
    """:func:`dlbook.train.eval_mode`, with cuDNN off: cuDNN RNNs run backward only in training mode."""
    with eval_mode(model), torch.backends.cudnn.flags(enabled=False):
        yield model


def resolve_target(target, logits: Tensor) -> Tensor:
    """A ``(B,)`` int64 target: None -> the predicted class; an int -> the same class for all.

    A non-integer target (``1.7``, a float tensor) is an error, never rounded.
    """
    batch, k = logits.shape
    if target is None:
        return logits.argmax(dim=1)
    if isinstance(target, bool) or (isinstance(target, numbers.Number) and not isinstance(target, numbers.Integral)):
        raise ValueError(f"target={target!r} is not a class index: pass an int in [0, {k - 1}], one per example, "
                         "or None for the predicted class")
    raw = torch.as_tensor(target)
    if raw.dtype.is_floating_point or raw.dtype.is_complex or raw.dtype == torch.bool:
        raise ValueError(f"target must hold integer class indices, got {raw.dtype} {raw.tolist()}; pass ints in "
                         f"[0, {k - 1}] or None for the predicted class")
    target = raw.to(device=logits.device, dtype=torch.int64).reshape(-1)
    if target.numel() == 1:
        target = target.expand(batch)
    if target.shape[0] != batch:
        raise ValueError(f"target has {target.shape[0]} entries for a batch of {batch}; pass one per example, "
                         "a single int, or None for the predicted class")
    if int(target.min()) < 0 or int(target.max()) >= k:
        raise ValueError(f"target must lie in [0, {k - 1}] (the model has {k} classes); got {target.tolist()}")
    return target.contiguous()


def check_n_steps(n_steps: int) -> None:
    """Integrated Gradients needs an integer number of steps >= 2 (50 is typical)."""
    if isinstance(n_steps, bool) or not isinstance(n_steps, numbers.Integral) or n_steps < 2:
        raise ValueError(f"n_steps={n_steps!r}; integrate with an integer number of steps >= 2 (50 is typical)")


def check_submodule(model: nn.Module, layer: nn.Module, hint: str) -> None:
    """An error (ending with ``hint``) if ``layer`` is not inside ``model``: its attributions would all be zero."""
    if not any(m is layer for m in model.modules()):
        raise ValueError(f"layer is not a submodule of model: attributions would all be zero; {hint}")
