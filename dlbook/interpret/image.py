"""Attribution maps for image classifiers: saliency, Grad-CAM, Integrated Gradients (with SmoothGrad), occlusion.

Papers:
    Simonyan, Vedaldi & Zisserman, "Deep Inside Convolutional Networks: Visualising
    Image Classification Models and Saliency Maps", ICLR workshop 2014 (saliency).
    Smilkov et al., "SmoothGrad: removing noise by adding noise", 2017 (NoiseTunnel).
    Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
    Gradient-based Localization", ICCV 2017.
    Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep Networks", ICML 2017.
    Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014
    (occlusion).

Every function takes the model, a batch of images ``(B, C, H, W)`` normalised as in
training, and a ``target`` class (``None``: the predicted class); runs the model in
eval mode (restored afterwards); and returns ``(B, H, W)`` float32 maps on the CPU,
drawn over the images by :func:`dlbook.viz.overlay`.

Example:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    >>> integrated_gradients(net, torch.randn(2, 3, 4, 4), target=1).shape
    torch.Size([2, 4, 4])
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dlbook.interpret._common import (check_n_steps, check_submodule, explaining, resolve_target,
                                     scored_forward_and_target)
from dlbook.train.inference import model_device


def _images_on_device(model: nn.Module, images: Tensor) -> Tensor:
    """Check a batch of float images ``(B, C, H, W)`` (B >= 1) and move it to the model's device."""
    images = torch.as_tensor(images)
    if images.dim() != 4:
        raise ValueError(f"images must be a batch (B, C, H, W); got shape {tuple(images.shape)}. "
                         "For one image use images.unsqueeze(0)")
    if not images.is_floating_point():
        raise ValueError(f"images must be float tensors as the model sees them (normalised), got {images.dtype}; "
                         "convert uint8 images with the same transform used in training")
    if images.shape[0] == 0:
        raise ValueError("the batch is empty (B=0): pass at least one image")
    return images.to(model_device(model))


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
        ``(B, H, W)`` float32 maps on the CPU (not normalised; :func:`dlbook.viz.overlay` scales them).

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(4, 2))
        >>> grad_cam(net, net[1], torch.randn(2, 3, 8, 8)).shape
        torch.Size([2, 8, 8])
    """
    from captum.attr import LayerAttribution, LayerGradCam

    images = _images_on_device(model, images)
    check_submodule(model, layer, "pass e.g. model.features[-3] (the last conv block)")
    with explaining(model):
        with torch.no_grad():
            target = resolve_target(target, model(images))
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


def saliency(model: nn.Module, images: Tensor, target=None, *, score: str = "logit",
             channel_reduce: str | None = "abs") -> Tensor:
    """The gradient of the target's score with respect to each pixel (Simonyan et al., 2014).

    Args:
        model, images, target, score: as for :func:`integrated_gradients`.
        channel_reduce: ``"abs"`` (the paper's max over channels is close; the sum of absolute
            values is Captum's), ``"sum"``, ``"mean"`` or None to keep ``(B, C, H, W)``.

    Example:
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 2 * 2, 2))
        >>> maps = saliency(net, torch.randn(1, 3, 2, 2), target=0, channel_reduce=None)
        >>> torch.allclose(maps.flatten(), net[1].weight[0])   # a linear model's gradient is its weight row
        True
    """
    from captum.attr import Saliency

    images = _images_on_device(model, images)
    with explaining(model):
        forward, target = scored_forward_and_target(model, score, target, images)
        grads = Saliency(forward).attribute(images, target=target, abs=False)
    return _reduce_channels(grads.detach().float(), channel_reduce).cpu()


def integrated_gradients(model: nn.Module, images: Tensor, target=None, baseline: Tensor | float | None = None, *,
                         n_steps: int = 50, internal_batch_size: int | None = None, score: str = "logit",
                         channel_reduce: str | None = "sum", noise_samples: int = 0, noise_stdev: float = 0.15,
                         return_delta: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Integrated Gradients per pixel, from ``baseline`` (default: all zeros, the mean image
    after normalisation) to the image.

    Args:
        model: an image classifier ``(B, C, H, W) -> (B, K)``.
        images: the batch, normalised as in training.
        target: class per image or None for the predicted class.
        baseline: a tensor broadcastable to the images, a number, or None (zeros).
        n_steps: integration steps, at least 2.
        internal_batch_size: split the ``B * n_steps`` forward passes into chunks this big.
        score: ``"logit"``, ``"log_odds"`` or ``"prob"`` (see ``class_scores``).
        channel_reduce: ``"sum"`` (signed, keeps completeness), ``"abs"``, ``"mean"``, or None
            to keep ``(B, C, H, W)``.
        noise_samples: 0 for plain IG; n > 0 averages IG over n noisy copies of each image
            (SmoothGrad through Captum's ``NoiseTunnel``), which removes much of IG's speckle.
        noise_stdev: the noise's standard deviation, in the normalised input's units.
        return_delta: also return the completeness error per image ``(B,)`` (plain IG only).

    Returns:
        ``(B, H, W)`` (or ``(B, C, H, W)``) float32 on the CPU, and the deltas if asked.
        With ``"sum"``, each map adds up to ``f(image) - f(baseline)`` up to the delta.

    Example:
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
        >>> integrated_gradients(net, torch.randn(2, 3, 4, 4), target=1).shape
        torch.Size([2, 4, 4])
    """
    from captum.attr import IntegratedGradients

    images = _images_on_device(model, images)
    check_n_steps(n_steps)
    if not isinstance(noise_samples, int) or noise_samples < 0 or not noise_stdev > 0:
        raise ValueError(f"noise_samples={noise_samples!r} must be an int >= 0 and noise_stdev={noise_stdev!r} > 0")
    if noise_samples and return_delta:
        raise ValueError("return_delta is for plain Integrated Gradients: pass noise_samples=0 to get the deltas")
    if baseline is None:
        baseline = torch.zeros_like(images)
    elif isinstance(baseline, (int, float)):
        baseline = torch.full_like(images, float(baseline))
    else:
        baseline = torch.as_tensor(baseline, dtype=images.dtype, device=images.device)
        try:
            baseline = baseline.expand_as(images).contiguous()
        except RuntimeError:
            raise ValueError(f"baseline of shape {tuple(baseline.shape)} does not broadcast to the images "
                             f"{tuple(images.shape)}") from None
    with explaining(model):
        forward, target = scored_forward_and_target(model, score, target, images)
        ig = IntegratedGradients(forward)
        if noise_samples:
            from captum.attr import NoiseTunnel

            result = NoiseTunnel(ig).attribute(images, nt_type="smoothgrad", nt_samples=noise_samples,
                                               stdevs=noise_stdev, baselines=baseline, target=target, n_steps=n_steps,
                                               internal_batch_size=internal_batch_size)
        else:
            result = ig.attribute(images, baselines=baseline, target=target, n_steps=n_steps,
                                  internal_batch_size=internal_batch_size, return_convergence_delta=return_delta)
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
        model, images, target: as in :func:`integrated_gradients`.
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

    images = _images_on_device(model, images)
    _, channels, height, width = images.shape
    win = (window, window) if isinstance(window, int) else tuple(window)
    step = (stride, stride) if isinstance(stride, int) else tuple(stride)
    if len(win) != 2 or len(step) != 2 or min(win) < 1 or min(step) < 1:
        raise ValueError(f"window={window} and stride={stride} must be positive ints or (h, w) pairs")
    if win[0] > height or win[1] > width:
        raise ValueError(f"window {win} is larger than the images ({height}, {width})")
    with explaining(model), torch.no_grad():
        forward, target = scored_forward_and_target(model, score, target, images)
        attributions = Occlusion(forward).attribute(images, sliding_window_shapes=(channels, *win),
                                                    strides=(channels, *step), baselines=baseline, target=target,
                                                    perturbations_per_eval=perturbations_per_eval)
    return attributions.mean(dim=1).detach().float().cpu()  # (B, C, H, W), equal over C -> (B, H, W)


__all__ = ["grad_cam", "integrated_gradients", "occlusion", "saliency"]
