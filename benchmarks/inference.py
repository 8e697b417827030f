"""Inference: chapter 2.4's ways of serving VGG-11, measured side by side for longer.

The claim measured: **int8 under ONNX Runtime answers a single image at least 2x faster
than eager PyTorch in float32**, within half a point of its accuracy. The variants are
chapter 2.4's: eager fp32, eager with bfloat16 autocast, ``torch.compile`` (fp32), ONNX
Runtime fp32 (the dynamo exporter) and ONNX Runtime int8 (static quantisation, calibrated on
512 training images). The measuring is ``dlbook.deploy.measure.compare_variants``, the
function the chapter calls: first-call time apart, then batch-1 latency over real test
images one at a time (median and p99), images per second over batches of 64, file size,
and accuracy on the test images.

The model is chapter 4.1's trained VGG-11, the weights it chose on validation
(``chapters/checkpoints/ch4_1_vgg11.chosen.pt``), where that file is present and matches ``dlbook.recipes.cifar10.FAST``'s model; otherwise an untrained
one with the same architecture, which times the same but makes the accuracy column (and
int8's accuracy drop) meaningless; the JSON and the report say which. About 5 minutes on a
2-core CPU::

    flock /tmp/dlbook-cpu.lock python benchmarks/inference.py results/inference.json
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

from _common import parser, run_and_write, start
from dlbook.data import TensorLoader, load_cifar10, stratified_split
from dlbook.deploy.export import OnnxModule, export_onnx
from dlbook.deploy.measure import Variant, compare_variants
from dlbook.deploy.quantize import quantize_static_onnx
from dlbook.files import load_checked
from dlbook.recipes.cifar10 import FAST

CHECKPOINT = Path(__file__).resolve().parents[1] / "chapters" / "checkpoints" / "ch4_1_vgg11.chosen.pt"


def trained_model() -> tuple[torch.nn.Module, str]:
    model = FAST.model()
    if CHECKPOINT.is_file():
        try:
            model.load_state_dict(load_checked(CHECKPOINT, map_location="cpu")["model"])
            return model.eval(), f"chapter 4.1's trained VGG-11 ({CHECKPOINT.name})"
        except (RuntimeError, KeyError, ValueError) as exc:  # another recipe's head, or not a checkpoint
            why = f"{CHECKPOINT.name} does not match FAST's model ({type(exc).__name__})"
    else:
        why = f"no {CHECKPOINT.name}: run chapter 4.1 in full first"
    return model.eval(), f"an untrained VGG-11 ({why}); the accuracy column means nothing"


def run(args) -> dict:
    device = torch.device("cpu")  # the serving comparison is a CPU one, as in chapter 2.4
    images, labels = load_cifar10("train")
    x_test, y_test = load_cifar10("test")
    train_idx, _ = stratified_split(labels, val_size=5_000, seed=0)  # chapter 4.1's training part
    n_test, n_single, n_calib = (256, 12, 64) if args.quick else (10_000, 300, 512)
    x_test, y_test = x_test[:n_test], y_test[:n_test]
    prepare = FAST.eval_transform()
    model, model_name = trained_model()
    result = start("inference", "int8 under ONNX Runtime answers one image >= 2x faster than eager fp32, within "
                   "0.5 points of its accuracy", device, model=model_name, test_images=n_test,
                   latency_calls=n_single, calibration_images=n_calib, quick=args.quick)
    work = Path(tempfile.mkdtemp(prefix="dlbook-bench-inference-"))
    torch.save(model.state_dict(), work / "vgg11_state_dict.pt")
    onnx_fp32 = export_onnx(model, (torch.randn(2, 3, 32, 32),), work / "vgg11_fp32.onnx", input_names=["images"],
                            dynamic={"images": {0: "batch"}}, dynamo=True)
    calib_idx = train_idx[torch.randperm(len(train_idx), generator=torch.Generator().manual_seed(1))[:n_calib]]
    calibration = [prepare(images[calib_idx[i:i + 64]]).numpy() for i in range(0, n_calib, 64)]
    onnx_int8 = quantize_static_onnx(onnx_fp32, work / "vgg11_int8.onnx", calibration)
    variants = {"eager fp32": Variant(model, "fp32", work / "vgg11_state_dict.pt"),
                "eager bf16": Variant(model, "bf16", work / "vgg11_state_dict.pt")}
    if not args.quick:  # compiling VGG-11 takes about a minute on 2 cores
        variants["torch.compile fp32"] = Variant(torch.compile(model, dynamic=False), "fp32", work / "vgg11_state_dict.pt")
    variants["ONNX Runtime fp32"] = Variant(OnnxModule(onnx_fp32), "fp32", onnx_fp32)
    variants["ONNX Runtime int8"] = Variant(OnnxModule(onnx_int8), "fp32", onnx_int8)
    singles = [prepare(x_test[i:i + 1]) for i in range(n_single + 5)]
    loader = TensorLoader(x_test, y_test, 64, transform=prepare)
    rows = compare_variants(variants, singles, TensorLoader(x_test, y_test, 64, transform=prepare, drop_last=True),
                            loader, throughput_steps=2 if args.quick else 20)
    base = rows[0]
    for r in rows:
        r["speedup_batch1"] = base["batch-1 p50 (ms)"] / r["batch-1 p50 (ms)"]
        r["speedup_batched"] = r["batched (images/s)"] / base["batched (images/s)"]
    result["variants"] = rows
    int8 = next(r for r in rows if r["variant"] == "ONNX Runtime int8")
    result["int8_speedup_batch1"] = int8["speedup_batch1"]
    result["int8_accuracy_drop_points"] = 100 * (base["accuracy"] - int8["accuracy"])
    result["trained"] = "untrained" not in model_name
    return result


def report(result: dict) -> str:
    s = result["settings"]
    lines = [f"serving VGG-11 on {result['machine']['device']}: {s['model']}; {s['test_images']:,} test images, "
             f"{s['latency_calls']} timed batch-1 calls",
             f"{'variant':20s} {'first s':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'img/s @64':>10s} {'MiB':>6s} "
             f"{'accuracy':>9s} {'agree':>6s} {'x batch 1':>10s}"]
    for r in result["variants"]:
        size = f"{r['size (MiB)']:6.1f}" if r["size (MiB)"] is not None else f"{'-':>6s}"
        lines.append(f"{r['variant']:20s} {r['first call (s)']:8.1f} {r['batch-1 p50 (ms)']:8.2f} "
                     f"{r['batch-1 p99 (ms)']:8.2f} {r['batched (images/s)']:10.0f} {size} {r['accuracy']:9.4f} "
                     f"{r['agreement']:6.3f} {r['speedup_batch1']:9.2f}x")
    met = result["int8_speedup_batch1"] >= 2 and (not result["trained"] or result["int8_accuracy_drop_points"] <= 0.5)
    lines.append(f"int8 vs eager fp32 at batch 1: {result['int8_speedup_batch1']:.2f}x; accuracy drop "
                 f"{result['int8_accuracy_drop_points']:.2f} points"
                 + ("" if result["trained"] else " (untrained model: not meaningful)")
                 + f": the claim is {'met' if met else 'not met'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    args = p.parse_args(argv)
    if args.device not in (None, "cpu"):
        p.error("the serving comparison runs on the CPU, as chapter 2.4's does: leave out --device")
    return run_and_write(args, run, report)


if __name__ == "__main__":
    sys.exit(main())
