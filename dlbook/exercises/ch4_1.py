"""Checks for the exercises of chapter 4.1 (CIFAR-10 with VGG-11).

* :func:`check_decay_groups`: weight decay on the convolution and linear weights only, each
  parameter in exactly one group, checked against a VGG-11's own modules.
* :func:`check_flip_tta`: the "find the bug" exercise on test-time flips (a vertical flip,
  a model left in training mode, averaged logits), checked against the averaged softmax of
  each image and its mirror with the model in evaluation mode.
* :func:`check_warmup_decay`: the learning rate of chapter 4.1's schedule at every step,
  checked against ``dlbook.train.linear_warmup_decay``.
* :func:`check_epochs_that_fit`: re-planning the epochs to the time left, as
  ``dlbook.train.TimeBudget`` does after every epoch, checked against it on cases that tell
  the usual slips apart (the mean epoch alone, the last alone, no margin, no clamp).
* :func:`check_ema_update`: one step of the moving average of the weights, parameters and
  BatchNorm statistics alike, checked against ``torch.optim.swa_utils.AveragedModel`` (what
  ``dlbook.train.WeightAverage`` keeps) over a few real training steps.

Example:
    >>> from dlbook.exercises import report
    >>> from dlbook.train import param_groups
    >>> report(check_decay_groups(param_groups))
    4.1 exercise 1 (weight-decay groups): correct
"""

from __future__ import annotations

import copy
import math
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


# (seconds, done, elapsed, last, margin): a first epoch; a last epoch slower than the mean; one faster; the
# time nearly spent; overspent; no margin
EPOCH_CASES = ((2700.0, 1, 82.0, 82.0, 0.95), (2700.0, 10, 900.0, 120.0, 0.95), (2700.0, 10, 1000.0, 80.0, 0.95),
               (2700.0, 30, 2690.0, 90.0, 0.95), (2700.0, 31, 2750.0, 90.0, 0.95), (600.0, 2, 200.0, 100.0, 1.0))

# the usual slips, each as the formula it computes, with what it does wrong and what to do instead
EPOCH_SLIPS = {
    "timing by the mean epoch alone": (
        lambda s, d, e, la, m: d + max(0, math.floor((s - e) * m / (e / d))),
        "when the last epoch was slower than the mean (the machine got busier, validation grew), the plan "
        "overruns the budget", "time the next epochs at max(elapsed / done, last)"),
    "timing by the last epoch alone": (
        lambda s, d, e, la, m: d + max(0, math.floor((s - e) * m / la)),
        "one fast epoch makes the plan too long", "time the next epochs at max(elapsed / done, last)"),
    "planning without the margin": (
        lambda s, d, e, la, m: d + max(0, math.floor((s - e) / max(e / d, la))),
        "the plan fills the whole time left, so any slower epoch overruns it",
        "plan for margin * (seconds - elapsed)"),
    "taking the margin off the whole budget": (
        lambda s, d, e, la, m: d + max(0, math.floor((s * m - e) / max(e / d, la))),
        "the margin is taken off the whole budget, so late in the run nothing is left to absorb a slow epoch",
        "apply the margin to the time left: margin * (seconds - elapsed)"),
    "counting only the epochs still to run": (
        lambda s, d, e, la, m: max(0, math.floor((s - e) * m / max(e / d, la))),
        "this is the count of epochs still to run, not the whole plan", "add the done epochs"),
    "no floor at the epochs done": (
        lambda s, d, e, la, m: d + math.floor((s - e) * m / max(e / d, la)),
        "once the budget is overspent, the plan drops below the epochs already done",
        "never plan fewer than done: done + max(0, ...)"),
    "rounding up": (
        lambda s, d, e, la, m: d + max(0, math.ceil((s - e) * m / max(e / d, la))),
        "a part of an epoch is rounded up to a whole one, which does not fit", "round down (math.floor)"),
}


def check_epochs_that_fit(fn: Callable[[float, int, float, float, float], int]) -> Check:
    """Check ``fn(seconds, done, elapsed, last, margin)``: the whole epochs, done ones included, that fit.

    The reference is :meth:`dlbook.train.TimeBudget.epochs_that_fit`: the next epochs are timed at
    the slower of the mean epoch so far and the last one, ``margin`` of the time left is planned
    for, and the plan never drops below ``done``. A wrong answer is compared with each of
    ``EPOCH_SLIPS`` on all of ``EPOCH_CASES`` to say which slip it is.
    """
    from dlbook.train import TimeBudget

    def body(problems: list[Problem]) -> None:
        got, want = [], []
        for seconds, done, elapsed, last, margin in EPOCH_CASES:
            answer = attempt(fn, seconds, done, elapsed, last, margin,
                             what=f"epochs_that_fit({seconds:g}, {done}, {elapsed:g}, {last:g}, {margin:g})")
            got.append(answer)
            want.append(TimeBudget(seconds, margin=margin).epochs_that_fit(done, elapsed, last))
        if got == want:
            return
        if not all(isinstance(a, int) and not isinstance(a, bool) for a in got):
            problems.append(Problem(f"it returned {got}, not whole numbers of epochs",
                                    "return an int: the plan counts whole epochs (math.floor)"))
            return
        for name, (formula, what, fix) in EPOCH_SLIPS.items():
            if got == [formula(*case) for case in EPOCH_CASES] != want:
                problems.append(Problem(f"it matches a usual slip, {name}: {what}", fix))
                return
        case, answer, expected = next((c, a, w) for c, a, w in zip(EPOCH_CASES, got, want) if a != w)
        problems.append(Problem(f"epochs_that_fit{case} = {answer}, expected {expected}",
                                "done + max(0, floor(margin * (seconds - elapsed) / max(elapsed / done, last)))"))

    return run_check("4.1 exercise 4 (re-planning the epochs)", body)


def check_ema_update(fn: Callable[[nn.Module, nn.Module, float], None]) -> Check:
    """Check ``fn(average, model, decay)``: one in-place step of the moving average of ``model``'s weights.

    ``average`` starts as a copy of the model. After each of six SGD steps of a small network
    with BatchNorm, the student's update runs, and every floating-point parameter and buffer
    of ``average`` must equal ``decay * average + (1 - decay) * model``: the values of a
    :class:`torch.optim.swa_utils.AveragedModel` with ``use_buffers=True`` (the BatchNorm
    running statistics averaged too), as :class:`dlbook.train.WeightAverage` keeps it.
    """
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    def floats(module: nn.Module) -> dict[str, torch.Tensor]:
        both = {**dict(module.named_parameters()), **dict(module.named_buffers())}
        return {k: v.detach().clone() for k, v in both.items() if v.is_floating_point()}

    def body(problems: list[Problem]) -> None:
        decay = 0.9
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
        reference, swapped = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(d), use_buffers=True)
                              for d in (decay, 1 - decay))  # swapped: the slip of weighting the new weights by decay
        reference.update_parameters(model)  # the first update copies the model
        swapped.update_parameters(model)
        average = copy.deepcopy(model)
        start = floats(average)
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        g = torch.Generator().manual_seed(1)
        for _ in range(6):
            x, y = torch.randn(16, 4, generator=g), torch.randint(0, 3, (16,), generator=g)
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            opt.zero_grad()
            attempt(fn, average, model, decay, what=f"ema_update(average, model, {decay})")
            reference.update_parameters(model)
            swapped.update_parameters(model)
        got, want, now = floats(average), floats(reference.module), floats(model)
        wrong = [k for k in want if not torch.allclose(got[k], want[k], atol=1e-6)]
        if not wrong:
            return
        if all(torch.equal(got[k], start[k]) for k in got):
            problems.append(Problem("average did not change: the update must write into its tensors",
                                    "update in place under torch.no_grad(), e.g. a.mul_(decay).add_(p, alpha=1 - decay) "
                                    "or a.lerp_(p, 1 - decay); a = ... only rebinds a local name"))
            return
        if all(torch.allclose(got[k], now[k], atol=1e-6) for k in got):
            problems.append(Problem("average is a copy of the model: with decay 0.9 it should lag behind it",
                                    "keep decay of the old average: decay * a + (1 - decay) * p"))
            return
        buffers = {k for k, _ in model.named_buffers()}
        if all(k in buffers for k in wrong):
            problems.append(Problem(f"the parameters are right, the buffers are not ({', '.join(wrong)}): the "
                                    "BatchNorm statistics must be averaged with the weights they belong to",
                                    "loop over model.buffers() too (the floating-point ones), as "
                                    "AveragedModel(use_buffers=True) does"))
            return
        if all(torch.allclose(got[k], v, atol=1e-6) for k, v in floats(swapped.module).items()):
            problems.append(Problem("decay and 1 - decay are swapped: the new weights count 0.9 and the average 0.1, "
                                    "so it follows the model step by step and averages nothing",
                                    "a = decay * a + (1 - decay) * p: decay is the share the old average keeps"))
            return
        problems.append(Problem(f"{len(wrong)} of {len(want)} tensors differ from the reference, e.g. {wrong[0]} by up "
                                f"to {(got[wrong[0]] - want[wrong[0]]).abs().max():.3g}",
                                "each step: a = decay * a + (1 - decay) * p, for every floating-point parameter "
                                "and buffer"))

    return run_check("4.1 exercise 5 (a moving average of the weights)", body)


__all__ = ["check_decay_groups", "check_ema_update", "check_epochs_that_fit", "check_flip_tta", "check_warmup_decay"]
