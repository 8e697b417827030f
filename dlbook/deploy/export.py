"""Export a trained model (``torch.export``, ONNX) and check each export against eager PyTorch.

Two formats, both checked by running them on the same inputs as the eager model and
reporting the largest absolute difference of the outputs:

* ``torch.export`` (:func:`export_program`): a whole-graph ``ExportedProgram`` with symbolic
  (dynamic) dimensions; the input of ``torch.compile``'s and AOTInductor's toolchains.
* ONNX (:func:`export_onnx`): a file any ONNX Runtime can execute, with no torch at all.
  In torch 2.14 ``torch.onnx.export`` defaults to the dynamo exporter (``dynamo=True``,
  built on ``torch.export``, needs ``onnxscript``); ``dynamo=False`` is the older
  TorchScript-tracing exporter.

TorchScript (``torch.jit.script`` / ``trace``) is deprecated since torch 2.5; nothing here uses it.

A packed BiLSTM (``RNNClassifier``) does not export cleanly: the dynamo exporter stops at
the data-dependent length check before packing, and the tracing exporter records the
packing for the example batch's lengths, so a padded batch of other lengths gives wrong
logits (chapter 2.4 measures it). One sentence per request needs no padding and so no
packing: :class:`PaddingFreeRNN` is the same modules without it, and exports with a dynamic
batch *and* time axis, checked at several sizes.

Example:
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(4, 3)).eval()
    >>> check = check_exported(model, lambda x: model(x), [(torch.randn(2, 4),), (torch.randn(5, 4),)])
    >>> check.max_abs_error
    0.0
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from dlbook.deploy.textprep import SPEC_FORMAT


@dataclass(frozen=True)
class ExportCheck:
    """Max absolute output difference, export vs eager, for each checked input (named by its shapes)."""

    errors: dict[str, float]

    @property
    def max_abs_error(self) -> float:
        return max(self.errors.values())


def _shapes(inputs: Sequence[torch.Tensor]) -> str:
    return " ".join("x".join(map(str, t.shape)) for t in inputs)


def check_exported(model: nn.Module, exported: Callable, inputs: Sequence[tuple[torch.Tensor, ...]]) -> ExportCheck:
    """Run ``model(*x)`` and ``exported(*x)`` for each ``x`` in ``inputs``; the max abs error of each.

    ``exported`` returns a tensor or a NumPy array (e.g. an :class:`OnnxModule`).
    """
    if not inputs:
        raise ValueError("check_exported needs at least one input tuple, e.g. [(torch.randn(2, 3, 32, 32),)]")
    errors = {}
    with torch.inference_mode():
        for x in inputs:
            want = model(*x).float().numpy()
            got = exported(*x)
            got = np.asarray(got.float() if isinstance(got, torch.Tensor) else got, dtype=np.float32)
            if got.shape != want.shape:
                raise AssertionError(f"export gives shape {got.shape} for inputs {_shapes(x)}, eager {want.shape}")
            errors[_shapes(x)] = float(np.abs(got - want).max())
    return ExportCheck(errors)


def export_program(model: nn.Module, example: tuple[torch.Tensor, ...], dynamic: dict[str, dict[int, str]]):
    """``torch.export.export`` with the named dimensions dynamic, e.g. ``{"x": {0: "batch"}}``.

    Example:
        >>> program = export_program(nn.Linear(4, 2).eval(), (torch.randn(3, 4),), {"input": {0: "batch"}})
        >>> program.module()(torch.randn(7, 4)).shape
        torch.Size([7, 2])
    """
    shapes = {name: {axis: torch.export.Dim.AUTO for axis in axes} for name, axes in dynamic.items()}
    return torch.export.export(model.eval(), example, dynamic_shapes=shapes)


@contextlib.contextmanager
def _quiet():
    """Silence the exporters' chatter: Python warnings, prints, log records, and what C++ writes to fds 1 and 2.

    The tracing exporter warns about shape inference in C++; the dynamo exporter prints its
    progress and, when it fails, logs the whole traced graph (with source paths). Exceptions
    still propagate, with their messages; only the chatter is dropped.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved, disabled = {fd: os.dup(fd) for fd in (1, 2)}, logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with open(os.devnull, "w") as null, warnings.catch_warnings(), \
                contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            for fd in saved:
                os.dup2(null.fileno(), fd)
            yield
    finally:
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        logging.disable(disabled)


def export_onnx(model: nn.Module, example: tuple[torch.Tensor, ...], path: str | os.PathLike, *,
                input_names: Sequence[str], dynamic: dict[str, dict[int, str]], dynamo: bool = True,
                opset: int = 18) -> Path:
    """Write ``model`` as ONNX to ``path``, one output ``logits``, the named axes dynamic.

    Args:
        model: in eval mode (set here).
        example: one input tuple, traced for the graph.
        path: the ``.onnx`` file (weights stored inside it).
        input_names: one per input, the names the runtime feeds.
        dynamic: ``{input name: {axis: dimension name}}``, e.g. ``{"tokens": {0: "batch", 1: "time"}}``.
        dynamo: True for the ``torch.export``-based exporter (the default since torch 2.9), False for the
            TorchScript-tracing one.
        opset: the ONNX operator set.

    Example:
        >>> export_onnx(model, (x,), "vgg11.onnx", input_names=["images"],
        ...             dynamic={"images": {0: "batch"}})   # doctest: +SKIP
    """
    if len(input_names) != len(example):
        raise ValueError(f"{len(input_names)} input names for {len(example)} example inputs; give one name each")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    with _quiet():
        if dynamo:
            shapes = [dict(dynamic.get(name, {})) or None for name in input_names]  # {axis: "batch"}: named dims
            program = torch.onnx.export(model, example, input_names=list(input_names), output_names=["logits"],
                                        dynamic_shapes=tuple(shapes), dynamo=True, opset_version=opset,
                                        verbose=False, external_data=False)
            program.save(str(path), external_data=False)
        else:
            axes = {**dynamic, "logits": {0: "batch"}}
            torch.onnx.export(model, example, str(path), input_names=list(input_names), output_names=["logits"],
                              dynamic_axes=axes, dynamo=False, opset_version=opset)
    return path


class OnnxModule(nn.Module):
    """An ONNX file run by ONNX Runtime (CPU), called like the eager model: tensors in, a tensor out.

    An ``nn.Module`` without parameters, so ``dlbook.train.predict``, ``dlbook.timing`` and
    :func:`check_exported` treat the exported model exactly as the eager one.

    Args:
        path: the ``.onnx`` file.
        threads: ONNX Runtime's intra-op threads (None: its default, one per core).

    Example:
        >>> OnnxModule("vgg11_int8.onnx")(torch.zeros(1, 3, 32, 32)).shape   # doctest: +SKIP
        torch.Size([1, 10])
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        super().__init__()
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if len(inputs) != len(self.input_names):
            raise ValueError(f"the ONNX model takes {len(self.input_names)} inputs {self.input_names}, got {len(inputs)}")
        feeds = {n: t.detach().cpu().numpy() for n, t in zip(self.input_names, inputs)}
        return torch.from_numpy(self.session.run(None, feeds)[0])


class PaddingFreeRNN(nn.Module):
    """An ``RNNClassifier``'s own modules, called without packing: tokens ``(B, T)`` of equal length -> logits.

    For one sentence (B = 1), or a batch of sentences of one length, no token is padding and
    packing changes nothing, so the logits equal the classifier's. In eval mode (dropout off).

    Example:
        >>> from dlbook.models.rnn_classifier import RNNClassifier, RNNClassifierConfig
        >>> rnn = RNNClassifier(RNNClassifierConfig.tiny(vocab_size=20, pooling="last+max")).eval()
        >>> tokens = torch.randint(2, 20, (3, 5))
        >>> torch.allclose(PaddingFreeRNN(rnn)(tokens), rnn(tokens, torch.full((3,), 5)), atol=1e-6)
        True
    """

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier.eval()
        c = classifier.config
        self.pooling, self.layers, self.directions = c.pooling, c.num_layers, classifier.num_directions

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        m = self.classifier
        outputs, state = m.rnn(m.embedding(tokens))  # outputs (B, T, D * H)
        h_n = state[0] if isinstance(state, tuple) else state  # (L * D, B, H)
        batch = tokens.shape[0]
        parts = []
        if self.pooling in ("last", "last+max"):
            last = h_n.view(self.layers, self.directions, batch, -1)[-1]  # (D, B, H)
            parts.append(last.transpose(0, 1).reshape(batch, -1))  # (B, D * H)
        if self.pooling in ("max", "last+max"):
            parts.append(outputs.max(dim=1).values)  # (B, D * H)
        if self.pooling == "mean":
            parts.append(outputs.mean(dim=1))  # (B, D * H)
        return m.head(torch.cat(parts, dim=1) if len(parts) > 1 else parts[0])


def save_text_spec(vocab, path: str | os.PathLike, max_tokens: int = 256) -> Path:
    """Write ``vocab`` and the rules of ``dlbook.data.text.tokenize`` as JSON for the torch-free service.

    The token pattern and the character table are copied from :mod:`dlbook.data.text`, not
    rewritten, so :class:`dlbook.deploy.textprep.TextEncoder` splits exactly as ``tokenize`` does.

    Example:
        >>> from dlbook.data.text import Vocab
        >>> save_text_spec(Vocab(["<pad>", "<unk>", "good"]), "bundle/text_spec.json")   # doctest: +SKIP
    """
    from dlbook.data import text as text_module

    spec = {"format": SPEC_FORMAT, "itos": list(vocab.itos), "pattern": text_module._TOKEN.pattern,
            "flags": int(text_module._TOKEN.flags), "normalise": "NFC",
            "translate": {str(k): v for k, v in text_module._NORMALISE.items()}, "max_tokens": int(max_tokens)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    return path
