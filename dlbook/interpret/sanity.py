"""Sanity checks for saliency maps: the cascading model-parameter randomisation test.

Paper: Adebayo, Gilmer, Muelly, Goodfellow, Hardt & Kim, "Sanity Checks for Saliency
Maps", NeurIPS 2018 (section 3, "cascading randomization").

An explanation that is meant to say what the *model* learned must change when the
model's weights are destroyed. The test re-initialises the layers from the top (the
output layer) down, cumulatively: stage 1 randomises the last layer, stage 2 the last
two, ..., the last stage every layer. After each stage it recomputes the attribution
maps and measures how similar they still are to the original maps with the Spearman
rank correlation, per example, of the **absolute** attributions (the paper's default;
pass ``absolute=False`` for the signed maps). A method whose maps stay correlated near
1 all the way down explains the input, not the model: an edge detector passes as a
saliency method only by looking at it.

Captum has no such test. Any attribution function works: it receives the (copied,
partly randomised) model and returns maps ``(B, ...)``, e.g. one of
:mod:`dlbook.interpret.image`'s functions with the images and a fixed target bound in.
Fix the target (the true labels or the original model's predictions): with
``target=None`` each randomised model would explain its own, different prediction.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from dlbook.interpret import integrated_gradients
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3))
    >>> images = torch.randn(2, 1, 8, 8)
    >>> result = cascading_randomization(net, lambda m: integrated_gradients(m, images, target=0, n_steps=8))
    >>> result.layers
    ['3', '0']
    >>> result.spearman.shape  # (stages, images)
    torch.Size([2, 2])
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

Attribution = Callable[[nn.Module], Tensor]


@dataclass(frozen=True)
class RandomizationResult:
    """The outcome of :func:`cascading_randomization`.

    ``layers[s]`` is the layer re-initialised at stage ``s + 1`` (top first); stage ``s + 1``
    has ``layers[: s + 1]`` randomised. ``spearman`` is ``(stages, B)``: per stage and
    example, the rank correlation with the original map (NaN where a map is constant, e.g.
    an all-zero Grad-CAM). ``maps[0]`` holds the original maps, ``maps[s]`` those of stage ``s``.
    """

    layers: list[str]
    spearman: Tensor
    maps: list[Tensor] = field(repr=False)
    absolute: bool = True

    @property
    def mean_spearman(self) -> Tensor:
        """``(stages,)`` mean over the examples (ignoring NaN), the curve the paper plots."""
        return torch.nanmean(self.spearman, dim=1)

    def to_dict(self) -> dict[str, float]:
        """``{layer: mean correlation after randomising it and every layer above it}``, in stage order.

        Example:
            >>> r = RandomizationResult(["fc"], torch.tensor([[0.5, 0.7]], dtype=torch.float64), [])
            >>> r.to_dict()
            {'fc': 0.6}
        """
        return {name: value for name, value in zip(self.layers, self.mean_spearman.tolist())}


def randomizable_layers(model: nn.Module) -> list[str]:
    """Names of the submodules that hold parameters of their own, in the order they were registered.

    For a ``Sequential`` (and most models) that is input-to-output order;
    :func:`cascading_randomization` walks it backwards.

    Example:
        >>> randomizable_layers(nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)))
        ['0', '2']
    """
    return [name or "(model)" for name, m in model.named_modules() if any(True for _ in m.parameters(recurse=False))]


def spearman_per_example(a: Tensor, b: Tensor, absolute: bool = True) -> Tensor:
    """Spearman rank correlation between ``a[i]`` and ``b[i]`` (flattened) for each example ``i``: ``(B,)``.

    Ranks average over ties; a constant map gives NaN (its ranks carry no order).

    Example:
        >>> spearman_per_example(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[10.0, 20.0, 30.0]]))
        tensor([1.], dtype=torch.float64)
    """
    from scipy.stats import rankdata

    a, b = torch.as_tensor(a).detach().cpu().double(), torch.as_tensor(b).detach().cpu().double()
    if a.shape != b.shape or a.dim() < 2:
        raise ValueError(f"maps must share one shape (B, ...) with B examples, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    if absolute:
        a, b = a.abs(), b.abs()
    ra = rankdata(a.reshape(len(a), -1).numpy(), axis=1)
    rb = rankdata(b.reshape(len(b), -1).numpy(), axis=1)
    ra, rb = ra - ra.mean(1, keepdims=True), rb - rb.mean(1, keepdims=True)
    denom = np.sqrt((ra**2).sum(1) * (rb**2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(denom > 0, (ra * rb).sum(1) / np.where(denom > 0, denom, 1.0), np.nan)
    return torch.from_numpy(rho)


def _named(model: nn.Module) -> dict[str, nn.Module]:
    """``named_modules()`` with the model itself under ``"(model)"``, as :func:`randomizable_layers` names it."""
    return {name or "(model)": m for name, m in model.named_modules()}


def _check_layers(model: nn.Module, layers: Sequence[str] | None) -> list[str]:
    available = randomizable_layers(model)
    if not available:
        raise ValueError(f"{type(model).__name__} has no layer with parameters, so there is nothing to randomise; "
                         "the randomisation test needs a model with learned weights")
    if layers is None:
        return available[::-1]  # top (output) first
    if isinstance(layers, str):
        raise ValueError(f"layers={layers!r} is one string; pass a list of layer names, e.g. [{layers!r}]")
    layers = list(layers)
    if not layers:
        raise ValueError(f"layers is empty; pass names to randomise, top first, from {available[::-1]}, or None "
                         "for all of them")
    modules = _named(model)
    for name in layers:
        if name not in modules:
            raise ValueError(f"{name!r} is not a submodule of {type(model).__name__}; choose from {available[::-1]} "
                             "(top first), or a block that contains them")
        if not any(True for _ in modules[name].parameters()):
            raise ValueError(f"layer {name!r} ({type(modules[name]).__name__}) has no parameters to randomise; "
                             f"choose from {available[::-1]}")
    if len(set(layers)) != len(layers):
        raise ValueError(f"layers lists a name twice: {layers}; each layer is randomised once")
    return layers


def _reinitialise(module: nn.Module) -> None:
    """Re-draw every parameter inside ``module``: ``reset_parameters()`` (PyTorch's initialisation) where a
    layer has one, else a normal with the parameter's own standard deviation, truncated at two."""
    for sub in module.modules():
        own = list(sub.parameters(recurse=False))
        if not own:
            continue
        if hasattr(sub, "reset_parameters"):
            sub.reset_parameters()
            continue
        with torch.no_grad():
            for p in own:
                std = p.float().std().item() if p.numel() > 1 else 0.0
                std = std if math.isfinite(std) and std > 0 else 0.01
                nn.init.trunc_normal_(p, std=std, a=-2 * std, b=2 * std)


def _attribute(attribute: Attribution, model: nn.Module, seed: int, stage: str) -> Tensor:
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # the same noise for noisy methods (SmoothGrad, NoiseTunnel) at every stage
        maps = attribute(model)
    if not isinstance(maps, Tensor):
        raise TypeError(f"the attribution function returned {type(maps).__name__} ({stage}); it must return the "
                        "maps as a tensor (B, ...)")
    if maps.dim() < 2 or maps.shape[0] == 0:
        raise ValueError(f"the attribution function returned shape {tuple(maps.shape)} ({stage}); return maps "
                         "(B, ...) with B >= 1 examples")
    if not torch.isfinite(maps).all():
        raise ValueError(f"the attribution function returned NaN or inf ({stage})")
    return maps.detach().float().cpu()


def cascading_randomization(model: nn.Module, attribute: Attribution, layers: Sequence[str] | None = None, *,
                            seed: int = 0, absolute: bool = True) -> RandomizationResult:
    """Adebayo et al.'s cascading randomisation: re-initialise layers top-down, cumulatively, and compare maps.

    The model passed in is never changed: the test works on a deep copy.

    Args:
        model: a trained model.
        attribute: ``attribute(model) -> maps (B, ...)``, e.g.
            ``lambda m: grad_cam(m, m.features[-3], images, target=labels)``; it must use the model it is
            given (refer to layers through ``m``, not the original model).
        layers: names of submodules to re-initialise, in order, top (output) first (see
            :func:`randomizable_layers`; a block's name randomises all of it). None: every layer with
            parameters, from the last registered to the first.
        seed: seeds the re-initialisation (stage ``s`` uses ``seed + s``) and each attribution call
            (always ``seed``), so the result is reproducible; the global RNG state is left untouched.
        absolute: correlate absolute attributions (the paper's default) or signed ones.

    Returns:
        A :class:`RandomizationResult`: per-stage, per-example Spearman correlations and the maps.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> x = torch.randn(3, 4)
        >>> edges = cascading_randomization(net, lambda m: x.abs())   # ignores the model
        >>> edges.mean_spearman.tolist()
        [1.0, 1.0]
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not callable(attribute):
        raise TypeError("attribute must be a function attribute(model) -> maps (B, ...)")
    layers = _check_layers(model, layers)
    work = copy.deepcopy(model)
    modules = _named(work)
    original = _attribute(attribute, work, seed, "original model")
    maps, rhos = [original], []
    for stage, name in enumerate(layers, start=1):
        with torch.random.fork_rng():
            torch.manual_seed(seed + stage)
            _reinitialise(modules[name])
        randomised = _attribute(attribute, work, seed, f"after randomising {layers[:stage]}")
        if randomised.shape != original.shape:
            raise ValueError(f"the maps changed shape from {tuple(original.shape)} to {tuple(randomised.shape)} "
                             f"after randomising {name!r}; the attribution function must return one shape")
        maps.append(randomised)
        rhos.append(spearman_per_example(original, randomised, absolute=absolute))
    return RandomizationResult(layers=list(layers), spearman=torch.stack(rhos), maps=maps, absolute=absolute)


__all__ = ["RandomizationResult", "cascading_randomization", "randomizable_layers", "spearman_per_example"]
