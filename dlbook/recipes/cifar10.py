"""Chapter 4.1's recipe for VGG-11-BN on CIFAR-10: every training choice in one dataclass.

The chapter, the time-to-accuracy benchmark and the GPU check all train VGG-11 from a
:class:`VGGRecipe`, so a change to the recipe reaches all three at once. A recipe builds
the parts a :class:`dlbook.train.Trainer` needs (model, optimizer, schedule, loss,
augmentation) and the test-time views.

Three recipes are named:

* :data:`FIRST`: the chapter's first recipe (20 epochs, peak learning rate 0.1, a
  512-unit dropout head, label smoothing 0.1). It reached 87.26% with test-time flips.
* :data:`PAGE`: the choices of the fastest published CIFAR-10 recipes (Page's DAWNBench
  ResNet-9, Keller Jordan's airbench, Smith's super-convergence) applied to VGG-11: a
  linear head on global pooling with logits scaled by 1/8 and no dropout, a linear warm-up
  to a high peak learning rate and a linear decay to 0, label smoothing 0.2, crops of the
  image padded by 4 pixels.
* :data:`FAST`: ``PAGE`` with crops padded by 2 pixels instead of 4 (airbench's lighter
  translation), the best of the candidates ``benchmarks/recipe_search.py`` compared on
  validation; the recipe chapter 4.1 trains.

How many epochs fit in a time budget depends on the machine, so a recipe's ``epochs``
is set per machine with :func:`epochs_for_budget` from a measured speed
(:func:`images_per_second`), and printed, so that a run can be repeated exactly.

Example:
    >>> recipe = FAST.replace(epochs=2)
    >>> model = recipe.model()
    >>> optimizer = recipe.optimizer(model)
    >>> schedule = recipe.schedule(optimizer, steps_per_epoch=10)
    >>> [round(g["lr"], 3) for g in optimizer.param_groups]   # warm-up starts at 0
    [0.0, 0.0]
    >>> epochs_for_budget(images_per_s=200.0, n_train=45_000, seconds=2700)
    9
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from dlbook.data.transforms import (CIFAR10_MEAN, CIFAR10_STD, Compose, Cutout, Normalize, RandomCrop,
                                    RandomHorizontalFlip, to_float)
from dlbook.models.vgg import VGG, patch_whitening_, vgg11
from dlbook.timing import forever, throughput
from dlbook.train.optim import param_groups
from dlbook.train.schedules import linear_warmup_decay
from dlbook.train.throughput import sgd_step

TTA_CHOICES = ("none", "flip", "flip+translate")


@dataclass(frozen=True)
class VGGRecipe:
    """Every choice behind one VGG-11-BN training run on CIFAR-10 (32x32 RGB, 10 classes).

    The defaults are :data:`FAST`'s. ``replace(**changes)`` gives a recipe that differs in
    the fields named, which is how the chapter's validation comparisons are written.
    """

    epochs: int = 10  # set per machine from the time budget: see epochs_for_budget
    batch_size: int = 256
    peak_lr: float = 0.2  # Page's 0.4 at batch 512, scaled linearly to batch 256
    warmup: float = 0.2  # share of the steps spent climbing linearly from 0 to peak_lr; then linear to 0
    momentum: float = 0.9  # Nesterov
    weight_decay: float = 5e-4  # on conv and linear weights only, not on biases or BatchNorm parameters
    label_smoothing: float = 0.2  # airbench's
    crop_padding: int = 2  # random crops of the image padded by this many pixels; 0 turns crops off
    cutout: int = 0  # side of the cutout square in pixels; 0 turns it off
    hidden: tuple[int, ...] = ()  # hidden layers of the head; () is one linear layer on global pooling
    dropout: float = 0.0
    logit_scale: float = 0.125  # Page's: logits times 1/8
    whiten: bool = False  # airbench's frozen first layer: the first conv set from the training patches' principal directions
    tta: str = "flip"  # test-time views, chosen on validation (see tta_views)
    notes: str = field(default="", compare=False)  # where the recipe comes from, for the record

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs={self.epochs} and batch_size={self.batch_size} must be at least 1")
        if not self.peak_lr > 0 or not 0 <= self.warmup < 1:
            raise ValueError(f"peak_lr={self.peak_lr} must be > 0 and warmup={self.warmup} a share in [0, 1)")
        if not 0 <= self.label_smoothing < 1 or self.weight_decay < 0 or not 0 <= self.momentum < 1:
            raise ValueError(f"label_smoothing={self.label_smoothing} must be in [0, 1), weight_decay="
                             f"{self.weight_decay} >= 0 and momentum={self.momentum} in [0, 1)")
        if self.crop_padding < 0 or self.cutout < 0:
            raise ValueError(f"crop_padding={self.crop_padding} and cutout={self.cutout} are pixels: use >= 0")
        if self.tta not in TTA_CHOICES:
            raise ValueError(f"tta={self.tta!r}; use one of {TTA_CHOICES}")

    def replace(self, **changes) -> "VGGRecipe":
        """This recipe with the fields in ``changes`` changed (checked like a new one)."""
        return replace(self, **changes)

    def as_dict(self) -> dict:
        """The recipe as plain values, for ``record()`` and JSON results."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    # -- the parts a Trainer needs -----------------------------------------------------------
    def model(self, images: torch.Tensor | None = None) -> VGG:
        """A freshly initialised VGG-11-BN with this recipe's head (seed torch first for repeatable weights).

        With ``whiten``, ``images`` (uint8 training images, ``(N, 3, 32, 32)``; 5,000 are plenty)
        set the first convolution (:func:`dlbook.models.vgg.patch_whitening_`); without it they are not used.
        """
        model = vgg11(num_classes=10, hidden=self.hidden, dropout=self.dropout, logit_scale=self.logit_scale)
        if self.whiten:
            if images is None:
                raise ValueError("whiten=True sets the first layer from the training images: call "
                                 "recipe.model(x_train[:5000]) with uint8 training images (never validation or test)")
            patch_whitening_(model.features[0], self.eval_transform()(images[:5000]),
                             generator=torch.Generator().manual_seed(0))
        return model

    def optimizer(self, model: nn.Module) -> torch.optim.SGD:
        """SGD with Nesterov momentum; weight decay on the weights only (:func:`dlbook.train.param_groups`)."""
        return torch.optim.SGD(param_groups(model, self.weight_decay), lr=self.peak_lr, momentum=self.momentum,
                               nesterov=self.momentum > 0)

    def schedule(self, optimizer: torch.optim.Optimizer, steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
        """Linear warm-up from 0 over ``warmup`` of the steps, then linear decay to 0; step it every batch."""
        total = self.epochs * steps_per_epoch
        return linear_warmup_decay(optimizer, warmup_steps=round(self.warmup * total), total_steps=total)

    def loss(self) -> nn.CrossEntropyLoss:
        return nn.CrossEntropyLoss(label_smoothing=self.label_smoothing)

    def train_transform(self, generator: torch.Generator | None = None) -> Compose:
        """The augmentation of a uint8 training batch: crop, flip, to float, normalise, cutout."""
        steps: list[Callable] = []
        if self.crop_padding:
            steps.append(RandomCrop(32, padding=self.crop_padding, generator=generator))
        steps += [RandomHorizontalFlip(generator=generator), to_float, Normalize(CIFAR10_MEAN, CIFAR10_STD)]
        if self.cutout:
            steps.append(Cutout(self.cutout, generator=generator))  # after Normalize: the patch is the mean colour
        return Compose(steps)

    def eval_transform(self) -> Compose:
        """A uint8 evaluation batch to normalised floats (no augmentation)."""
        return Compose([to_float, Normalize(CIFAR10_MEAN, CIFAR10_STD)])


def translate(dy: int, dx: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Shift a ``(B, C, H, W)`` batch by ``dy`` rows and ``dx`` columns, filling with 0 (the mean after normalising).

    Example:
        >>> translate(1, 0)(torch.arange(4.0).view(1, 1, 4, 1)).flatten().tolist()
        [0.0, 0.0, 1.0, 2.0]
    """
    p = max(abs(dy), abs(dx))

    def shift(x: torch.Tensor) -> torch.Tensor:
        H, W = x.shape[-2:]
        padded = F.pad(x, (p, p, p, p))
        return padded[..., p - dy:p - dy + H, p - dx:p - dx + W]

    shift.__name__ = f"translate({dy}, {dx})"
    return shift


def tta_views(name: str) -> list[Callable[[torch.Tensor], torch.Tensor]] | None:
    """Test-time views for :func:`dlbook.train.predict` (``tta=``): None for ``"none"``.

    ``"flip"``: the image and its mirror. ``"flip+translate"``: those two, each also shifted
    by 2 pixels down-right and up-left (six views, as in airbench).
    """
    if name not in TTA_CHOICES:
        raise ValueError(f"tta={name!r}; use one of {TTA_CHOICES}")
    if name == "none":
        return None

    def flip(x: torch.Tensor) -> torch.Tensor:
        return x.flip(3)

    def identity(x: torch.Tensor) -> torch.Tensor:
        return x

    views = [identity, flip]
    if name == "flip+translate":
        for dy, dx in ((2, 2), (-2, -2)):
            t = translate(dy, dx)
            views += [t, (lambda t: lambda x: t(x).flip(3))(t)]
    return views


def epochs_for_budget(images_per_s: float, n_train: int, seconds: float, *, margin: float = 0.8) -> int:
    """How many whole epochs of ``n_train`` images fit in ``seconds`` at ``images_per_s``, keeping ``margin``.

    The margin (default: plan for 80% of the budget) absorbs the validation passes and the
    slower spells of a shared machine; at least one epoch. 0.9 was too little on the book's
    2-core VM on 2026-12-02: in one run its 45,000-image epochs of VGG-11 took from 89 to 120 s,
    so 29 epochs planned from a speed of 537 images/s would have taken about 50 minutes.
    """
    if not images_per_s > 0 or n_train < 1 or not seconds > 0 or not 0 < margin <= 1:
        raise ValueError(f"need images_per_s > 0 (got {images_per_s}), n_train >= 1 ({n_train}), seconds > 0 "
                         f"({seconds}) and 0 < margin <= 1 ({margin})")
    return max(1, math.floor(seconds * margin * images_per_s / n_train))


def images_per_second(recipe: VGGRecipe, images: torch.Tensor, labels: torch.Tensor, device: torch.device | str, *,
                      steps: int = 6, warmup: int = 2, precision: str = "auto", channels_last: bool = True) -> float:
    """Training images per second of this recipe's model on ``device``, timed on batches of ``images``.

    Each timed step augments a uint8 batch with the recipe's :meth:`VGGRecipe.train_transform` and
    runs :func:`dlbook.train.throughput.sgd_step` (the forward, backward and SGD step the Trainer
    runs, within a few per cent) on a fresh model, so the speed includes the input pipeline.
    """
    if len(images) < recipe.batch_size:
        raise ValueError(f"need at least one batch of {recipe.batch_size} images to time, got {len(images)}")
    transform = recipe.train_transform()
    batches = forever([(images[i:i + recipe.batch_size], labels[i:i + recipe.batch_size])
                       for i in range(0, len(images) - recipe.batch_size + 1, recipe.batch_size)][:4])
    step = sgd_step(recipe.model(images), device, channels_last=channels_last, precision=precision)
    return throughput(lambda batch: step((transform(batch[0]), batch[1])), batches, steps=steps, warmup=warmup,
                      device=device)



def search_tables(runs: list[dict], baseline: str = "page", *, keep_quick: bool = False) -> str:
    """The recipe search's results as text: one table for each proxy setting, quick runs left out.

    ``runs`` are the JSON documents ``benchmarks/recipe_search.py`` writes. Files that share a
    proxy (training subset, epochs, seed) are one search, shown as one table, so a short search
    and a long one stay apart: a recipe's rank can change with the length of the schedule. Each
    table says when and where its files ran, with the load before and after, and gives every
    candidate's validation accuracy (no test-time views, flips, flips and shifts), its points
    against ``baseline`` where the search ran it, and the standard error of the validation
    accuracy, so that a difference can be read against it. ``keep_quick`` keeps the runs of
    ``--quick`` (tiny sizes that only check the script), which are otherwise left out.

    Example:
        >>> run = {"date": "2026-12-02 02:31 UTC", "machine": {"device": "CPU"},
        ...        "settings": {"subset": 20000, "epochs": 3, "seed": 0, "quick": False, "val_size": 5000},
        ...        "load_average_before": [0.7], "load_average_after": [2.5],
        ...        "candidates": {"page": {"train_s": 449.0, "val_accuracy":
        ...                                {"none": 0.68, "flip": 0.69, "flip+translate": 0.68}}}}
        >>> print(search_tables([run]).splitlines()[1])
        proxy: 3 epochs on 20,000 training images, seed 0, scored on the 5,000 validation images
    """
    groups: dict[tuple, list[dict]] = {}
    for run in sorted(runs, key=lambda r: r["date"]):
        s = run["settings"]
        if keep_quick or not s.get("quick"):
            groups.setdefault((s["epochs"], s["subset"], s["seed"]), []).append(run)
    if not groups:
        return "no recipe search results (quick runs are left out)"
    tables = []
    for (epochs, subset, seed), group in sorted(groups.items()):
        n_val = group[0]["settings"].get("val_size", 5000)
        lines = [f"{r['date']}: {', '.join(r['candidates'])} on {r['machine']['device']}, load "
                 f"{r['load_average_before'][0]} before"
                 + (f" and {r['load_average_after'][0]} after" if "load_average_after" in r else "")  # not yet: a report
                 for r in group]
        lines.append(f"proxy: {epochs} epoch{'s' * (epochs != 1)} on {subset:,} training images, seed {seed}, scored on the "
                     f"{n_val:,} validation images")
        candidates = {name: c for r in group for name, c in r["candidates"].items()}
        base = candidates[baseline]["val_accuracy"]["none"] if baseline in candidates else None
        width = max(14, *map(len, candidates))
        lines.append(f"{'candidate':{width}s} {'val, no TTA':>12s} {'vs ' + baseline if base is not None else '':>8s} "
                     f"{'flips':>7s} {'flips+shifts':>13s} {'train s':>8s}")
        for name, c in candidates.items():
            v = c["val_accuracy"]
            versus = f"{100 * (v['none'] - base):+8.2f}" if base is not None else " " * 8
            lines.append(f"{name:{width}s} {v['none']:12.2%} {versus} {v['flip']:7.2%} {v['flip+translate']:13.2%} "
                         f"{c['train_s']:8.0f}")
        mid = base if base is not None else sum(c["val_accuracy"]["none"] for c in candidates.values()) / len(candidates)
        note = f"vs {baseline}: points of validation accuracy, no TTA; " if base is not None else ""
        lines.append(f"({note}one seed each. The standard error of an accuracy near {mid:.0%} on {n_val:,} images "
                     f"is {100 * (mid * (1 - mid) / n_val) ** 0.5:.2f} points.)")
        tables.append("\n".join(lines))
    return "\n\n".join(tables)

#: Chapter 4.1's first recipe, kept for comparison.
FIRST = VGGRecipe(epochs=20, peak_lr=0.1, warmup=0.25, label_smoothing=0.1, hidden=(512,), dropout=0.5,
                  logit_scale=1.0, crop_padding=4, tta="flip",
                  notes="chapter 4.1's first recipe: 87.26% with test-time flips after 20 epochs (its warm-up "
                        "started at 0.01, not 0, and decayed to 1e-4)")
#: The fast recipes' choices for VGG-11, with crops padded by 4 pixels (the search's starting point).
PAGE = VGGRecipe(crop_padding=4,
                 notes="Page's DAWNBench recipe (linear head, logits x 0.125, warm-up to a high peak, linear decay "
                       "to 0, Nesterov, weight decay on weights only) with airbench's label smoothing 0.2")
#: The recipe chapter 4.1 trains, ``PAGE`` with 2-pixel crop padding (its ``epochs`` set per machine).
FAST = PAGE.replace(crop_padding=2, notes="PAGE with airbench's 2-pixel translation, chosen on validation by "
                                          "benchmarks/recipe_search.py")

__all__ = ["FAST", "FIRST", "PAGE", "TTA_CHOICES", "VGGRecipe", "epochs_for_budget", "images_per_second",
           "search_tables", "translate", "tta_views"]
