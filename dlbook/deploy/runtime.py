"""A model bundle and the one prediction path that the HTTP service and the serverless handler share.

A **bundle** is a folder with ``model.onnx`` and ``meta.json`` (name, version, kind, class
names, and how to prepare an input: image size, channels, mean and std; or the text spec
file). :func:`write_bundle` writes one; :class:`Predictor` loads it into an ONNX Runtime
session and answers ``predict_image`` / ``predict_text`` with the class, the probabilities
and the model version. Every input check raises :class:`InputError` with an HTTP status and
a message that says what was wrong, so a caller can answer 4xx and never 500.

No torch here: NumPy, Pillow and ONNX Runtime only.

Example:
    >>> str(InputError(422, "text is empty"))
    '422: text is empty'
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np

from dlbook.deploy.textprep import TextEncoder

KINDS = ("image", "text")
META_FILE, MODEL_FILE, TEXT_SPEC_FILE = "meta.json", "model.onnx", "text_spec.json"


class InputError(ValueError):
    """A request the model cannot answer: ``status`` is the HTTP status (4xx), ``message`` says why."""

    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status, self.message = status, message


def write_bundle(folder: str | os.PathLike, model_path: str | os.PathLike, *, name: str, version: str, kind: str,
                 classes: list[str], image_shape: tuple[int, int, int] | None = None,
                 mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None,
                 text_spec: str | os.PathLike | None = None, max_text_chars: int = 2000) -> Path:
    """Copy ``model_path`` (ONNX) into ``folder`` with a ``meta.json`` describing how to call it.

    Args:
        folder: the bundle folder (created).
        model_path: the ONNX file to serve.
        name, version: shown in every response and in ``/metrics``.
        kind: ``"image"`` (input ``(1, C, H, W)`` float32) or ``"text"`` (input ``(1, T)`` int64).
        classes: class names in logit order.
        image_shape: ``(H, W, C)`` of the images the model takes (kind image).
        mean, std: per-channel normalisation of pixels scaled to [0, 1] (kind image).
        text_spec: the JSON from ``dlbook.deploy.export.save_text_spec`` (kind text).
        max_text_chars: longer texts are refused with 413.

    Example:
        >>> write_bundle("bundles/cifar10", "vgg11_int8.onnx", name="vgg11", version="1", kind="image",
        ...              classes=list("abcdefghij"), image_shape=(32, 32, 3), mean=(0.5,) * 3,
        ...              std=(0.25,) * 3)   # doctest: +SKIP
    """
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; use one of {KINDS}")
    if not classes or len(set(classes)) != len(classes):
        raise ValueError(f"classes={classes!r}; give distinct class names in logit order")
    meta = {"name": name, "version": str(version), "kind": kind, "classes": list(classes)}
    if kind == "image":
        if image_shape is None or len(image_shape) != 3 or mean is None or std is None \
                or not len(mean) == len(std) == image_shape[2]:
            raise ValueError("an image bundle needs image_shape=(H, W, C) and mean, std with C values each")
        meta.update(image_shape=list(image_shape), mean=list(mean), std=list(std))
    else:
        if text_spec is None:
            raise ValueError("a text bundle needs text_spec=<file from dlbook.deploy.export.save_text_spec>")
        meta.update(text_spec=TEXT_SPEC_FILE, max_text_chars=int(max_text_chars))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model_path, folder / MODEL_FILE)
    if text_spec is not None:
        shutil.copyfile(text_spec, folder / TEXT_SPEC_FILE)
    (folder / META_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return folder


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``(B, C)`` logits, stable for large values.

    Example:
        >>> softmax(np.array([[0.0, 0.0], [1000.0, 0.0]])).round(3).tolist()
        [[0.5, 0.5], [1.0, 0.0]]
    """
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def decode_image(data: bytes) -> np.ndarray:
    """PNG or JPEG bytes -> ``uint8 (H, W, C)``; anything else is a 415/422 :class:`InputError`.

    Grey images come back with C = 1, RGB with C = 3; nothing is converted silently, so a
    wrong channel count is reported, not guessed.
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise InputError(422, "the image is empty (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format not in ("PNG", "JPEG"):
                raise InputError(415, f"the image is {img.format}; send PNG or JPEG")
            if img.mode not in ("L", "RGB"):
                raise InputError(422, f"the image has mode {img.mode}; send 8-bit grey (L) or RGB")
            array = np.asarray(img.convert(img.mode))
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(422, f"the image cannot be decoded ({type(exc).__name__}); send a valid PNG or JPEG") from exc
    return array[:, :, None] if array.ndim == 2 else array


def encode_image(pixels, format: str = "PNG") -> bytes:
    """``uint8 (H, W)`` or ``(H, W, C)`` pixels -> PNG or JPEG bytes: the client's side of :func:`decode_image`.

    ``pixels`` is anything NumPy can read (a NumPy array, a CPU tensor); a ``(C, H, W)`` tensor
    is permuted first, ``image.permute(1, 2, 0)``. C is 1 (grey) or 3 (RGB). PNG is lossless, so
    ``decode_image(encode_image(a))`` gives ``a`` back (with C = 1 for a grey image).

    Example:
        >>> a = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
        >>> bool((decode_image(encode_image(a)) == a).all())
        True
    """
    from PIL import Image

    array = np.asarray(pixels)
    if array.dtype != np.uint8:
        raise ValueError(f"pixels must be uint8 (0-255), got {array.dtype}; convert with .astype(np.uint8) "
                         "or tensor.to(torch.uint8) after scaling")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise ValueError(f"pixels must be (H, W) grey or (H, W, 3) RGB, got shape {tuple(array.shape)}; "
                         "permute a (C, H, W) tensor with image.permute(1, 2, 0)")
    if format.upper() not in ("PNG", "JPEG"):
        raise ValueError(f"format must be PNG or JPEG (what the service accepts), got {format!r}")
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format=format.upper())
    return buffer.getvalue()


def parse_json(body: bytes | str):
    """Parse a request body; malformed JSON is 400, a NaN or Infinity literal 422.

    Example:
        >>> parse_json(b'{"text": "ok"}')
        {'text': 'ok'}
        >>> parse_json(b'{"image": [NaN]}')
        Traceback (most recent call last):
        ...
        dlbook.deploy.runtime.InputError: 422: the JSON holds NaN; NaN and infinity are not values a model can take
    """
    def refuse(name):
        raise InputError(422, f"the JSON holds {name}; NaN and infinity are not values a model can take")
    try:
        return json.loads(body, parse_constant=refuse)
    except InputError:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InputError(400, f"malformed JSON: {exc}") from exc


def image_from_list(values) -> np.ndarray:
    """A JSON nested list ``(H, W, C)`` of pixel values in [0, 255] -> ``float32`` array, checked.

    Example:
        >>> image_from_list([[[0, 255]]]).shape
        (1, 1, 2)
        >>> image_from_list([[["a"]]])
        Traceback (most recent call last):
        ...
        dlbook.deploy.runtime.InputError: 422: "image" must be a nested list of numbers (H, W, C); ...
    """
    if not isinstance(values, list):
        raise InputError(422, f'"image" must be a nested list (H, W, C), got {type(values).__name__}')
    try:
        array = np.asarray(values, dtype=np.float32)
    except (ValueError, TypeError) as exc:
        raise InputError(422, f'"image" must be a nested list of numbers (H, W, C); {exc}') from exc
    if array.ndim != 3:
        raise InputError(422, f'"image" must have 3 dimensions (H, W, C), got shape {array.shape}')
    if not np.isfinite(array).all():
        raise InputError(422, '"image" holds NaN or infinite values; send pixel values in [0, 255]')
    if array.size and (array.min() < 0 or array.max() > 255):
        raise InputError(422, f'"image" values must lie in [0, 255], got [{array.min():g}, {array.max():g}]')
    return array


class Predictor:
    """An ONNX model bundle, ready to answer one request at a time.

    Args:
        folder: a bundle written by :func:`write_bundle`.
        threads: ONNX Runtime's intra-op threads (None: its default, one per core).
    """

    def __init__(self, folder: str | os.PathLike, threads: int | None = None):
        import onnxruntime as ort

        self.folder = Path(folder)
        try:
            self.meta = json.loads((self.folder / META_FILE).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{self.folder} is not a model bundle ({exc}); write one with write_bundle()") from exc
        self.name, self.version, self.kind = self.meta["name"], self.meta["version"], self.meta["kind"]
        self.classes = list(self.meta["classes"])
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(self.folder / MODEL_FILE), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        if self.kind == "image":
            self.image_shape = tuple(self.meta["image_shape"])
            self.mean = np.asarray(self.meta["mean"], np.float32)
            self.std = np.asarray(self.meta["std"], np.float32)
        else:
            self.encoder = TextEncoder.load(self.folder / self.meta["text_spec"])
            self.max_text_chars = int(self.meta["max_text_chars"])

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities ``(B, classes)`` for a prepared batch (the ONNX model's own input)."""
        return softmax(self.session.run(None, {self.input_name: batch})[0].astype(np.float64))

    def prepare_image(self, image: np.ndarray) -> np.ndarray:
        """``(H, W, C)`` pixels in [0, 255] -> the model's ``(1, C, H, W)`` float32 input; wrong shapes are 422."""
        h, w, c = self.image_shape
        if image.ndim != 3 or image.shape[2] != c:
            raise InputError(422, f"the image has {image.shape[2] if image.ndim == 3 else '?'} channel(s); "
                                  f"this model takes {c} ({'RGB' if c == 3 else 'grey'})")
        if image.shape[:2] != (h, w):
            raise InputError(422, f"the image is {image.shape[1]}x{image.shape[0]} pixels; this model takes "
                                  f"{w}x{h}: resize it first")
        x = (image.astype(np.float32) / 255.0 - self.mean) / self.std  # (H, W, C)
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None])  # (1, C, H, W)

    def prepare_text(self, text) -> np.ndarray:
        """A sentence -> ``(1, T)`` int64 token ids; empty, too long or non-string text is 4xx."""
        if not isinstance(text, str):
            raise InputError(422, f'"text" must be a string, got {type(text).__name__}')
        if len(text) > self.max_text_chars:
            raise InputError(413, f"the text has {len(text)} characters; the limit is {self.max_text_chars}")
        ids = self.encoder.encode(text)
        if not ids:
            raise InputError(422, "the text is empty (no words after tokenising); send at least one word")
        if len(ids) > self.encoder.max_tokens:
            raise InputError(413, f"the text has {len(ids)} tokens; the limit is {self.encoder.max_tokens}")
        return np.asarray([ids], dtype=np.int64)

    def answer(self, probs: np.ndarray) -> dict:
        """The response body for one row of probabilities."""
        best = int(np.argmax(probs))
        if not all(math.isfinite(p) for p in probs):
            raise RuntimeError("the model returned non-finite probabilities")
        return {"class": self.classes[best], "class_index": best,
                "probabilities": {c: round(float(p), 6) for c, p in zip(self.classes, probs)},
                "model": self.name, "version": self.version}

    def predict_image(self, image: np.ndarray) -> dict:
        """Class, probabilities and model version for one ``(H, W, C)`` image."""
        self._expect("image")
        return self.answer(self.run(self.prepare_image(image))[0])

    def predict_text(self, text: str) -> dict:
        """Class, probabilities and model version for one sentence."""
        self._expect("text")
        return self.answer(self.run(self.prepare_text(text))[0])

    def _expect(self, kind: str) -> None:
        if self.kind != kind:
            raise InputError(422, f"model {self.name!r} classifies {self.kind}s, not {kind}s")
