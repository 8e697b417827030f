"""Checks for the exercises of chapter 4.1 (CIFAR-10 with VGG-11).

* :func:`check_decay_groups`: weight decay on the convolution and linear weights only, each
  parameter in exactly one group, checked against a VGG-11's own modules.
* :func:`check_flip_tta`: the "find the bug" exercise on test-time flips (a vertical flip,
  a model left in training mode, averaged logits), checked against the averaged softmax of
  each image and its mirror with the model in evaluation mode.
* :func:`check_warmup_decay`: the learning rate of chapter 4.1's schedule at every step,
  checked against ``dlbook.train.linear_warmup_decay``.

Example:
    >>> from dlbook.exercises import report
    >>> from dlbook.train import param_groups
    >>> report(check_decay_groups(param_groups))
    4.1 exercise 1 (weight-decay groups): correct
"""

from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import nn

from dlbook.exercises import Check, Problem, attempt, run_check


def _tiny_vgg() -> nn.Module:
    from dlbook.models.vgg import VGG, VGGConfig

    torch.manual_seed(0)
    return VGG(VGGConfig.tiny())


def check_decay_groups(fn: Callable[[nn.Module, float], list]) -> Check:
    """Check ``fn(model, weight_decay)``: optimizer parameter groups with decay on weights only.

    Every trainable parameter must be in exactly one group; the weights of convolutions and
    linear layers in a group with ``weight_decay``, the biases and the BatchNorm scales and
    shifts in a group with ``weight_decay`` 0. An optimizer built from the groups must accept them.
    """

    def body(problems: list[Problem]) -> None:
        model = _tiny_vgg()
        groups = attempt(fn, model, 5e-4, what="decay_groups(model, 5e-4)")
        if not isinstance(groups, (list, tuple)) or not all(isinstance(g, dict) and "params" in g for g in groups):
            problems.append(Problem(f"it returned a {type(groups).__name__}, not a list of dicts with 'params'",
                                    "return [{'params': [...], 'weight_decay': wd}, {'params': [...], "
                                    "'weight_decay': 0.0}]"))
            return
        names = {id(p): n for n, p in model.named_parameters()}
        where: dict[int, list[float]] = {}
        for g in groups:
            params = list(g["params"])  # a generator is used up by the first reader: list it once
            g["params"] = params
            for p in params:
                where.setdefault(id(p), []).append(g.get("weight_decay", None))
        twice = [names.get(i, "?") for i, ds in where.items() if len(ds) > 1]
        missing = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in where]
        if twice:
            problems.append(Problem(f"{len(twice)} parameter(s) are in more than one group, e.g. {twice[0]}",
                                    "put each parameter in exactly one group; PyTorch refuses duplicates"))
        if missing:
            problems.append(Problem(f"{len(missing)} parameter(s) are in no group, e.g. {missing[0]}: the "
                                    "optimizer would never update them", "go through model.named_parameters()"))
        decays_norm, spared_weight = [], []
        for module_name, module in model.named_modules():
            for pname, p in module.named_parameters(recurse=False):
                decay = where.get(id(p), [None])[0]
                full = f"{module_name}.{pname}"
                wants = isinstance(module, (nn.Conv2d, nn.Linear)) and pname == "weight"
                if wants and decay != 5e-4:
                    spared_weight.append(f"{full} (weight_decay={decay})")
                if not wants and decay not in (0, 0.0):
                    decays_norm.append(f"{full} (a {type(module).__name__} {pname}, weight_decay={decay})")
        if decays_norm:
            problems.append(Problem(f"{len(decays_norm)} bias or BatchNorm parameter(s) are decayed, e.g. "
                                    f"{decays_norm[0]}: decay only shrinks them towards 0 (for BatchNorm's scale, "
                                    "towards switching the channel off) without regularising anything",
                                    "give biases and BatchNorm parameters (p.dim() == 1 here) weight_decay 0.0"))
        if spared_weight:
            problems.append(Problem(f"{len(spared_weight)} convolution or linear weight(s) lack the decay, e.g. "
                                    f"{spared_weight[0]}", "give every conv and linear weight weight_decay=5e-4"))
        if not problems:
            attempt(torch.optim.SGD, groups, lr=0.1, what="torch.optim.SGD(your groups, lr=0.1)")

    return run_check("4.1 exercise 1 (weight-decay groups)", body)


def _flip_variants(model: nn.Module, images: torch.Tensor) -> dict[tuple[int, str, str], torch.Tensor]:
    """The average over each image and a mirror, for every (flip axis, mode, what is averaged) combination."""
    out = {}
    for axis in (3, 2):
        for mode in ("eval", "train"):
            for averaged in ("probabilities", "logits"):
                m = copy.deepcopy(model).train(mode == "train")  # a fresh copy: train mode moves BN statistics
                with torch.no_grad():
                    a, b = m(images), m(images.flip(axis))
                out[axis, mode, averaged] = ((a.softmax(-1) + b.softmax(-1)) if averaged == "probabilities"
                                             else (a + b)) / 2
    return out


def check_flip_tta(fn: Callable[[nn.Module, torch.Tensor], torch.Tensor]) -> Check:
    """Check ``fn(model, images)``: class probabilities averaged over each image and its mirror image.

    The model is handed over **in training mode**, as it is straight after ``fit``; the
    answer must be the evaluation-mode prediction, averaged as probabilities (rows sum to 1),
    with the mirror taken left-right (the width axis, ``flip(3)`` of ``(B, C, H, W)``). A wrong
    answer is compared with each slip (vertical flip, training mode, averaged logits) to say which.
    """

    def body(problems: list[Problem]) -> None:
        from dlbook.models.vgg import VGG, VGGConfig

        torch.manual_seed(0)
        model = VGG(VGGConfig.tiny(dropout=0.0))  # no dropout: training mode is then deterministic
        torch.manual_seed(1)
        for _ in range(3):  # running statistics that differ from any single batch's
            model.train()(torch.randn(16, 3, 32, 32) * 2 + 0.5)
        images = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(2))
        variants = _flip_variants(model, images)
        expected = variants[3, "eval", "probabilities"]
        out = attempt(fn, copy.deepcopy(model).train(), images.clone(), what="predict_flips(model, images)")
        if not isinstance(out, torch.Tensor) or out.shape != expected.shape:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            problems.append(Problem(f"it returned {shape}, expected {tuple(expected.shape)}: one row of 10 "
                                    "probabilities per image"))
            return
        out = out.detach().float()
        if torch.allclose(out, expected, atol=1e-5):
            return
        match = next((key for key, v in variants.items() if torch.allclose(out, v, atol=1e-5)), None)
        if match is None:
            problems.append(Problem(f"the result differs from the reference by up to {(out - expected).abs().max():.3g}, "
                                    "and matches none of the usual slips",
                                    "with the model in eval mode, average softmax(model(x)) and "
                                    "softmax(model(x.flip(3)))"))
            return
        axis, mode, averaged = match
        if axis == 2:
            problems.append(Problem("the mirror image is upside down: flip(2) flips the height axis of (B, C, H, W)",
                                    "mirror left-right with images.flip(3), the width axis: the network was "
                                    "trained on horizontal flips, never on vertical ones"))
        if mode == "train":
            problems.append(Problem("the model ran in training mode: BatchNorm used each batch's own statistics, "
                                    "so an image's prediction depends on the other images in the batch",
                                    "call model.eval() first (and predict under torch.no_grad())"))
        if averaged == "logits":
            problems.append(Problem("the rows do not sum to 1: these are averaged logits, not probabilities",
                                    "apply .softmax(-1) to each view's logits, then average"))

    return run_check("4.1 exercise 2 (test-time flips)", body)


def check_warmup_decay(fn: Callable[[int, int, float, int], float]) -> Check:
    """Check ``fn(step, total_steps, peak, warmup_steps)``: the learning rate at ``step`` (0-based).

    It climbs linearly from 0 at step 0 to ``peak`` at ``warmup_steps``, then falls linearly to 0
    at ``total_steps``: the values ``dlbook.train.linear_warmup_decay`` gives, compared at every step
    of four schedules.
    """
    from dlbook.train import linear_warmup_decay

    def body(problems: list[Problem]) -> None:
        for total, peak, warmup in ((10, 1.0, 2), (880, 0.2, 176), (7, 0.4, 0), (5, 0.1, 5)):
            opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=peak)
            sched = linear_warmup_decay(opt, warmup, total)
            for step in range(total):
                want = opt.param_groups[0]["lr"]
                got = attempt(fn, step, total, peak, warmup, what=f"lr_at({step}, {total}, {peak}, {warmup})")
                if not isinstance(got, (int, float)) or abs(float(got) - want) > 1e-9 * max(1.0, peak):
                    hint = ("during the warm-up the rate is peak * step / warmup_steps, 0 at step 0"
                            if step < warmup else "after the warm-up it is peak * (total - step) / (total - warmup)")
                    problems.append(Problem(f"lr_at({step}, {total}, {peak}, {warmup}) = {got!r}, expected "
                                            f"{want:.6g}", hint))
                    return
                opt.step()
                sched.step()

    return run_check("4.1 exercise 3 (warm-up and linear decay)", body)


__all__ = ["check_decay_groups", "check_flip_tta", "check_warmup_decay"]
