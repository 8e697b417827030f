"""Chapter 4.1's recipe search: candidate VGG-11 recipes compared on validation with a cheap proxy.

A full run of chapter 4.1 takes most of an hour on a 2-core CPU, so recipes are compared
on a proxy: each candidate trains on a fixed random subset of the 45,000-image training
split (``--subset``, 20,000) for a short schedule (``--epochs``, 3, the recipe's warm-up
and decay compressed into it), and is scored on the chapter's 5,000 validation images,
with and without test-time views. The test set is not loaded. Every candidate starts from
the same seed.

The candidates (``dlbook.recipes.cifar10``):

* ``first``: chapter 4.1's first recipe (``FIRST``);
* ``page``: ``PAGE`` (linear head, logits x 0.125, peak 0.2, label smoothing 0.2, crops padded by 4);
* ``page+cutout8``: ``PAGE`` with 8x8 cutout, Page's regulariser for 24-epoch runs;
* ``page+pad2``: ``PAGE`` with 2-pixel instead of 4-pixel crop padding, airbench's lighter
  translation for short schedules (this is ``FAST``, the recipe the chapter trains);
* ``page+dropout``: ``PAGE`` with the article's dropout (0.5, before the linear head);
* ``page+pad2+batch128``: ``page+pad2`` at batch 128 with the peak learning rate halved to 0.1 (the
  linear scaling rule): twice the steps for the same images, as in the usual CIFAR-10 recipes;
* ``page+pad2+whiten``: ``page+pad2`` with airbench's frozen whitening first layer (54 of the first
  convolution's 64 filters set from the principal directions of the training images' 3x3
  patches, :func:`dlbook.models.vgg.patch_whitening_`).

Candidates can be run in separate invocations (``--candidates``) into separate files with the
same settings; the chapter reads every file with its settings and shows them together.

A proxy ranks recipes; it does not predict their full-length accuracy. The chapter reads
the JSON this writes (``benchmarks/results/recipe_search-*.json``) and says which choice
each comparison supports. About 6 minutes per candidate on a 2-core CPU::

    flock /tmp/dlbook-cpu.lock python benchmarks/recipe_search.py results/recipe_search-cpu-DATE.json
"""

from __future__ import annotations

import sys
import time

import torch

from _common import parser, pick_device, run_and_write, start
from dlbook.data import TensorLoader, load_cifar10, stratified_split
from dlbook.metrics import accuracy
from dlbook.recipes.cifar10 import FIRST, PAGE, TTA_CHOICES, search_tables, tta_views
from dlbook.train import LRSchedule, Trainer, predict, seed_everything

CANDIDATES = {
    "first": FIRST,
    "page": PAGE,
    "page+cutout8": PAGE.replace(cutout=8),
    "page+pad2": PAGE.replace(crop_padding=2),
    "page+dropout": PAGE.replace(dropout=0.5),
    "page+pad2+batch128": PAGE.replace(crop_padding=2, batch_size=128, peak_lr=0.1),
    "page+pad2+whiten": PAGE.replace(crop_padding=2, whiten=True),
}


def run(args) -> dict:
    device = pick_device(args.device)
    images, labels = load_cifar10("train")
    train_idx, val_idx = stratified_split(labels, val_size=5_000, seed=args.seed)  # chapter 4.1's split
    g = torch.Generator().manual_seed(args.seed)
    subset = train_idx[torch.randperm(len(train_idx), generator=g)[:args.subset]]
    if args.quick:
        val_idx = val_idx[torch.randperm(len(val_idx), generator=g)[:200]]
    x, y, x_val, y_val = images[subset], labels[subset], images[val_idx], labels[val_idx]
    result = start("recipe_search", "candidate 4.1 recipes ranked on validation by a short proxy run", device,
                   subset=len(subset), epochs=args.epochs, candidates=args.candidates, seed=args.seed,
                   val_size=len(val_idx), quick=args.quick)
    result["candidates"] = {}
    for name in args.candidates:
        recipe = CANDIDATES[name].replace(epochs=args.epochs, **({"batch_size": 32} if args.quick else {}))
        seed_everything(args.seed)
        train = TensorLoader(x, y, recipe.batch_size, shuffle=True, drop_last=True, seed=args.seed,
                             transform=recipe.train_transform())
        val = TensorLoader(x_val, y_val, 500, transform=recipe.eval_transform())
        model = recipe.model(x)  # the training subset: what a whitening first layer is set from
        optimizer = recipe.optimizer(model)
        trainer = Trainer(model, optimizer, recipe.loss(), device=device, precision="auto", channels_last=True,
                          metrics={"accuracy": accuracy}, progress="epochs",  # one line an epoch, to watch a long proxy
                          callbacks=[LRSchedule(recipe.schedule(optimizer, len(train)), "batch")])
        tic = time.perf_counter()
        history = trainer.fit(train, val, epochs=recipe.epochs)
        train_s = time.perf_counter() - tic
        views = {}
        for tta in TTA_CHOICES:
            out, targets = predict(trainer.model, val, device=device, precision="auto", tta=tta_views(tta))
            views[tta] = round(accuracy(out, targets), 4)
        result["candidates"][name] = {
            "recipe": recipe.as_dict(), "train_s": round(train_s, 1),
            "val_accuracy_by_epoch": [round(r["val_accuracy"], 4) for r in history.records],
            "val_accuracy": views}
        print(f"{name:14s} validation accuracy {views} after {train_s:.0f} s", flush=True)
    return result


def report(result: dict) -> str:
    return search_tables([result], keep_quick=True)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    p.add_argument("--subset", type=int, default=20_000, help="training images of the proxy (from the 45,000)")
    p.add_argument("--epochs", type=int, default=3, help="epochs of the proxy's compressed schedule")
    args = p.parse_args(argv)
    if args.quick:
        args.subset, args.epochs = min(args.subset, 256), 1
    if args.subset < 64 or args.epochs < 1:
        p.error("--subset must be >= 64 and --epochs >= 1")
    return run_and_write(args, run, report)


if __name__ == "__main__":
    sys.exit(main())
