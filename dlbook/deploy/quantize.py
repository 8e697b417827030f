"""int8 quantisation with ONNX Runtime's tools: dynamic for Linear/LSTM, static with calibration for CNNs.

* **Dynamic** (:func:`quantize_dynamic_onnx`): weights are stored as int8; each activation is
  quantised on the fly from its own range at run time. No data needed. Suits MatMul/Gemm and
  LSTM, whose cost is in the weights (BERT, a BiLSTM).
* **Static** (:func:`quantize_static_onnx`): weights *and* activations are int8, with the
  activations' scales fixed beforehand from calibration batches (a few hundred training
  images). Convolutions then run on int8 kernels end to end; that is where a CNN's time
  goes. Written in the QDQ format, per-channel weights.

Both store the weights in 7 bits by default (``reduce_range``): on x86 CPUs without VNNI,
ONNX Runtime's int8 kernels use AVX2's saturating ``VPMADDUBSW``
(:func:`int8_dot_product_instructions` says which this CPU has).

``torch.ao.quantization.quantize_dynamic`` is deprecated in torch 2.14 and PT2E quantisation
moved to ``torchao``, where it is fast only when lowered through ``torch.compile``; the
ONNX Runtime path serves the same file it measures, with no torch. NumPy and ONNX Runtime only.

Example:
    >>> round(file_size_mb(__file__) * 2**20) == Path(__file__).stat().st_size
    True
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np


def file_size_mb(path: str | os.PathLike) -> float:
    """Size of a file on disk in MiB."""
    return Path(path).stat().st_size / 2**20


def int8_dot_product_instructions(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> str | None:
    """Which x86 instructions ONNX Runtime's uint8 x int8 kernels can use here, from Linux's ``/proc/cpuinfo``.

    ``"AMX-INT8"``, ``"AVX-512 VNNI"`` and ``"AVX-VNNI"`` multiply and add 8-bit pairs into 32 bits
    exactly. ``"AVX2"`` means none of them: ONNX Runtime then uses ``VPMADDUBSW``, whose 16-bit
    pair sums saturate when weights and activations both use their full 8 bits (why the
    quantisers here default to 7-bit weights). ``None`` when the flags cannot be read (not
    Linux) or the CPU has none of these (not x86).

    Example:
        >>> int8_dot_product_instructions("/nonexistent") is None
        True
    """
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return None
    flags = next((set(line.split(":", 1)[1].split()) for line in text.splitlines()
                  if line.startswith("flags")), set())
    for flag, name in (("amx_int8", "AMX-INT8"), ("avx512_vnni", "AVX-512 VNNI"), ("avx_vnni", "AVX-VNNI"),
                       ("avx2", "AVX2")):
        if flag in flags:
            return name
    return None


def _preprocess(src: Path, dst: Path, symbolic: bool) -> None:
    """Shape inference and graph clean-up that ONNX Runtime asks for before quantising.

    ``symbolic=False`` skips its symbolic shape inference, which fails on the LSTM graphs that
    the tracing exporter writes (ONNX's own shape inference still runs).
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(str(src), str(dst), skip_symbolic_shape=not symbolic)


def quantize_dynamic_onnx(src: str | os.PathLike, dst: str | os.PathLike,
                          op_types: tuple[str, ...] = ("MatMul", "Gemm", "LSTM"), *, reduce_range: bool = True) -> Path:
    """Dynamic int8: int8 weights for ``op_types``, activations quantised per call.

    ``reduce_range`` (default) stores the weights in 7 bits. ONNX Runtime multiplies uint8
    activations by int8 weights with AVX2's ``VPMADDUBSW`` on x86 CPUs without VNNI, and that
    instruction saturates its 16-bit pair sums when both operands use the full 8 bits. Measured on
    a 2-core AVX2-only AMD EPYC (2026-12-02), a BiLSTM's int8 logits differed from float32 by up to
    0.071 with 8-bit weights and by 0.004 with 7-bit weights. The file may be served on any CPU,
    whatever the CPU that quantised it, so 7 bits is the safe default. With VNNI,
    ``reduce_range=False`` keeps one more bit of weight precision.

    Example:
        >>> quantize_dynamic_onnx("bilstm.onnx", "bilstm_int8.onnx")   # doctest: +SKIP
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise FileNotFoundError(f"{src} does not exist; export the model first (dlbook.deploy.export.export_onnx)")
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        _preprocess(src, pre, symbolic=False)
        quantize_dynamic(str(pre), str(dst), op_types_to_quantize=list(op_types), weight_type=QuantType.QInt8,
                         reduce_range=reduce_range)
    return dst


class _Batches:
    """ONNX Runtime's CalibrationDataReader protocol over an iterable of arrays."""

    def __init__(self, name: str, batches: Iterable[np.ndarray]):
        self.name, self.batches = name, iter(batches)

    def get_next(self):
        batch = next(self.batches, None)
        return None if batch is None else {self.name: np.ascontiguousarray(batch, dtype=np.float32)}


def quantize_static_onnx(src: str | os.PathLike, dst: str | os.PathLike, calibration: Iterable[np.ndarray],
                         method: str = "minmax", *, reduce_range: bool = True) -> Path:
    """Static int8 (QDQ, per-channel weights, uint8 activations) calibrated on ``calibration`` batches.

    Args:
        src, dst: the float32 ONNX file and the int8 one to write.
        calibration: input batches as the model takes them (already normalised), from the
            training split (never the test set).
        method: ``"minmax"`` (the observed range) or ``"percentile"`` (clips outliers; slower to calibrate).
        reduce_range: 7-bit weights (default), for the reason given in :func:`quantize_dynamic_onnx`.
            Measured on a 2-core AVX2-only AMD EPYC (2026-12-03), see chapter 2.4.

    Example:
        >>> quantize_static_onnx("vgg11.onnx", "vgg11_int8.onnx", [x[:64], x[64:128]])   # doctest: +SKIP
    """
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile}
    if method not in methods:
        raise ValueError(f"method={method!r}; use one of {sorted(methods)}")
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise FileNotFoundError(f"{src} does not exist; export the model first (dlbook.deploy.export.export_onnx)")
    name = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).get_inputs()[0].name
    batches = list(calibration)
    if not batches:
        raise ValueError("the calibration data is empty; pass a few batches of training inputs")
    reader = _Batches(name, batches)
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        _preprocess(src, pre, symbolic=True)
        quantize_static(str(pre), str(dst), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=methods[method], reduce_range=reduce_range)
    return dst
