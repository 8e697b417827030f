"""Exports equal eager, int8 keeps the accuracy of a tiny real model, the torch-free tokeniser equals the book's."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from dlbook.data.text import Vocab, tokenize
from dlbook.deploy.export import (OnnxModule, PaddingFreeRNN, check_exported, export_onnx, export_program,
                                  save_text_spec)
from dlbook.deploy.quantize import file_size_mb, int8_dot_product_instructions, quantize_dynamic_onnx, quantize_static_onnx
from dlbook.deploy.serverless import handler, measure_cold_start
from dlbook.deploy.textprep import TextEncoder
from dlbook.models.rnn_classifier import RNNClassifier, RNNClassifierConfig
from dlbook.models.vgg import VGG, VGGConfig


def token_batch(batch, time, vocab_size=50, seed=0):
    return torch.randint(2, vocab_size, (batch, time), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def tiny_vgg():
    torch.manual_seed(0)
    model = VGG(VGGConfig.tiny()).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so folding them into the convolutions is tested
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return model


def test_torch_export_equals_eager_at_several_batch_sizes(tiny_vgg):
    program = export_program(tiny_vgg, (torch.randn(2, 3, 32, 32),), {"x": {0: "batch"}})
    check = check_exported(tiny_vgg, program.module(), [(torch.randn(b, 3, 32, 32),) for b in (1, 3, 8)])
    assert len(check.errors) == 3 and check.max_abs_error < 1e-5


@pytest.mark.parametrize("dynamo", [True, False])
def test_onnx_export_of_the_cnn_equals_eager(tiny_vgg, tmp_path, dynamo):
    path = export_onnx(tiny_vgg, (torch.randn(2, 3, 32, 32),), tmp_path / "vgg.onnx", input_names=["images"],
                       dynamic={"images": {0: "batch"}}, dynamo=dynamo)
    run = OnnxModule(path)
    assert run.session.get_inputs()[0].shape[0] == "batch"
    check = check_exported(tiny_vgg, run, [(torch.randn(b, 3, 32, 32),) for b in (1, 5, 16)])
    assert check.max_abs_error < 1e-4, check.errors


@pytest.mark.parametrize("pooling", ["last", "max", "last+max", "mean"])
def test_padding_free_bilstm_exports_with_dynamic_batch_and_time(tmp_path, pooling):
    torch.manual_seed(0)
    rnn = RNNClassifier(RNNClassifierConfig.tiny(vocab_size=50, pooling=pooling)).eval()
    path = export_onnx(PaddingFreeRNN(rnn), (token_batch(2, 7),), tmp_path / "rnn.onnx", input_names=["tokens"],
                       dynamic={"tokens": {0: "batch", 1: "time"}}, dynamo=False)
    run = OnnxModule(path)
    sizes = [(1, 1), (1, 9), (3, 4), (8, 31)]  # none is the example's (2, 7): a frozen axis would fail here
    check = check_exported(lambda t: rnn(t, torch.full((len(t),), t.shape[1])), run,
                           [(token_batch(b, t, seed=b * t),) for b, t in sizes])
    assert check.max_abs_error < 1e-5, check.errors


def test_traced_export_of_the_packed_bilstm_is_wrong_for_other_lengths(tmp_path):
    """Why PaddingFreeRNN exists: tracing records the example batch's packing."""
    torch.manual_seed(0)
    rnn = RNNClassifier(RNNClassifierConfig.tiny(vocab_size=50, pooling="last+max")).eval()
    tokens, lengths = token_batch(3, 7), torch.tensor([7, 4, 2])
    path = export_onnx(rnn, (tokens, lengths), tmp_path / "packed.onnx", input_names=["tokens", "lengths"],
                       dynamic={"tokens": {0: "batch", 1: "time"}, "lengths": {0: "batch"}}, dynamo=False)
    run = OnnxModule(path)
    other, other_lengths = token_batch(4, 9, seed=1), torch.tensor([9, 3, 6, 1])
    for i, n in enumerate(other_lengths):
        other[i, n:] = 0
    alone = check_exported(rnn, run, [(other[:1], other_lengths[:1])])  # one full-length sentence: right
    padded = check_exported(rnn, run, [(other, other_lengths)])
    assert alone.max_abs_error < 1e-5 and padded.max_abs_error > 1e-3


def test_check_exported_refuses_no_inputs_and_wrong_shapes():
    model = nn.Linear(3, 2).eval()
    with pytest.raises(ValueError, match="at least one input"):
        check_exported(model, model, [])
    with pytest.raises(AssertionError, match="shape"):
        check_exported(model, lambda x: np.zeros((1, 1)), [(torch.randn(2, 3),)])


def test_export_onnx_needs_one_name_per_input(tmp_path):
    with pytest.raises(ValueError, match="one name each"):
        export_onnx(nn.Linear(3, 2), (torch.randn(1, 3),), tmp_path / "m.onnx", input_names=["a", "b"], dynamic={})


@pytest.fixture(scope="module")
def digits_cnn(tmp_path_factory):
    """A small CNN trained for a few seconds on scikit-learn's 8x8 digits (real data), exported to ONNX."""
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0  # (N, 1, 8, 8) in [0, 1]
    y = torch.tensor(digits.target)
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(x), generator=g)
    train, test = order[:1400], order[1400:]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(32 * 2 * 2, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):  # full-batch steps
        loss = nn.functional.cross_entropy(model(x[train]), y[train])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    folder = tmp_path_factory.mktemp("digits")
    path = export_onnx(model, (x[:2],), folder / "cnn.onnx", input_names=["images"], dynamic={"images": {0: "batch"}},
                       dynamo=False)
    return model, path, x[train], x[test].numpy(), y[test].numpy()


@pytest.mark.slow  # trains the CNN for a few seconds (15 s on a loaded 2-core machine)
def test_static_int8_keeps_the_accuracy_of_a_trained_cnn(digits_cnn, tmp_path):
    model, path, x_train, x_test, y_test = digits_cnn
    calibration = [x_train[i:i + 100].numpy() for i in range(0, 400, 100)]  # training images only
    int8 = quantize_static_onnx(path, tmp_path / "cnn_int8.onnx", calibration)
    acc = {name: float((OnnxModule(p)(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean()) for name, p in
           (("fp32", path), ("int8", int8))}
    assert acc["fp32"] > 0.9, acc  # the model did learn
    assert abs(acc["fp32"] - acc["int8"]) <= 0.02, acc
    assert "QuantizeLinear" in {n.op_type for n in __import__("onnx").load(int8).graph.node}


def test_static_quantisation_needs_calibration_and_a_file(tmp_path):
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10)).eval()
    path = export_onnx(cnn, (torch.zeros(2, 1, 8, 8),), tmp_path / "cnn.onnx", input_names=["images"],
                       dynamic={"images": {0: "batch"}}, dynamo=False)
    with pytest.raises(ValueError, match="calibration data is empty"):
        quantize_static_onnx(path, tmp_path / "q.onnx", [])
    with pytest.raises(FileNotFoundError, match="export the model first"):
        quantize_dynamic_onnx(tmp_path / "missing.onnx", tmp_path / "q.onnx")
    with pytest.raises(ValueError, match="method"):
        quantize_static_onnx(path, tmp_path / "q.onnx", [np.zeros((1, 1, 8, 8), np.float32)], method="kl")


def test_dynamic_int8_bilstm_is_smaller_and_agrees_with_fp32(tmp_path):
    torch.manual_seed(0)
    rnn = RNNClassifier(RNNClassifierConfig(vocab_size=500, embedding_dim=64, hidden_size=64, pooling="last+max")).eval()
    path = export_onnx(PaddingFreeRNN(rnn), (token_batch(2, 7, 500),), tmp_path / "rnn.onnx", input_names=["tokens"],
                       dynamic={"tokens": {0: "batch", 1: "time"}}, dynamo=False)
    int8 = quantize_dynamic_onnx(path, tmp_path / "rnn_int8.onnx")
    ops = {n.op_type for n in __import__("onnx").load(int8).graph.node}
    assert "DynamicQuantizeLSTM" in ops, ops
    assert file_size_mb(int8) < 0.6 * file_size_mb(path)
    tokens = token_batch(64, 12, 500, seed=3)
    fp32, q = OnnxModule(path)(tokens).numpy(), OnnxModule(int8)(tokens).numpy()
    assert np.abs(fp32 - q).max() < 0.05 and (fp32.argmax(1) == q.argmax(1)).mean() >= 0.9


EDGE_CASES = ["Don't miss it: a café-style gem!", "cafe\u0301 CAF\u00c9", "It\u2019s ``great'' -- really...",
              "u.s. films cost 1,000.50 $", "zero\u200bwidth soft\u00adhyphen", "-lrb- aside -rrb-", "", "   ",
              "नमस्ते दुनिया", "مرحبا بالعالم", "日本語のテキスト", "tab\tand\nnewline\x00nul"]


def test_torch_free_tokeniser_equals_the_books(tmp_path):
    from dlbook.data import load_sst

    try:
        texts, _ = load_sst("dev")
    except Exception:  # no offline copy and no network: the edge cases alone
        texts = []
    sentences = EDGE_CASES + list(texts)
    vocab = Vocab.build([tokenize(s) for s in sentences[: len(sentences) // 2]])
    encoder = TextEncoder.load(save_text_spec(vocab, tmp_path / "spec.json"))
    for s in sentences:
        assert encoder.tokenize(s) == tokenize(s), s
        assert encoder.encode(s) == vocab.encode(tokenize(s)), s


def test_text_spec_is_checked(tmp_path):
    with pytest.raises(ValueError, match="save_text_spec"):
        TextEncoder({"itos": ["<pad>", "<unk>"]})
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="cannot read"):
        TextEncoder.load(tmp_path / "bad.json")


@pytest.fixture(scope="module")
def text_bundle(tmp_path_factory):
    from dlbook.deploy.runtime import write_bundle

    folder = tmp_path_factory.mktemp("text")
    vocab = Vocab.build([tokenize("a good film"), tokenize("a bad film")])
    rnn = RNNClassifier(RNNClassifierConfig.tiny(vocab_size=len(vocab))).eval()
    export_onnx(PaddingFreeRNN(rnn), (token_batch(2, 3, len(vocab)),), folder / "m.onnx", input_names=["tokens"],
                dynamic={"tokens": {0: "batch", 1: "time"}}, dynamo=False)
    save_text_spec(vocab, folder / "spec.json")
    return write_bundle(folder / "bundle", folder / "m.onnx", name="t", version="1", kind="text",
                        classes=["negative", "positive"], text_spec=folder / "spec.json")


def test_serverless_cold_start_is_measured_without_torch(text_bundle):
    r = measure_cold_start(text_bundle, {"body": {"text": "a good film"}}, warm_calls=20)
    assert r["torch_loaded"] is False and len(r["warm_s"]) == 20
    assert r["cold_start_s"] > r["import_s"] > 0 and r["cold_start_s"] > max(r["warm_s"])


def test_serverless_handler_answers_like_the_service(text_bundle, monkeypatch):
    import dlbook.deploy.serverless as serverless

    monkeypatch.setenv("DLBOOK_MODEL", str(text_bundle))
    monkeypatch.setattr(serverless, "_PREDICTOR", None)
    ok = handler({"body": '{"text": "a good film"}'})
    assert ok["statusCode"] == 200 and '"version": "1"' in ok["body"]
    assert handler({"body": "{"})["statusCode"] == 400
    assert handler({"body": {"text": ""}})["statusCode"] == 422
    assert handler({"body": '{"image": [NaN]}'})["statusCode"] == 422
    assert handler({"body": {"words": "x"}})["statusCode"] == 422


def _int8_weight_range(model_path):
    import onnx
    from onnx import numpy_helper

    values = [numpy_helper.to_array(t) for t in onnx.load(model_path).graph.initializer if t.data_type == 3]
    assert values, "no int8 weights in the quantised graph"
    return min(int(v.min()) for v in values), max(int(v.max()) for v in values)


def test_dynamic_int8_weights_use_7_bits_unless_asked(tmp_path):
    """reduce_range: 7-bit weights avoid AVX2's saturating VPMADDUBSW on CPUs without VNNI (see the docstring)."""
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 4)).eval()
    path = export_onnx(mlp, (torch.randn(2, 32),), tmp_path / "mlp.onnx", input_names=["x"],
                       dynamic={"x": {0: "batch"}}, dynamo=False)
    low, high = _int8_weight_range(quantize_dynamic_onnx(path, tmp_path / "q7.onnx"))
    assert -64 <= low and high <= 64 and high - low > 64   # 7 bits, and used
    low, high = _int8_weight_range(quantize_dynamic_onnx(path, tmp_path / "q8.onnx", reduce_range=False))
    assert low < -64 or high > 64                          # the full 8 bits


def test_static_int8_weights_use_7_bits_unless_asked(tmp_path):
    torch.manual_seed(0)
    cnn = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 6 * 6, 10)).eval()
    path = export_onnx(cnn, (torch.zeros(2, 3, 8, 8),), tmp_path / "cnn.onnx", input_names=["images"],
                       dynamic={"images": {0: "batch"}}, dynamo=False)
    calibration = [torch.randn(16, 3, 8, 8).numpy()]
    low, high = _int8_weight_range(quantize_static_onnx(path, tmp_path / "q7.onnx", calibration))
    assert -64 <= low and high <= 64 and high - low > 64
    low, high = _int8_weight_range(quantize_static_onnx(path, tmp_path / "q8.onnx", calibration, reduce_range=False))
    assert low < -64 or high > 64


@pytest.mark.parametrize("flags, expected", [
    ("fpu sse2 avx2 fma avx512f avx512_vnni avx512_bf16 amx_int8", "AMX-INT8"),
    ("fpu sse2 avx2 avx512f avx512_vnni", "AVX-512 VNNI"),
    ("fpu sse2 avx2 avx_vnni", "AVX-VNNI"),
    ("fpu sse2 avx2 fma", "AVX2"),
    ("fp asimd evtstrm", None),                 # an Arm CPU
])
def test_int8_dot_product_instructions_read_the_cpu_flags(tmp_path, flags, expected):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: test\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    assert int8_dot_product_instructions(cpuinfo) == expected
    assert int8_dot_product_instructions(tmp_path / "missing") is None   # not Linux: unknown, not an error
