"""Trainer checkpoints: what is saved, how it is checked, and how a run resumes exactly.

A checkpoint holds the weights, the optimizer and scaler, the history, the global
step, each stateful callback's state keyed by its stable ``state_key`` (e.g.
``"EarlyStopping[val_loss]"``, so the order of the callbacks does not matter) and
the RNG states. It is written with :func:`dlbook.files.save_checked`: atomically
(the previous file survives a crash or a full disk) and with a SHA-256 of the
payload that :func:`read_checkpoint` verifies, so a flipped bit is an error naming
the file, not a silently wrong weight. Weights that are not finite are never saved.

Resuming checks the whole checkpoint against the trainer first (keys, model keys
and shapes, optimizer type and parameter groups, callbacks present and missing)
and only then restores anything; every mismatch is a ``ValueError`` that says what
differs. The RNG states are restored only by ``Trainer.fit(resume_from=...)``,
never by ``Trainer.load_checkpoint``, so loading weights does not reset the random
state of code outside the run.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from dlbook.files import CorruptFileError, load_checked, save_checked
from dlbook.train.history import History

KEYS = ("model", "optimizer", "optimizer_type", "param_shapes", "scaler", "history", "global_step", "callbacks", "rng")


def callback_key(cb) -> str:
    """The stable name a callback's state is saved under: its ``state_key``, else its class name."""
    return getattr(cb, "state_key", None) or type(cb).__name__


def callback_states(callbacks) -> dict[str, dict]:
    """``{state_key: state}`` for every callback with a non-empty state; two with one key are an error."""
    states: dict[str, dict] = {}
    for cb in callbacks:
        state = cb.state_dict()
        if not state:
            continue
        key = callback_key(cb)
        if key in states:
            raise ValueError(f"two callbacks save their state under {key!r}; give one of them a distinct "
                             f"name, e.g. {type(cb).__name__}(..., name='second')")
        states[key] = state
    return states


def _param_shapes(optimizer) -> list[list[list[int]]]:
    return [[list(p.shape) for p in group["params"]] for group in optimizer.param_groups]


def nonfinite_tensors(module: torch.nn.Module) -> list[str]:
    """Names of the floating-point parameters and buffers of ``module`` that hold a NaN or an infinity."""
    named = [(k, t) for k, t in module.state_dict().items() if t.is_floating_point() and t.numel()]
    if not named:
        return []
    finite = torch.stack([t.isfinite().all() for _, t in named]).tolist()  # one host sync
    return [k for (k, _), ok in zip(named, finite) if not ok]


def save_trainer(trainer, path: str | os.PathLike) -> None:
    """Write ``trainer``'s resumable state to ``path``; refuse (FloatingPointError) if weights are not finite."""
    bad = nonfinite_tensors(trainer.model)
    if bad:
        raise FloatingPointError(f"not saving {path}: the model's {', '.join(bad[:3])} hold NaN or inf (step "
                                 f"{trainer.global_step}); the previous checkpoint, if any, is kept. Lower the "
                                 "learning rate or clip gradients, then resume from the previous checkpoint")
    save_checked({
        "model": trainer.model.state_dict(), "optimizer": trainer.optimizer.state_dict(),
        "optimizer_type": type(trainer.optimizer).__name__, "param_shapes": _param_shapes(trainer.optimizer),
        "scaler": trainer.scaler.state_dict(), "history": trainer.history.records,
        "global_step": trainer.global_step, "callbacks": callback_states(trainer.callbacks),
        "rng": {"torch": torch.get_rng_state(), "numpy": _numpy_state(), "python": _python_state()},
    }, path)


def read_checkpoint(path: str | os.PathLike, map_location=None) -> dict:
    """Load and verify a checkpoint written by :func:`save_trainer`.

    Raises:
        FileNotFoundError: no file at ``path``.
        CorruptFileError: the file is truncated or altered (it names the file).
        ValueError: the file is a plain ``state_dict`` or another program's file (the message says how to load it).
    """
    path = Path(path)
    try:
        state = load_checked(path, map_location=map_location)
    except CorruptFileError:
        if _is_plain_state_dict(_try_torch_load(path)):
            raise ValueError(_plain_message(path)) from None
        raise
    if isinstance(state, dict) and "model" not in state and _is_plain_state_dict(state):
        raise ValueError(_plain_message(path))
    missing = [k for k in KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise ValueError(f"{path} is not a Trainer checkpoint of this dlbook version (it lacks {missing}); "
                         "train from scratch, or load its weights by hand")
    return state


def check_compatible(trainer, state: dict, path: str | os.PathLike) -> None:
    """Raise ValueError naming every difference between ``state`` and ``trainer``; change nothing."""
    problems = []
    ours = trainer.model.state_dict()
    theirs = state["model"]
    if missing := sorted(set(ours) - set(theirs)):
        problems.append(f"the model has weights the checkpoint lacks: {missing[:5]}")
    if unexpected := sorted(set(theirs) - set(ours)):
        problems.append(f"the checkpoint has weights the model lacks: {unexpected[:5]}")
    shapes = [f"{k} {tuple(theirs[k].shape)} vs {tuple(v.shape)}" for k, v in ours.items()
              if k in theirs and theirs[k].shape != v.shape]
    if shapes:
        problems.append(f"weight shapes differ (checkpoint vs model): {shapes[:5]}")
    if state["optimizer_type"] != type(trainer.optimizer).__name__:
        problems.append(f"the checkpoint's optimizer is {state['optimizer_type']}, this trainer's is "
                        f"{type(trainer.optimizer).__name__}")
    elif state["param_shapes"] != _param_shapes(trainer.optimizer):
        problems.append("the optimizer's parameter groups differ (number of groups or the shapes of their parameters)")
    ours_cb = callback_states(trainer.callbacks)
    if extra := sorted(set(state["callbacks"]) - set(ours_cb)):
        problems.append(f"the checkpoint holds state for callbacks this trainer lacks: {extra} (add them)")
    if lacking := sorted(set(ours_cb) - set(state["callbacks"])):
        problems.append(f"this trainer has callbacks the checkpoint has no state for: {lacking} (remove them, "
                        "or give them the name they were saved under)")
    if problems:
        raise ValueError(f"cannot resume from {path}; nothing was restored:\n  - " + "\n  - ".join(problems))


def restore(trainer, state: dict, *, rng: bool) -> None:
    """Load a checked ``state`` into ``trainer`` (call :func:`check_compatible` first); RNG states only if ``rng``."""
    trainer.model.load_state_dict(state["model"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.scaler.load_state_dict(state["scaler"])
    trainer.history = History(list(state["history"]))
    trainer.global_step = state["global_step"]
    for cb in trainer.callbacks:
        key = callback_key(cb)
        if key in state["callbacks"]:
            cb.load_state_dict(state["callbacks"][key])
    if rng:
        torch.set_rng_state(state["rng"]["torch"].cpu())
        np.random.set_state(_numpy_restore(state["rng"]["numpy"]))
        random.setstate(_python_restore(state["rng"]["python"]))


def _try_torch_load(path: Path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # not a torch file at all: load_checked's error stands
        return None


def _is_plain_state_dict(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _plain_message(path: Path) -> str:
    return (f"{path} holds a plain state_dict (weights only), not a Trainer checkpoint, so there is nothing to "
            "resume. Load the weights with model.load_state_dict(torch.load(path, weights_only=True)) and call "
            "fit() without resume_from")


# RNG states as plain tensors and lists, so that checkpoints load with weights_only=True.
def _numpy_state():
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss), "gauss": float(gauss)}


def _numpy_restore(s):
    return ("MT19937", s["keys"].cpu().numpy().astype(np.uint32), s["pos"], s["has_gauss"], s["gauss"])


def _python_state():
    version, internal, gauss = random.getstate()
    return {"version": version, "internal": list(internal), "gauss": gauss}


def _python_restore(s):
    return (s["version"], tuple(s["internal"]), s["gauss"])
