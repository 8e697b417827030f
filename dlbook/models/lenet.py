"""LeNet-5 (LeCun, Bottou, Bengio and Haffner, 1998, "Gradient-based learning applied to document recognition").

The 1998 network, in its common modern form: two 5x5 convolutions with
pooling, then three fully connected layers (120, 84, classes). Choices that
differ from the paper are options with the modern default:

* ReLU instead of the scaled tanh, max-pooling instead of trainable average
  pooling (both train faster and better);
* the output layer returns **logits**. The source article says the output
  layer "uses sigmoid to give probabilities": for one-of-K classes that is
  wrong twice over. Sigmoids give K independent numbers that need not sum to
  one; and squashing before the loss throws away gradient. Return logits and
  let ``nn.CrossEntropyLoss`` apply log-softmax inside the loss (numerically
  stable); apply ``softmax`` only when you want probabilities to show.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from dlbook.models import check_config


@dataclass
class LeNetConfig:
    """How to build a :class:`LeNet5`; the defaults are the modern form for 28x28 Fashion-MNIST."""

    in_channels: int = 1  # grayscale Fashion-MNIST / MNIST
    num_classes: int = 10
    image_size: int = 28  # 28x28 inputs get padding=2 on conv1, as LeNet-5 was built for 32x32
    activation: str = "relu"  # "relu" (modern) or "tanh" (1998)
    pool: str = "max"  # "max" (modern) or "avg" (closer to 1998's subsampling)
    dropout: float = 0.0  # the original had none; small nets on 60k images rarely need it

    def __post_init__(self) -> None:
        check_config(self, positive=("in_channels", "num_classes"), fractions=("dropout",),
                     choices={"image_size": (28, 32), "activation": ("relu", "tanh"), "pool": ("max", "avg")})

    @classmethod
    def tiny(cls, **overrides) -> "LeNetConfig":
        """LeNet-5 is already small (61,706 parameters): the default network, for tests."""
        return replace(cls(), **overrides)


class LeNet5(nn.Module):
    """LeNet-5: conv(6, 5x5) → pool → conv(16, 5x5) → pool → fc 120 → fc 84 → fc classes.

    Example:
        >>> model = LeNet5()
        >>> model(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(self, config: LeNetConfig | None = None):
        super().__init__()
        self.config = cfg = config or LeNetConfig()
        act = nn.ReLU if cfg.activation == "relu" else nn.Tanh
        pool = nn.MaxPool2d if cfg.pool == "max" else nn.AvgPool2d
        padding = 2 if cfg.image_size == 28 else 0
        self.features = nn.Sequential(
            nn.Conv2d(cfg.in_channels, 6, kernel_size=5, padding=padding),  # C1: (B, 6, 28, 28)
            act(),
            pool(2),  # S2: (B, 6, 14, 14)
            nn.Conv2d(6, 16, kernel_size=5),  # C3: (B, 16, 10, 10)
            act(),
            pool(2),  # S4: (B, 16, 5, 5)
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),  # (B, 400)
            nn.Linear(16 * 5 * 5, 120),  # C5
            act(),
            nn.Dropout(cfg.dropout),
            nn.Linear(120, 84),  # F6
            act(),
            nn.Dropout(cfg.dropout),
            nn.Linear(84, cfg.num_classes),  # output: logits, no sigmoid/softmax
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"LeNet5 expects (B, {self.config.in_channels}, H, W) images, got {tuple(x.shape)}")
        return self.classifier(self.features(x))
