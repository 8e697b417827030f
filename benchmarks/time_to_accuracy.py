"""Time to accuracy: how long the book's recipes take to reach a test accuracy, over seeds, and against a peer.

The claims measured:

* ``lenet5``: chapter 3.1's LeNet-5 recipe on Fashion-MNIST (Adam 3e-3 with a one-cycle
  schedule, batch 128, 15 epochs), 3 seeds: the median and spread of its final test
  accuracy and of its time to 88% and 90%.
* ``bilstm``: chapter 4.2's BiLSTM on SST-2 (max pooling, embedding dropout 0.5, Adam 2e-3,
  batch 64, gradient clipping at 5, one thread), 3 seeds, 10 epochs: time to 78% and 80%.
* ``vgg11``: chapter 4.1's VGG-11-BN recipe on CIFAR-10, ``dlbook.recipes.cifar10.FAST``
  (a linear head with logits x 1/8, Nesterov SGD warmed up to 0.2 and decayed linearly to 0,
  weight decay 5e-4 on weights only, label smoothing 0.2, batch 256, crop and flip on
  batches, bf16 autocast, channels-last), trained as the chapter trains it: a first epoch
  count from the measured speed, re-planned after every epoch by ``dlbook.train.TimeBudget``
  so that the run fills the budget, and scored as the chapter delivers it, the moving
  average of the weights (EMA 0.998) with test-time flips, the pair chapter 4.1 chose on
  validation. It has no validation split to stop on: its schedule ends at 0 when the budget
  does, which is when the chapter's early stopping kept its last epoch too. 2 seeds, against
  ``peer``: the recipe readers copy from the widely used ``kuangliu/pytorch-cifar``
  (VGG11 with BatchNorm and one linear classifier, SGD lr 0.1, momentum 0.9, weight decay
  5e-4, cosine schedule, crop + flip, batch 128, float32, a torchvision ``DataLoader`` of
  PIL images), re-implemented here from those hyper-parameters. Both get the same
  wall-clock budget (``--minutes``); the peer's cosine spans the epochs that fit in it,
  estimated from its first epoch, which is the best use of the budget a reader could make.
  Claim: dlbook reaches 90% while the peer, at the same time, is below 85%.

Test accuracy is measured after every epoch, outside the training clock: time to accuracy
is the training time at the first epoch end at or above the threshold (so it is resolved
to an epoch). Nothing is chosen on these test numbers; they only say when. The VGG-11
runs take about 45 minutes each on a 2-core CPU: run them by hand, one at a time, on a
quiet machine, under the CPU lock::

    flock /tmp/dlbook-cpu.lock python benchmarks/time_to_accuracy.py results/time_to_accuracy.json
"""

from __future__ import annotations

import math
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from _common import parser, pick_device, run_and_write, start
from dlbook.data import (CIFAR10_MEAN, CIFAR10_STD, CIFAR10Images, Compose, Normalize,
                         TensorLoader, load_cifar10, load_fashion_mnist, load_sst,
                         stratified_split, to_float)
from dlbook.data.text import TextLoader, Vocab, tokenize
from dlbook.metrics import accuracy
from dlbook.models.lenet import LeNet5
from dlbook.models.rnn_classifier import RNNClassifier, RNNClassifierConfig
from dlbook.models.vgg import vgg11
from dlbook.recipes.cifar10 import FAST, epochs_for_budget, images_per_second, tta_views
from dlbook.train import (Callback, LRSchedule, TimeBudget, Trainer, WeightAverage, autocast, autocast_dtype, predict,
                          seed_everything)

EMA_DECAY = 0.998  # the average chapter 4.1 chose on validation (with flips) in its run of commit 58557d0
THRESHOLDS = {"lenet5": (0.88, 0.90), "bilstm": (0.78, 0.80), "vgg11": (0.85, 0.90), "peer": (0.85, 0.90)}


class TestClock(Callback):
    """After every epoch: read the training clock, then measure test accuracy off the clock.

    ``clock`` is the training clock: the wall clock less the time spent in these
    evaluations, so a :class:`dlbook.train.TimeBudget` given ``clock=test_clock.clock`` plans
    with training time only (place the budget before this callback). Stops the fit once the
    training clock passes ``budget_s``.
    """

    def __init__(self, evaluate, budget_s: float = math.inf):
        self.evaluate, self.budget_s = evaluate, budget_s
        self.off_s, self.start, self.curve = 0.0, 0.0, []

    def clock(self) -> float:
        """Seconds on the training clock (any origin): :func:`time.perf_counter` less the evaluations."""
        return time.perf_counter() - self.off_s

    def on_fit_start(self, trainer, model) -> None:
        self.curve, self.start = [], self.clock()

    def on_train_epoch_end(self, trainer, model) -> None:
        train_s = self.clock() - self.start
        tic = time.perf_counter()
        self.curve.append((round(train_s, 2), self.evaluate(model)))
        self.off_s += time.perf_counter() - tic
        if train_s >= self.budget_s:
            trainer.should_stop = True


def time_to(curve: list[tuple[float, float]], threshold: float) -> float | None:
    """Training seconds at the first epoch end with test accuracy >= ``threshold`` (None if never)."""
    return next((t for t, acc in curve if acc >= threshold), None)


def accuracy_at(curve: list[tuple[float, float]], seconds: float) -> float | None:
    """Test accuracy at the last epoch end within ``seconds`` of training (None if no epoch ended by then)."""
    within = [acc for t, acc in curve if t <= seconds]
    return within[-1] if within else None


def quick_subset(n: int, *tensors: torch.Tensor) -> tuple:
    """``n`` random rows of each tensor (the same rows): the data sets are stored sorted by class."""
    rows = torch.randperm(len(tensors[0]), generator=torch.Generator().manual_seed(0))[:n]
    return tuple(t[rows] for t in tensors)


def evaluator(loader, device, precision="fp32", tta=None):
    def evaluate(model) -> float:
        outputs, targets = predict(model, loader, device=device, precision=precision, tta=tta)
        return accuracy(outputs, targets)
    return evaluate


def lenet5(seed: int, args, device) -> tuple[list, dict]:
    x_all, y_all = load_fashion_mnist("train")
    x_test, y_test = load_fashion_mnist("test")
    train_idx, _ = stratified_split(y_all, val_size=5_000, seed=seed)  # chapter 3.1's split: 55,000 train
    if args.quick:
        (train_idx,), (x_test, y_test) = quick_subset(1_000, train_idx), quick_subset(500, x_test, y_test)
    x, y = x_all[train_idx], y_all[train_idx]
    mean, std = x.float().mean().item() / 255, x.float().std().item() / 255

    def to_input(images):
        return ((images.float() / 255 - mean) / std).unsqueeze(1)  # (B, 1, 28, 28)

    seed_everything(seed)
    train = TensorLoader(x, y, batch_size=128, shuffle=True, transform=to_input, seed=seed)
    test = TensorLoader(x_test, y_test, batch_size=1024, transform=to_input)
    model = LeNet5()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    epochs = 1 if args.quick else 15
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * len(train))
    clock = TestClock(evaluator(test, device))
    Trainer(model, opt, nn.CrossEntropyLoss(), device=device, callbacks=[LRSchedule(schedule, "batch"), clock],
            progress=False).fit(train, None, epochs=epochs)
    return clock.curve, {}


def bilstm(seed: int, args, device) -> tuple[list, dict]:
    texts, labels = {}, {}
    for split in ("train", "test"):
        texts[split], labels[split] = load_sst(split)
    if args.quick:
        for split, n in (("train", 400), ("test", 200)):
            (rows,) = quick_subset(n, torch.arange(len(texts[split])))
            texts[split], labels[split] = [texts[split][i] for i in rows], labels[split][rows]
    tokens = {s: [tokenize(t) for t in texts[s]] for s in texts}
    vocab = Vocab.build(tokens["train"], min_freq=2)
    encoded = {s: [vocab.encode(t) for t in tokens[s]] for s in tokens}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # chapter 4.2's fixed thread count
    try:
        seed_everything(seed)
        train = TextLoader(encoded["train"], labels["train"], batch_size=64, shuffle=True, seed=seed)
        test = TextLoader(encoded["test"], labels["test"], batch_size=256, bucket=False)
        model = RNNClassifier(RNNClassifierConfig(vocab_size=len(vocab), embedding_dim=128, hidden_size=128,
                                                  cell="lstm", bidirectional=True, dropout=0.5, pooling="max",
                                                  embedding_dropout=0.5))
        clock = TestClock(evaluator(test, device))
        Trainer(model, torch.optim.Adam(model.parameters(), lr=2e-3), nn.CrossEntropyLoss(), device=device,
                precision="fp32", grad_clip=5.0, callbacks=[clock], progress=False).fit(
                    train, None, epochs=1 if args.quick else 10)
    finally:
        torch.set_num_threads(threads)
    return clock.curve, {}


def _cifar(seed: int, args):
    images, labels = load_cifar10("train")
    x_test, y_test = load_cifar10("test")
    train_idx, _ = stratified_split(labels, val_size=5_000, seed=seed)  # chapter 4.1's split: 45,000 train
    if args.quick:
        (train_idx,), (x_test, y_test) = quick_subset(512, train_idx), quick_subset(256, x_test, y_test)
    return images[train_idx], labels[train_idx], x_test, y_test


def vgg11_dlbook(seed: int, args, device) -> tuple[list, dict]:
    """Chapter 4.1's recipe (``dlbook.recipes.cifar10.FAST``) and its procedure: the epochs fitted to the budget by
    :class:`dlbook.train.TimeBudget`, the moving average of the weights scored with the chosen test-time views."""
    x, y, x_test, y_test = _cifar(seed, args)
    recipe = FAST.replace(batch_size=32 if args.quick else args.batch_size,
                          peak_lr=FAST.peak_lr * (32 if args.quick else args.batch_size) / FAST.batch_size)
    if args.resident:  # the GPU settings: the whole uint8 data set lives on the device, batches never cross PCIe
        x, y, x_test, y_test = (t.to(device) for t in (x, y, x_test, y_test))
    if args.quick:
        epochs = 1
    elif args.vgg_epochs:
        epochs = args.vgg_epochs
    else:  # as chapter 4.1 does: a first plan from the measured speed, which TimeBudget re-plans
        speed = images_per_second(recipe, x[:4 * recipe.batch_size], y[:4 * recipe.batch_size], device)
        epochs = epochs_for_budget(speed, len(x), args.minutes * 60)
        print(f"vgg11 seed {seed}: {speed:.0f} training images/s -> {epochs} epochs in {args.minutes:g} min", flush=True)
    recipe = recipe.replace(epochs=epochs)
    seed_everything(seed)
    train = TensorLoader(x, y, recipe.batch_size, shuffle=True, drop_last=True, seed=seed,
                         transform=recipe.train_transform())
    test = TensorLoader(x_test, y_test, 500, transform=recipe.eval_transform())
    model = recipe.model(x)
    opt = recipe.optimizer(model)
    ema = WeightAverage(model, EMA_DECAY)  # before any compile: the average is a copy of the plain model
    if args.compile:
        model.compile()  # compiles in place: the optimizer keeps the same parameters
        compile_s = prime_compiled(model, train, device)
        print(f"vgg11 seed {seed}: torch.compile took {compile_s:.0f} s, outside the training clock", flush=True)
    schedule = recipe.schedule(opt, len(train))
    score = evaluator(test, device, "auto", tta_views(recipe.tta))
    clock = TestClock(lambda _trained: score(ema.average.module), budget_s=args.minutes * 60)
    callbacks = [LRSchedule(schedule, "batch"), ema]
    budget = None
    if not args.vgg_epochs:  # the budget, on the training clock (the quick mode's 1-second one keeps its 1 epoch)
        budget = TimeBudget(1.0 if args.quick else args.minutes * 60, schedule, margin=0.95, clock=clock.clock)
        callbacks.append(budget)
    Trainer(model, opt, recipe.loss(), device=device, precision="auto", channels_last=True,
            callbacks=[*callbacks, clock], progress=False).fit(train, None, epochs=recipe.epochs)
    plans = budget.plans if budget else []
    if plans:
        print(f"vgg11 seed {seed}: first plan {recipe.epochs} epochs; re-planned (after epoch -> epochs): "
              + ", ".join(f"{done} -> {planned}" for done, planned in plans), flush=True)
    return clock.curve, {"epochs_planned_first": recipe.epochs, "plans": plans, "weights": f"EMA {EMA_DECAY}",
                         "tta": recipe.tta, "recipe": recipe.as_dict()}


def prime_compiled(model: nn.Module, loader, device) -> float:
    """Compile ``model``'s training graph on one batch before the clock starts; seconds taken.

    A forward and backward pass with the weights and batch-norm statistics saved before and
    restored after, and no optimizer step, so training starts from the same state.
    """
    import copy

    state = copy.deepcopy(model.state_dict())
    tic = time.perf_counter()
    x, y = next(iter(loader))
    x = x.to(device).contiguous(memory_format=torch.channels_last)
    model.to(device, memory_format=torch.channels_last).train()
    with autocast(torch.device(device), autocast_dtype(torch.device(device), "auto")):
        F.cross_entropy(model(x), y.to(device)).backward()
    model.zero_grad(set_to_none=True)
    model.load_state_dict(state)
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - tic


def vgg11_peer(seed: int, args, device) -> tuple[list, dict]:
    """The peer recipe as a reader writes it: a plain loop, a DataLoader of PIL images, float32."""
    import torchvision.transforms as T

    x, y, x_test, y_test = _cifar(seed, args)
    seed_everything(seed)
    normalize = T.Normalize(CIFAR10_MEAN, CIFAR10_STD)
    train_set = CIFAR10Images(x, y, T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                                               normalize]))
    batch = 32 if args.quick else 128
    train = torch.utils.data.DataLoader(train_set, batch_size=batch, shuffle=True, num_workers=2,
                                        generator=torch.Generator().manual_seed(seed))
    test = TensorLoader(x_test, y_test, 500, transform=Compose([to_float, Normalize(CIFAR10_MEAN, CIFAR10_STD)]))
    model = vgg11(num_classes=10, hidden=(), dropout=0.0).to(device)  # kuangliu's VGG: one linear classifier
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    evaluate, curve, train_s, budget_s = evaluator(test, device), [], 0.0, args.minutes * 60
    schedule, epoch = None, 0
    while train_s < budget_s and (not args.quick or epoch < 1):
        tic = time.perf_counter()
        model.train()
        for images, targets in train:
            images, targets = images.to(device), targets.to(device)
            loss = F.cross_entropy(model(images), targets)
            opt.zero_grad()
            loss.backward()
            opt.step()
        epoch += 1
        train_s += time.perf_counter() - tic
        if schedule is None:  # after the first epoch: a cosine over the epochs that fit in the budget
            fit_epochs = max(epoch + 1, int(budget_s // train_s))
            schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=fit_epochs - epoch)
        else:
            schedule.step()
        curve.append((round(train_s, 2), evaluate(model)))
    return curve, {}


TASKS = {"lenet5": (lenet5, 3), "bilstm": (bilstm, 3), "vgg11": (vgg11_dlbook, 2), "peer": (vgg11_peer, 1)}


def summarise(task: str, curves: dict[int, list]) -> dict:
    finals = [c[-1][1] for c in curves.values()]
    out = {"seeds": list(curves), "curves": {str(s): c for s, c in curves.items()},
           "final_test_accuracy": {"median": statistics.median(finals), "min": min(finals), "max": max(finals)},
           "train_s": statistics.median(c[-1][0] for c in curves.values())}
    for thr in THRESHOLDS[task]:
        times = [time_to(c, thr) for c in curves.values()]
        reached = [t for t in times if t is not None]
        out[f"time_to_{thr:.2f}"] = {"reached": f"{len(reached)}/{len(times)}",
                                     "median_s": statistics.median(reached) if reached else None,
                                     "min_s": min(reached) if reached else None,
                                     "max_s": max(reached) if reached else None}
    return out


def summary_parts(task: str, t: dict) -> list[str]:
    """A :func:`summarise` result as phrases: the final accuracy's median and range, then the time to each threshold."""
    f = t["final_test_accuracy"]
    parts = [f"final {f['median']:.2%} (range {f['min']:.2%}-{f['max']:.2%})"]
    for thr in THRESHOLDS[task]:
        tt = t[f"time_to_{thr:.2f}"]
        parts.append(f"to {thr:.0%}: " + (f"{tt['median_s'] / 60:.1f} min ({tt['min_s'] / 60:.1f}-"
                                          f"{tt['max_s'] / 60:.1f}), {tt['reached']} seeds"
                                          if tt["median_s"] is not None else f"never ({tt['reached']})"))
    return parts


def across_runs(newest_first: list[dict]) -> str | None:
    """One summary over the runs of separate sittings, for each task whose seeds come from more than one run.

    ``newest_first`` are this script's JSON results; a ``(task, seed)`` measured twice is
    taken from the newest run. Each seed's line names its epochs, training time and machine,
    so that seeds run on different machines, or with different epochs, are not read as one
    seed spread unawares. None when no task spans two runs.

    Example:
        >>> a = {"machine": {"cpu": "EPYC"}, "settings": {"vgg_epochs": 2},
        ...      "tasks": {"vgg11": {"curves": {"1": [[60.0, 0.80], [120.0, 0.86]]}}}}
        >>> b = {"machine": {"cpu": "Xeon"}, "settings": {"vgg_epochs": None},
        ...      "tasks": {"vgg11": {"curves": {"0": [[70.0, 0.79], [140.0, 0.84]]}}}}
        >>> print(across_runs([a, b]))
        across the 2 runs, vgg11 seeds [0, 1]: final 85.00% (range 84.00%-86.00%); to 85%: 2.0 min (2.0-2.0), 1/2 seeds; to 90%: never (0/2)
          seed 0: 84.00% after 2 epochs, 2.3 min of training, epochs planned once from the budget, last weights with flip; crops padded by 2 (FAST; recipe not stored), on Xeon
          seed 1: 86.00% after 2 epochs, 2.0 min of training, epochs fixed by --vgg-epochs, last weights with flip; crops padded by 2 (FAST; recipe not stored), on EPYC
    """
    found: dict[str, dict[int, tuple[list, dict]]] = {}
    for r in newest_first:
        for task, t in r.get("tasks", {}).items():
            for seed, curve in t.get("curves", {}).items():
                found.setdefault(task, {}).setdefault(int(seed), (curve, r))
    lines = []
    for task, by_seed in found.items():
        runs = len({id(r) for _, r in by_seed.values()})  # the results are dicts: count them by identity
        if runs < 2:
            continue
        by_seed = dict(sorted(by_seed.items()))
        s = summarise(task, {seed: [tuple(p) for p in curve] for seed, (curve, _) in by_seed.items()})
        lines.append(f"across the {runs} runs, {task} seeds {s['seeds']}: " + "; ".join(summary_parts(task, s)))
        for seed, (curve, r) in by_seed.items():
            how = ""
            if task == "vgg11":
                how = ", " + vgg_procedure(r["settings"], r["tasks"][task].get("runs", {}).get(str(seed)))
            lines.append(f"  seed {seed}: {curve[-1][1]:.2%} after {len(curve)} epochs, {curve[-1][0] / 60:.1f} min of "
                         f"training{how}, on {r['machine']['cpu']}")
    return "\n".join(lines) or None


def vgg_procedure(settings: dict, run: dict | None) -> str:
    """How one seed of dlbook's VGG-11 set its epochs, which weights it scored and how it augmented, in a phrase.

    ``run`` is the seed's entry of the task's ``runs`` (None in results from before
    TimeBudget, which planned the epochs once and scored the last weights). Results without
    the recipe in it come from before it was stored (2026-12-04); all of them ran ``FAST``,
    whose crops were then, as now, padded by 2 pixels, without cutout.

    Example:
        >>> vgg_procedure({"vgg_epochs": None}, {"epochs_planned_first": 26, "plans": [[1, 30], [3, 31]],
        ...                                     "weights": "EMA 0.998", "tta": "flip",
        ...                                     "recipe": {"crop_padding": 4, "cutout": 8, "whiten": False}})
        'epochs planned 26, re-planned by TimeBudget to 31, EMA 0.998 weights with flip; crops padded by 4, cutout 8'
        >>> vgg_procedure({"vgg_epochs": 18}, None)
        'epochs fixed by --vgg-epochs, last weights with flip; crops padded by 2 (FAST; recipe not stored)'
    """
    if settings.get("vgg_epochs"):
        epochs = "epochs fixed by --vgg-epochs"
    elif run is None:
        epochs = "epochs planned once from the budget"
    else:
        plans = run["plans"]
        epochs = f"epochs planned {run['epochs_planned_first']}" + (
            f", re-planned by TimeBudget to {plans[-1][1]}" if plans else ", kept by TimeBudget")
    weights = f"{run['weights']} weights with {run['tta']}" if run else "last weights with flip"
    recipe = (run or {}).get("recipe")
    if recipe is None:
        augment = "crops padded by 2 (FAST; recipe not stored)"
    else:
        augment = (f"crops padded by {recipe['crop_padding']}"
                   + (f", cutout {recipe['cutout']}" if recipe["cutout"] else "")
                   + (", whitened first layer" if recipe.get("whiten") else ""))
    return f"{epochs}, {weights}; {augment}"


def compare_with_peer(tasks: dict) -> dict:
    """dlbook's VGG-11 against the peer, from their curves: accuracy at equal time, and the peer when dlbook hit 90%.

    The equal time is the end of the shortest of the runs (each stops at the first epoch end
    past the budget, or, for dlbook, after its planned epochs), so that every run has finished
    an epoch by then; each side's accuracy there is its last finished epoch's (dlbook's: the
    median over its seeds).
    """
    ours, peer = tasks["vgg11"], tasks["peer"]
    our_curves, peer_curve = list(ours["curves"].values()), next(iter(peer["curves"].values()))
    equal = min(c[-1][0] for c in [*our_curves, peer_curve])
    ours_then = [a for a in (accuracy_at(c, equal) for c in our_curves) if a is not None]
    at = ours["time_to_0.90"]["median_s"]
    return {"dlbook_time_to_90_s": at,
            "peer_accuracy_at_that_time": accuracy_at(peer_curve, at) if at is not None else None,
            "peer_time_to_85_s": peer["time_to_0.85"]["median_s"],
            "equal_time_s": equal,
            "dlbook_accuracy_at_equal_time": statistics.median(ours_then) if ours_then else None,
            "peer_accuracy_at_equal_time": accuracy_at(peer_curve, equal)}


def run(args) -> dict:
    device = pick_device(args.device)
    result = start("time_to_accuracy", "the book's recipes' time to test accuracy over seeds; dlbook's 4.1 recipe "
                   "reaches 90% while the peer recipe, at the same time, is below 85%", device,
                   tasks=args.tasks, seeds=args.seeds, minutes=args.minutes, vgg_epochs=args.vgg_epochs, batch_size=args.batch_size,
                   resident=args.resident, compile=args.compile, quick=args.quick)
    result["tasks"] = {}
    for task in args.tasks:
        fn, n_seeds = TASKS[task]
        n_seeds = args.seeds or n_seeds
        seeds = [args.seed] if args.quick else list(range(args.seed, args.seed + n_seeds))
        curves, notes = {}, {}
        for seed in seeds:
            tic = time.perf_counter()
            curves[seed], notes[seed] = fn(seed, args, device)
            print(f"{task:7s} seed {seed}: final test accuracy {curves[seed][-1][1]:.4f} after "
                  f"{curves[seed][-1][0]:.0f} s of training ({time.perf_counter() - tic:.0f} s with evaluation)",
                  flush=True)
        result["tasks"][task] = summarise(task, curves)
        if any(notes.values()):  # what each seed's run decided on its own (VGG-11: its plans)
            result["tasks"][task]["runs"] = {str(seed): n for seed, n in notes.items()}
    if {"vgg11", "peer"} <= set(result["tasks"]):
        result["peer_comparison"] = compare_with_peer(result["tasks"])
    return result


def report(result: dict) -> str:
    lines = [f"time to test accuracy, {result['machine']['device']}; test accuracy after each epoch, off the clock"]
    for task, t in result["tasks"].items():
        parts = summary_parts(task, t)
        parts[0] += f" after {t['train_s'] / 60:.1f} min"
        lines.append(f"  {task:7s} seeds {t['seeds']}: " + "; ".join(parts))
    vgg = result["tasks"].get("vgg11")
    if vgg and result["settings"].get("vgg_epochs") and not result["settings"].get("quick"):
        lines.append(f"  dlbook's VGG-11 trained {result['settings']['vgg_epochs']} epochs, fixed by --vgg-epochs rather "
                     f"than planned from the budget, in {vgg['train_s'] / 60:.1f} min (median over seeds)")
    elif vgg and not result["settings"].get("quick"):
        budget_s = result["settings"]["minutes"] * 60
        lines.append(f"  dlbook's VGG-11 took {vgg['train_s'] / 60:.1f} min of the {budget_s / 60:g}-min budget "
                     f"({vgg['train_s'] / budget_s:.0%}; median over seeds)")
        for seed, run in vgg.get("runs", {}).items():
            lines.append(f"    seed {seed}: {vgg_procedure(result['settings'], run)}")
    left_out = [task for task in TASKS if task not in result["tasks"]]
    if left_out:
        lines.append(f"  not run (--tasks left them out): {', '.join(left_out)}"
                     + ("; so the comparison with the peer recipe is not measured" if "peer_comparison" not in result
                        else ""))
    if "peer_comparison" in result:
        c = result["peer_comparison"]
        if "equal_time_s" in c:
            shown = ["no finished epoch" if a is None else f"{a:.2%}"
                     for a in (c["dlbook_accuracy_at_equal_time"], c["peer_accuracy_at_equal_time"])]
            lines.append(f"  at equal time, {c['equal_time_s'] / 60:.1f} min of training (the shortest run's): "
                         f"dlbook {shown[0]}, the peer {shown[1]} (each at its last finished epoch)")
        if c["dlbook_time_to_90_s"] is None:
            best = max(acc for curve in result["tasks"]["vgg11"]["curves"].values() for _, acc in curve)
            lines.append(f"  dlbook did not reach 90% (its best epoch: {best:.2%}, {(0.90 - best) * 100:.2f} points "
                         "short): the claim is not met")
        else:
            peer_acc = c["peer_accuracy_at_that_time"]
            met = peer_acc is not None and peer_acc < 0.85
            lines.append(f"  dlbook reached 90% after {c['dlbook_time_to_90_s'] / 60:.1f} min; the peer then stood at "
                         + (f"{peer_acc:.2%}" if peer_acc is not None else "no finished epoch")
                         + f": the claim is {'met' if met else 'not met'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    p.add_argument("--seeds", type=int, default=None,
                   help="seeds per task, from --seed on (default: each task's own: lenet5 3, bilstm 3, vgg11 2, peer 1); "
                        "to split the VGG-11 runs over two sittings: --tasks vgg11 peer --seeds 1, then --tasks vgg11 "
                        "--seed 1 --seeds 1")
    p.add_argument("--minutes", type=float, default=45.0, help="training budget of each VGG-11 run (both recipes)")
    p.add_argument("--vgg-epochs", type=int, default=None,
                   help="epochs of dlbook's VGG-11 schedule (default: those that fit in --minutes at the measured speed)")
    p.add_argument("--batch-size", type=int, default=256,
                   help="dlbook's VGG-11 batch size (chapter 4.1: 256); the peak learning rate scales with it")
    p.add_argument("--resident", action="store_true", help="keep the data on the device (the GPU settings)")
    p.add_argument("--compile", action="store_true", help="torch.compile dlbook's VGG-11 (the GPU settings)")
    args = p.parse_args(argv)
    if args.minutes <= 0 or (args.vgg_epochs is not None and args.vgg_epochs < 1) or (args.seeds is not None
                                                                                      and args.seeds < 1):
        p.error("--minutes must be > 0, and --vgg-epochs and --seeds >= 1")
    return run_and_write(args, run, report)


if __name__ == "__main__":
    sys.exit(main())
