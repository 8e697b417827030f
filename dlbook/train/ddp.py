"""Data-parallel training with PyTorch's own engine, launched by ``torchrun``.

Run it as a module, on one machine or several::

    torchrun --nproc_per_node 2 -m dlbook.train.ddp --out runs/ddp --epochs 2
    python -m dlbook.train.ddp --out runs/one --epochs 2          # one process, no torchrun

Each process trains LeNet-5 (:mod:`dlbook.models.lenet`, no dropout, no BatchNorm)
wrapped in ``DistributedDataParallel``, through the ordinary :class:`dlbook.train.Trainer`,
with gloo on a CPU and NCCL on GPUs. Rank 0 writes to ``--out``:

* ``params.pt``: the final ``state_dict`` (:func:`dlbook.files.save_checked`);
* ``summary.json``: steps, seconds of ``fit`` in this attempt (not the start-up), examples
  per second, world size, backend, threads per process, restarts, final training loss;
* ``checkpoint.pt``: a Trainer checkpoint after every epoch (:mod:`dlbook.train.checkpoint`).

**Why two processes end where one does.** With ``--batch-size B`` and ``W`` processes,
each process takes ``B / W`` examples per step and ``DistributedDataParallel`` averages
the gradients, so every step sees the same ``B`` examples as one process would:

* ``DistributedSampler`` shuffles with ``seed + epoch`` whatever ``W`` is, and rank ``r``
  takes positions ``r, r + W, ...`` of that permutation; so the ``B / W`` examples of
  each rank's step ``t`` are, together, exactly positions ``tB .. tB + B - 1``, the
  batch ``t`` of a single process.
* The sampler pads the dataset with repeated examples when ``W`` does not divide it, so
  the script keeps ``floor(N / B) * B`` examples: every step is full, nothing repeats.
* The loss is the *mean* over the local batch and DDP *averages* the gradients; with
  equal local batches the mean of the means is the mean over ``B`` (a summed loss
  would be ``W`` times too small after averaging).
* BatchNorm would normalise with per-process statistics (use ``SyncBatchNorm``) and
  dropout would draw different masks per process, so the model has neither.

What remains is floating-point: the gradient of ``B`` examples summed in one go or as
two halves differs in the last bits, so parameters agree to about ``1e-6``, not bitwise.

**Fault tolerance.** With ``torchrun --max-restarts 1``, a worker that dies takes its
group down and torchrun starts it again; on a restart (``TORCHELASTIC_RESTART_COUNT``
> 0) the script resumes from ``checkpoint.pt`` with ``Trainer.fit(resume_from=...)``,
which restores weights, optimizer and RNG states exactly, so the run ends with the
parameters of an uninterrupted one. ``--kill-at-step S`` makes rank ``--kill-rank``
kill itself with SIGKILL after step ``S`` of the first attempt, to show this.

Example:
    >>> args = parse_args(["--out", "runs/ddp", "--batch-size", "64"])
    >>> args.batch_size, args.data, args.backend
    (64, 'synthetic', 'auto')
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Sequence

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from dlbook.files import load_checked, save_checked
from dlbook.models.lenet import LeNet5, LeNetConfig
from dlbook.train.callbacks import Callback, Checkpoint
from dlbook.train.trainer import Trainer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line of ``python -m dlbook.train.ddp`` (see ``--help``).

    Example:
        >>> parse_args(["--out", "o", "--epochs", "3"]).epochs
        3
    """
    p = argparse.ArgumentParser(prog="python -m dlbook.train.ddp",
                                description="Train LeNet-5 with DistributedDataParallel (launch with torchrun).")
    p.add_argument("--out", required=True, type=Path, help="folder for params.pt, summary.json, checkpoint.pt")
    p.add_argument("--data", choices=("synthetic", "fashion-mnist"), default="synthetic",
                   help="synthetic 28x28 images (fast, offline) or the Fashion-MNIST training set")
    p.add_argument("--n-train", type=int, default=512, help="training examples (kept: a multiple of --batch-size)")
    p.add_argument("--batch-size", type=int, default=64, help="GLOBAL batch size, split evenly across processes")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=0.05, help="SGD learning rate (momentum 0.9)")
    p.add_argument("--seed", type=int, default=0, help="seeds the model, the synthetic data and the sampler")
    p.add_argument("--backend", choices=("auto", "gloo", "nccl"), default="auto",
                   help="auto: NCCL when CUDA is available, else gloo")
    p.add_argument("--precision", default="fp32", choices=("auto", "bf16", "fp16", "fp32"),
                   help="as in Trainer; fp32 keeps the equivalence check tight")
    p.add_argument("--resume", action="store_true",
                   help="resume from --out/checkpoint.pt if it exists (done anyway after a torchrun restart)")
    p.add_argument("--kill-at-step", type=int, default=None,
                   help="fault injection: on the first attempt, --kill-rank SIGKILLs itself after this step")
    p.add_argument("--kill-rank", type=int, default=1)
    return p.parse_args(argv)


def make_data(kind: str, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(float images (n, 1, 28, 28), int64 labels (n,))``, identical in every process.

    ``"synthetic"``: ten random templates plus noise (learnable, offline, instant);
    ``"fashion-mnist"``: the first ``n`` training images, normalised.

    Example:
        >>> x, y = make_data("synthetic", 8, seed=0)
        >>> tuple(x.shape), y.dtype
        ((8, 1, 28, 28), torch.int64)
    """
    if n < 1:
        raise ValueError(f"n={n}; ask for at least one training example (--n-train)")
    if kind == "synthetic":
        g = torch.Generator().manual_seed(seed)
        templates = torch.randn(10, 1, 28, 28, generator=g)
        y = torch.randint(0, 10, (n,), generator=g)
        return templates[y] + 1.5 * torch.randn(n, 1, 28, 28, generator=g), y
    if kind == "fashion-mnist":
        from dlbook.data import FASHION_MNIST_MEAN, FASHION_MNIST_STD, load_fashion_mnist

        images, labels = load_fashion_mnist("train")
        if n > len(labels):
            raise ValueError(f"n={n}, but Fashion-MNIST has {len(labels)} training images")
        x = (images[:n].unsqueeze(1).float() / 255 - FASHION_MNIST_MEAN[0]) / FASHION_MNIST_STD[0]
        return x, labels[:n]
    raise ValueError(f"data={kind!r}; use 'synthetic' or 'fashion-mnist'")


class EpochLoader:
    """A DataLoader over a DistributedSampler whose ``set_epoch`` the Trainer calls every epoch.

    Without ``set_epoch`` the sampler would shuffle every epoch the same way.

    Example:
        >>> data = TensorDataset(torch.arange(8.0))
        >>> sampler = DistributedSampler(data, num_replicas=2, rank=1, seed=0)
        >>> loader = EpochLoader(DataLoader(data, batch_size=2, sampler=sampler), sampler)
        >>> loader.set_epoch(1)
        >>> len(loader), sum(len(batch) for (batch,) in loader)   # rank 1 sees half the data
        (2, 4)
    """

    def __init__(self, loader: DataLoader, sampler: DistributedSampler):
        self.loader, self.sampler = loader, sampler

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        return iter(self.loader)


class _KillAfterStep(Callback):
    """Fault injection: SIGKILL this process after global step ``step`` (as a crash or an OOM kill would)."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, model, loss: float) -> None:
        if trainer.global_step == self.step:
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)


class _StepsThisAttempt(Callback):
    """Counts the optimizer steps of this attempt (after a resume, the checkpoint's steps are not ours)."""

    def on_fit_start(self, trainer, model) -> None:  # runs after fit() restored a checkpoint
        self.start = trainer.global_step


def _environment() -> tuple[int, int, int]:
    """(rank, local rank, world size) from torchrun's variables, or (0, 0, 1) without torchrun."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)),
            int(os.environ.get("WORLD_SIZE", 1)))


def _attempt_store(rank: int, world: int) -> dist.Store:
    """The rendezvous store of this attempt: torchrun's store under a prefix naming the restart.

    After a restart, ``init_process_group("gloo")`` with torchrun's own store finds the
    first attempt's addresses still there and tries to connect to the dead workers'
    ports (seen with torch 2.14: "Connection refused", or a hang). A prefix per attempt
    (``TORCHELASTIC_RESTART_COUNT``) gives every attempt a clean namespace.
    """
    agent_hosts = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"  # torchrun's agent serves the store
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world,
                          is_master=rank == 0 and not agent_hosts, timeout=timedelta(minutes=10))
    return dist.PrefixStore(f"dlbook.train.ddp/attempt{os.environ.get('TORCHELASTIC_RESTART_COUNT', 0)}", store)


def train(args: argparse.Namespace) -> dict:
    """Train as configured by ``args`` in this process (one rank of the group); return the summary.

    Rank 0 writes ``params.pt``, ``summary.json`` and ``checkpoint.pt`` under ``args.out``.
    Without torchrun's environment it runs as a group of one, without a process group.

    Example:
        >>> train(parse_args(["--out", "runs/one", "--epochs", "1"]))["world_size"]   # doctest: +SKIP
        1
    """
    rank, local_rank, world = _environment()
    if args.batch_size % world:
        raise ValueError(f"--batch-size {args.batch_size} does not split evenly over {world} processes; "
                         f"use a multiple of {world}, so that every process gets the same share")
    if args.n_train < args.batch_size:
        raise ValueError(f"--n-train {args.n_train} is smaller than one batch (--batch-size {args.batch_size})")
    backend = args.backend if args.backend != "auto" else ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl" and not torch.cuda.is_available():
        raise ValueError("--backend nccl needs CUDA GPUs; use --backend gloo on a CPU")
    device = torch.device("cuda", local_rank) if backend == "nccl" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    distributed = "WORLD_SIZE" in os.environ
    if distributed:
        dist.init_process_group(backend, store=_attempt_store(rank, world), rank=rank, world_size=world,
                                timeout=timedelta(minutes=10))
    try:
        return _train(args, rank, world, backend, device, distributed)
    finally:
        if distributed:
            dist.destroy_process_group()


def _train(args, rank: int, world: int, backend: str, device: torch.device, distributed: bool) -> dict:
    restarts = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", 0))
    out, ckpt_path = Path(args.out), Path(args.out) / "checkpoint.pt"
    resume = ckpt_path.exists() and (args.resume or restarts > 0)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        if ckpt_path.exists() and not resume:
            ckpt_path.unlink()  # a fresh run: a stale checkpoint must not be resumed after a restart
    x, y = make_data(args.data, args.n_train, args.seed)
    keep = len(y) // args.batch_size * args.batch_size  # full steps only: the sampler pads nothing
    dataset = TensorDataset(x[:keep], y[:keep])
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=args.seed)
    loader = EpochLoader(DataLoader(dataset, batch_size=args.batch_size // world, sampler=sampler), sampler)

    torch.manual_seed(args.seed)  # every rank builds the same weights (DDP also broadcasts rank 0's)
    model = LeNet5(LeNetConfig(dropout=0.0)).to(device)
    if distributed:
        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    callbacks: list[Callback] = [Checkpoint(ckpt_path)] if rank == 0 else []  # stateless: ranks stay compatible
    if args.kill_at_step is not None and restarts == 0 and rank == args.kill_rank:
        callbacks.append(_KillAfterStep(args.kill_at_step))
    counter = _StepsThisAttempt()
    trainer = Trainer(model, optimizer, nn.CrossEntropyLoss(), device=device, precision=args.precision,
                      callbacks=[*callbacks, counter], progress="epochs" if rank == 0 else False)
    tic = time.perf_counter()
    trainer.fit(loader, epochs=args.epochs, resume_from=ckpt_path if resume else None)
    seconds = time.perf_counter() - tic
    loss = torch.tensor([trainer.history.records[-1]["train_loss"]], device=device)
    if distributed:
        dist.all_reduce(loss)  # equal local batches: the mean of the ranks' means is the global mean
    summary = {
        "world_size": world, "backend": backend, "device": str(device), "threads": torch.get_num_threads(),
        "steps": trainer.global_step, "epochs": args.epochs, "global_batch": args.batch_size,
        "examples": keep, "seconds": seconds, "restarts": restarts, "resumed": resume,
        "examples_per_second": (trainer.global_step - counter.start) * args.batch_size / seconds,
        "final_train_loss": loss.item() / world, "data": args.data, "seed": args.seed,
    }
    if rank == 0:
        net = model.module if distributed else model
        save_checked({k: v.detach().cpu() for k, v in net.state_dict().items()}, out / "params.pt")
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def torchrun_command(out: str | os.PathLike, script_args: Sequence[str] = (), *, nproc_per_node: int = 2,
                     nnodes: int = 1, node_rank: int = 0, rdzv_endpoint: str | None = None,
                     max_restarts: int = 0) -> list[str]:
    """The ``torchrun`` command line (as ``python -m torch.distributed.run``) that runs this script.

    One node uses ``--standalone`` (torchrun picks a free port); ``nnodes > 1`` uses the
    c10d rendezvous at ``rdzv_endpoint`` (``"host:port"``), and each node runs the same
    command with its own ``node_rank``. Run it with :mod:`subprocess`, with this repository
    on ``PYTHONPATH``.

    Example:
        >>> " ".join(torchrun_command("runs/ddp", ["--epochs", "1"])[1:])
        '-m torch.distributed.run --standalone --nproc_per_node 2 --max-restarts 0 -m dlbook.train.ddp --out runs/ddp --epochs 1'
    """
    if nproc_per_node < 1 or nnodes < 1 or max_restarts < 0 or not 0 <= node_rank < nnodes:
        raise ValueError(f"nproc_per_node={nproc_per_node}, nnodes={nnodes}, node_rank={node_rank}, max_restarts="
                         f"{max_restarts}: use at least one process and node, 0 <= node_rank < nnodes, restarts >= 0")
    if nnodes == 1:
        launcher = ["--standalone"]
    elif rdzv_endpoint is None:
        raise ValueError(f"nnodes={nnodes} needs rdzv_endpoint='host:port', the address every node meets at")
    else:
        launcher = ["--nnodes", str(nnodes), "--node_rank", str(node_rank), "--rdzv-backend", "c10d",
                    "--rdzv-endpoint", rdzv_endpoint, "--rdzv-id", "dlbook.train.ddp"]
    return [sys.executable, "-m", "torch.distributed.run", *launcher, "--nproc_per_node", str(nproc_per_node),
            "--max-restarts", str(max_restarts), "-m", "dlbook.train.ddp", "--out", str(out), *script_args]


def max_param_diff(a: str | os.PathLike, b: str | os.PathLike) -> float:
    """The largest absolute difference between the final parameters of two runs' ``--out`` folders.

    Example:
        >>> max_param_diff("runs/two", "runs/one")   # doctest: +SKIP
        2.98e-08
    """
    pa, pb = load_checked(Path(a) / "params.pt"), load_checked(Path(b) / "params.pt")
    if pa.keys() != pb.keys() or any(pa[k].shape != pb[k].shape for k in pa):
        raise ValueError(f"{a} and {b} hold different models (parameter names or shapes differ)")
    return max((pa[k].double() - pb[k].double()).abs().max().item() for k in pa)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m dlbook.train.ddp`` / ``torchrun -m dlbook.train.ddp``; returns the exit status.

    Example:
        >>> main(["--out", "runs/one", "--n-train", "128", "--epochs", "1"])   # doctest: +SKIP
        0
    """
    train(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
