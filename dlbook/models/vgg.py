"""VGG (Simonyan and Zisserman, 2015, "Very deep convolutional networks for large-scale image recognition").

The idea of VGG is that depth built from one repeated block is enough: stacks
of 3x3 convolutions (padding 1, so the size is kept) separated by 2x2
max-pooling (which halves it), then a few fully connected layers. Two 3x3
convolutions see a 5x5 window with fewer weights than one 5x5 convolution, and
one more non-linearity.

The architecture is data: a configuration list per depth, where a number is a
3x3 convolution with that many output channels and ``"M"`` is a max-pool,
expanded into layers by :func:`make_layers` -- the same lists and the same
layer order as torchvision's ``models/vgg.py``, so ``VGG.features`` has the
same modules and ``state_dict`` keys as ``torchvision.models.vgg11_bn().features``.

Choices that differ from the 2015 ImageNet network, each an option:

* **Batch normalisation** after every convolution (Ioffe and Szegedy, 2015;
  torchvision's ``vgg*_bn``): VGG without it needs careful initialisation and a
  small learning rate; with it, SGD at learning rate 0.1 trains from scratch.
* **A CIFAR-sized head.** Five poolings turn a 32x32 image into a 1x1x512
  map, so the ImageNet head (7x7x512 → 4096 → 4096 → classes, 120M weights)
  is replaced by global average pooling and ``hidden`` fully connected layers
  of 512 units with dropout (Srivastava et al., 2014) -- one hidden layer by
  default; ``hidden=()`` is a single linear classifier.
* The output is **logits**; ``nn.CrossEntropyLoss`` applies log-softmax. ``logit_scale``
  multiplies them by a constant (Page's fast CIFAR-10 recipe uses 0.125): a smaller scale
  keeps the softmax soft for longer, so a high learning rate does not push the logits
  apart in the first steps.
* Every ReLU is its own ``nn.ReLU()`` module and none is in-place, so Captum's
  layer and neuron attributions can hook any of them.

Example:
    >>> model = vgg11(num_classes=10)
    >>> model(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from dlbook.models import check_config

# A number is a 3x3 convolution with that many output channels; "M" is a 2x2 max-pool.
# The letters are the paper's Table 1 columns (and torchvision's keys).
CFGS: dict[int, list[int | str]] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],  # A
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],  # B
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],  # D
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],  # E
}


@dataclass
class VGGConfig:
    """How to build a :class:`VGG`.

    The defaults are VGG-11 with batch normalisation for 32x32 RGB images in 10 classes.
    """

    depth: int = 11  # 11, 13, 16 or 19 weight layers in the paper's count (convolutions + 3 FC)
    in_channels: int = 3  # RGB
    num_classes: int = 10  # CIFAR-10
    batch_norm: bool = True  # BN after every conv: trains at lr 0.1 from scratch, no careful init needed
    hidden: tuple[int, ...] = (512,)  # FC layers of the head; the 1x1x512 features need no 4096-wide layers
    dropout: float = 0.5  # after each hidden FC layer (the paper's 0.5); 0 turns it off
    width: float = 1.0  # multiplies every conv's channels: 1.0 is VGG; smaller only for fast tests
    init: str = "kaiming"  # "kaiming" (He et al. 2015, torchvision's VGG init) or "default" (PyTorch's)
    logit_scale: float = 1.0  # multiplies the logits; Page's fast CIFAR recipe uses 0.125 with a linear head

    def __post_init__(self) -> None:
        if self.depth not in CFGS:
            raise ValueError(f"depth={self.depth}; VGG has depth 11, 13, 16 or 19 (the paper's A, B, D, E)")
        check_config(self, positive=("in_channels", "num_classes"), fractions=("dropout",),
                     choices={"init": ("kaiming", "default")})
        if not self.logit_scale > 0:
            raise ValueError(f"VGGConfig: logit_scale={self.logit_scale} must be > 0 (1.0 leaves the logits as they are)")
        if not self.width > 0 or any(not isinstance(h, int) or h < 1 for h in self.hidden):
            raise ValueError(f"VGGConfig: width={self.width} must be > 0 and hidden={self.hidden} positive ints")

    @classmethod
    def tiny(cls, **overrides) -> "VGGConfig":
        """A VGG-11 with 1/8 of the channels and a 32-unit head: same structure, for tests."""
        return replace(cls(width=0.125, hidden=(32,)), **overrides)

    def layer_cfg(self) -> list[int | str]:
        """The configuration list for this depth, with channels scaled by ``width``."""
        return [v if v == "M" else max(1, round(v * self.width)) for v in CFGS[self.depth]]


def make_layers(cfg: list[int | str], in_channels: int = 3, batch_norm: bool = True) -> nn.Sequential:
    """Expand a configuration list into the convolutional feature extractor.

    Each number ``v`` becomes ``Conv2d(in, v, 3, padding=1)`` (+ ``BatchNorm2d(v)``) + ``ReLU()``;
    each ``"M"`` becomes ``MaxPool2d(2, 2)``. The order and module indices are torchvision's.

    Args:
        cfg: e.g. ``CFGS[11]``.
        in_channels: channels of the input image.
        batch_norm: insert batch normalisation after each convolution.

    Example:
        >>> [type(m).__name__ for m in make_layers([8, "M", 16, "M"], in_channels=3)]
        ['Conv2d', 'BatchNorm2d', 'ReLU', 'MaxPool2d', 'Conv2d', 'BatchNorm2d', 'ReLU', 'MaxPool2d']
    """
    if in_channels < 1:
        raise ValueError(f"in_channels={in_channels}; an image has at least one channel")
    layers: list[nn.Module] = []
    channels = in_channels
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        elif isinstance(v, int) and v > 0:
            layers.append(nn.Conv2d(channels, v, kernel_size=3, padding=1))  # size kept: (B, v, H, W)
            if batch_norm:
                layers.append(nn.BatchNorm2d(v))
            layers.append(nn.ReLU())  # one module per use, not in-place: Captum can hook it
            channels = v
        else:
            raise ValueError(f"bad entry {v!r} in a VGG configuration: use a positive int (conv channels) or 'M'")
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """VGG: ``features`` (3x3 convs and max-pools) → global average pool → ``classifier`` (FC head).

    Args:
        config: a :class:`VGGConfig` (default: VGG-11-BN for CIFAR-10).

    Example:
        >>> model = VGG(VGGConfig(depth=16))
        >>> model(torch.zeros(1, 3, 32, 32)).shape
        torch.Size([1, 10])
    """

    def __init__(self, config: VGGConfig | None = None):
        super().__init__()
        self.config = cfg = config or VGGConfig()
        layer_cfg = cfg.layer_cfg()
        self.features = make_layers(layer_cfg, cfg.in_channels, cfg.batch_norm)
        self.num_pools = layer_cfg.count("M")
        channels = [v for v in layer_cfg if v != "M"][-1]
        self.avgpool = nn.AdaptiveAvgPool2d(1)  # (B, C, h, w) -> (B, C, 1, 1); a no-op for 32x32 inputs
        head: list[nn.Module] = [nn.Flatten()]  # (B, C, 1, 1) -> (B, C)
        for width in cfg.hidden:
            head += [nn.Linear(channels, width), nn.ReLU()]
            head += [nn.Dropout(cfg.dropout)] if cfg.dropout > 0 else []
            channels = width
        if not cfg.hidden and cfg.dropout > 0:
            head.append(nn.Dropout(cfg.dropout))
        head.append(nn.Linear(channels, cfg.num_classes))  # logits: no softmax
        self.classifier = nn.Sequential(*head)
        if cfg.init == "kaiming":
            self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's VGG initialisation.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    @property
    def min_size(self) -> int:
        """The smallest input side that survives all the poolings (32 for every VGG)."""
        return 2**self.num_pools

    @property
    def last_conv(self) -> nn.Conv2d:
        """The last convolution, the usual layer for Grad-CAM."""
        return [m for m in self.features if isinstance(m, nn.Conv2d)][-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)`` for images ``(B, in_channels, H, W)``, H and W at least 32."""
        c = self.config.in_channels
        if x.dim() != 4 or x.shape[1] != c:
            raise ValueError(f"VGG expects a batch of images (B, {c}, H, W), got shape {tuple(x.shape)}"
                             + ("; add a batch dimension with x.unsqueeze(0)" if x.dim() == 3 else ""))
        if min(x.shape[-2:]) < self.min_size:
            raise ValueError(f"VGG pools {self.num_pools} times, so images need H, W >= {self.min_size}; "
                             f"got {tuple(x.shape[-2:])}")
        if not x.is_floating_point():
            raise TypeError(f"VGG expects float images (normalised), got {x.dtype}; convert uint8 images "
                            "with x.float() / 255 and normalise them first")
        x = self.features(x)  # (B, C, H/32, W/32)
        x = self.avgpool(x)  # (B, C, 1, 1)
        logits = self.classifier(x)  # (B, num_classes)
        return logits if self.config.logit_scale == 1.0 else logits * self.config.logit_scale


def patch_whitening_(conv: nn.Conv2d, images: torch.Tensor, *, max_patches: int = 200_000, freeze: bool = True,
                     generator: torch.Generator | None = None) -> int:
    """Set a first convolution's filters to the principal directions of the image patches it sees, in place.

    Keller Jordan's airbench starts its CIFAR-10 network with a frozen "whitening" layer: the
    eigenvectors of the covariance of the input's patches, each as a filter and its negative
    (so the ReLU after it keeps both signs). The network's first layer then starts from what
    the data varies in, instead of from random directions, and does not have to learn it.
    Here the same idea is applied to a 3x3 convolution: ``k = C * 3 * 3`` patch dimensions (27
    for RGB) give ``2 k`` filters (54); a convolution with more filters keeps its other ones
    as initialised (and, with ``freeze``, fixed there too: the whole weight stops training).
    Each eigenvector is divided by the square root of its eigenvalue, which whitens the
    patches; with batch normalisation right after the convolution (as in VGG-BN) only the
    directions matter.

    Args:
        conv: the first convolution, ``out_channels >= 2 * in_channels * kh * kw``.
        images: a batch ``(N, C, H, W)`` of training images, normalised as the model's input is.
        max_patches: how many random patches estimate the covariance.
        freeze: stop training the convolution's weight (its bias, redundant before batch
            normalisation, keeps training); airbench keeps its whitening layer fixed.
        generator: draws the patches.

    Returns:
        The number of filters set (``2 k``).

    Example:
        >>> conv = nn.Conv2d(3, 64, 3, padding=1)
        >>> patch_whitening_(conv, torch.randn(8, 3, 32, 32))
        54
        >>> conv.weight.requires_grad
        False
    """
    c, kh, kw = conv.in_channels, *conv.kernel_size
    k = c * kh * kw
    if conv.out_channels < 2 * k:
        raise ValueError(f"patch whitening needs 2 x {k} = {2 * k} filters for {c}x{kh}x{kw} patches; "
                         f"this convolution has {conv.out_channels}")
    if images.dim() != 4 or images.shape[1] != c or not images.is_floating_point():
        raise ValueError(f"need normalised float images (N, {c}, H, W), got {tuple(images.shape)} {images.dtype}")
    patches = images.unfold(2, kh, 1).unfold(3, kw, 1)  # (N, C, H', W', kh, kw)
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, k).double()  # rows ordered like a filter (C, kh, kw)
    if len(patches) > max_patches:
        patches = patches[torch.randperm(len(patches), generator=generator)[:max_patches]]
    covariance = patches.T @ patches / len(patches)  # about the mean: normalised images are centred
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)  # ascending
    filters = (eigenvectors.T / (eigenvalues.clamp_min(0) + 1e-4).sqrt()[:, None]).flip(0)  # largest first
    filters = filters.reshape(k, c, kh, kw).to(conv.weight.dtype)
    with torch.no_grad():
        conv.weight[:2 * k] = torch.cat([filters, -filters])
    conv.weight.requires_grad_(not freeze)
    return 2 * k


def _build(depth: int, **overrides) -> VGG:
    return VGG(VGGConfig(depth=depth, **overrides))


def vgg11(**overrides) -> VGG:
    """VGG-11 (configuration A), batch-normalised by default; keyword arguments override :class:`VGGConfig`.

    Example:
        >>> vgg11(dropout=0.0, hidden=()).classifier
        Sequential(
          (0): Flatten(start_dim=1, end_dim=-1)
          (1): Linear(in_features=512, out_features=10, bias=True)
        )
    """
    return _build(11, **overrides)


def vgg13(**overrides) -> VGG:
    """VGG-13 (configuration B); see :func:`vgg11`."""
    return _build(13, **overrides)


def vgg16(**overrides) -> VGG:
    """VGG-16 (configuration D); see :func:`vgg11`."""
    return _build(16, **overrides)


def vgg19(**overrides) -> VGG:
    """VGG-19 (configuration E); see :func:`vgg11`."""
    return _build(19, **overrides)


__all__ = ["CFGS", "VGG", "VGGConfig", "make_layers", "patch_whitening_", "vgg11", "vgg13", "vgg16", "vgg19"]
