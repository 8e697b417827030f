"""The model service, started as its own process on a free loopback port: every endpoint, every bad input.

Tiny models (a VGG-11 with 1/8 of the channels, a BiLSTM of a few thousand weights), exported
to ONNX once per session; the service runs them with ONNX Runtime and no torch.
"""

import json
import subprocess
import sys

import httpx
import numpy as np
import pytest
import torch

from dlbook.data.text import Vocab, tokenize
from dlbook.deploy.export import PaddingFreeRNN, export_onnx, save_text_spec
from dlbook.deploy.loadtest import check_metrics, run_load, scrape
from dlbook.deploy.process import PACKAGE_ROOT, running_service
from dlbook.deploy.runtime import Predictor, decode_image, encode_image, write_bundle
from dlbook.models.rnn_classifier import RNNClassifier, RNNClassifierConfig
from dlbook.models.vgg import VGG, VGGConfig

CLASSES = [f"c{i}" for i in range(10)]
SENTENCES = ["a gorgeous , witty , seductive movie .", "dull and lifeless .", "it 's not bad at all ."]
LIMIT = 20_000  # the body limit the service runs with here


def make_bundles(root):
    """An image bundle (tiny VGG-11, 32x32 RGB) and a text bundle (tiny BiLSTM), with their torch models."""
    torch.manual_seed(0)
    vgg = VGG(VGGConfig.tiny()).eval()
    export_onnx(vgg, (torch.randn(2, 3, 32, 32),), root / "vgg.onnx", input_names=["images"],
                dynamic={"images": {0: "batch"}}, dynamo=False)  # the fast exporter: here only the service is tested
    image = write_bundle(root / "image", root / "vgg.onnx", name="tiny-vgg", version="t1", kind="image",
                         classes=CLASSES, image_shape=(32, 32, 3), mean=(0.5, 0.4, 0.3), std=(0.25, 0.25, 0.25))
    vocab = Vocab.build([tokenize(s) for s in SENTENCES])
    rnn = RNNClassifier(RNNClassifierConfig.tiny(vocab_size=len(vocab), pooling="last+max")).eval()
    export_onnx(PaddingFreeRNN(rnn), (torch.randint(2, len(vocab), (2, 5)),), root / "rnn.onnx",
                input_names=["tokens"], dynamic={"tokens": {0: "batch", 1: "time"}}, dynamo=False)
    save_text_spec(vocab, root / "spec.json", max_tokens=40)
    text = write_bundle(root / "text", root / "rnn.onnx", name="tiny-bilstm", version="t2", kind="text",
                        classes=["negative", "positive"], text_spec=root / "spec.json", max_text_chars=300)
    return image, text, vgg, rnn, vocab


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    return make_bundles(tmp_path_factory.mktemp("bundles"))


@pytest.fixture(scope="module")
def url(bundles):
    with running_service([bundles[0], bundles[1]], "--max-body-bytes", str(LIMIT), "--threads", "1") as base:
        yield base


def pixels(seed=0, shape=(32, 32, 3)):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def post(url, **kwargs):
    return httpx.post(url + "/predict", timeout=30, **kwargs)


def test_encode_image_round_trips_through_decode_image_and_rejects_what_the_service_would():
    rgb, grey = pixels(3), pixels(4, (28, 28))
    assert (decode_image(encode_image(rgb)) == rgb).all()
    assert (decode_image(encode_image(torch.from_numpy(rgb))) == rgb).all()          # a CPU tensor, (H, W, C)
    assert (decode_image(encode_image(grey))[:, :, 0] == grey).all()
    assert (decode_image(encode_image(grey[:, :, None])) == grey[:, :, None]).all()  # (H, W, 1) is grey
    jpeg = decode_image(encode_image(rgb, "jpeg"))
    assert jpeg.shape == rgb.shape and encode_image(rgb, "JPEG")[:2] == b"\xff\xd8"
    with pytest.raises(ValueError, match="uint8"):
        encode_image(rgb.astype(np.float32) / 255)
    with pytest.raises(ValueError, match=r"permute\(1, 2, 0\)"):
        encode_image(torch.from_numpy(rgb).permute(2, 0, 1))                       # (C, H, W) needs permuting
    with pytest.raises(ValueError, match="PNG or JPEG"):
        encode_image(rgb, "GIF")


def test_image_prediction_equals_eager_model(url, bundles):
    _, _, vgg, _, _ = bundles
    img = pixels(1)
    x = (torch.from_numpy(img).float() / 255 - torch.tensor([0.5, 0.4, 0.3])) / 0.25  # (H, W, C)
    with torch.no_grad():
        want = torch.softmax(vgg(x.permute(2, 0, 1)[None]), dim=1)[0]  # (C, H, W) -> (1, C, H, W)
    for response in (post(url, content=encode_image(img), headers={"content-type": "image/png"}),
                     post(url, files={"file": ("x.png", encode_image(img), "image/png")}),
                     post(url, json={"image": img.tolist()})):
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model"] == "tiny-vgg" and body["version"] == "t1"
        assert body["class"] == CLASSES[int(want.argmax())]
        got = np.array([body["probabilities"][c] for c in CLASSES])
        assert np.abs(got - want.numpy()).max() < 1e-5


def test_jpeg_upload_is_served(url):
    response = post(url, content=encode_image(pixels(2), "JPEG"), headers={"content-type": "image/jpeg"})
    assert response.status_code == 200 and response.json()["class"] in CLASSES


def test_text_prediction_equals_eager_model(url, bundles):
    _, _, _, rnn, vocab = bundles
    for sentence in SENTENCES:
        ids = vocab.encode(tokenize(sentence))
        with torch.no_grad():
            want = torch.softmax(rnn(torch.tensor([ids]), torch.tensor([len(ids)])), dim=1)[0]
        body = post(url, json={"text": sentence}).json()
        assert body["model"] == "tiny-bilstm" and body["version"] == "t2"
        assert abs(body["probabilities"]["positive"] - float(want[1])) < 1e-5


def test_health_readiness_and_metrics(url):
    assert httpx.get(url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(url + "/readyz").json()
    assert ready["ready"] and ready["models"]["image"] == {"name": "tiny-vgg", "version": "t1"}
    text = httpx.get(url + "/metrics").text
    assert 'model_info{kind="text",name="tiny-bilstm",version="t2"} 1.0' in text
    for name in ("http_requests_total", "http_request_duration_seconds_bucket", "inferences_in_flight"):
        assert name in text


BAD = {  # name: (request keyword arguments, expected status, words the message must hold)
    "wrong content type": (dict(content=b"hello", headers={"content-type": "text/plain"}), 415, "content type"),
    "no content type": (dict(content=b"hello"), 415, "content type"),
    "undecodable image": (dict(content=b"\x89PNG not really", headers={"content-type": "image/png"}), 422, "decoded"),
    "empty image": (dict(content=b"", headers={"content-type": "image/png"}), 422, "empty"),
    "gif image": (dict(content=b"GIF89a" + b"\0" * 40, headers={"content-type": "image/png"}), 422, "decoded"),
    "wrong size": (dict(content=encode_image(pixels(0, (28, 28, 3))), headers={"content-type": "image/png"}),
                   422, "28x28"),
    "wrong channels": (dict(content=encode_image(pixels(0, (32, 32))), headers={"content-type": "image/png"}),
                       422, "channel"),
    "array wrong shape": (dict(json={"image": [[1, 2], [3, 4]]}), 422, "3 dimensions"),
    "array wrong channels": (dict(json={"image": pixels(0, (32, 32, 1)).tolist()}), 422, "channel"),
    "array out of range": (dict(json={"image": (pixels(0).astype(int) + 300).tolist()}), 422, "[0, 255]"),
    "array not numbers": (dict(json={"image": [[["a", "b", "c"]]]}), 422, "numbers"),
    "array ragged": (dict(json={"image": [[[1, 2, 3]], [[1, 2]]]}), 422, "numbers"),
    "empty text": (dict(json={"text": ""}), 422, "empty"),
    "invisible text": (dict(json={"text": " \u200b\u00ad "}), 422, "empty"),
    "text over the limit": (dict(json={"text": "good " * 100}), 413, "limit is 300"),
    "tokens over the limit": (dict(json={"text": "a " * 60}), 413, "tokens"),
    "body over the limit": (dict(json={"text": "x" * (2 * LIMIT)}), 413, f"{LIMIT} bytes"),
    "malformed JSON": (dict(content=b'{"text": "unterminated', headers={"content-type": "application/json"}), 400,
                       "malformed"),
    "not UTF-8": (dict(content=b'{"text": "\xff\xfe"}', headers={"content-type": "application/json"}), 400, "malformed"),
    "missing field": (dict(json={"sentence": "good"}), 422, '"text"'),
    "not an object": (dict(json=["good"]), 422, '"text"'),
    "mistyped text": (dict(json={"text": 42}), 422, "string"),
    "mistyped image": (dict(json={"image": "cat.png"}), 422, "nested list"),
    "form without file": (dict(data={"name": "x"}, files={"other": ("x.png", b"1", "image/png")}), 422, '"file"'),
    "NaN": (dict(content=b'{"image": [[[NaN, 0, 0]]]}', headers={"content-type": "application/json"}), 422, "NaN"),
    "Infinity": (dict(content=b'{"image": [[[Infinity, 0, 0]]]}', headers={"content-type": "application/json"}),
                 422, "Infinity"),
    "overflowing number": (dict(content=b'{"image": [[[1e999, 0, 0]]]}', headers={"content-type": "application/json"}),
                           422, "infinite"),
}


@pytest.mark.parametrize("name", BAD)
def test_bad_input_is_a_4xx_with_a_message(url, name):
    kwargs, status, words = BAD[name]
    response = post(url, **kwargs)
    assert response.status_code == status, (name, response.status_code, response.text)
    assert words in response.json()["detail"], response.text


def test_chunked_body_over_the_limit_is_refused_while_streaming(url):
    sent = []

    def chunks():  # no Content-Length: the service must count the bytes as they come
        for _ in range(100):
            sent.append(1)
            yield b"x" * 1000
    response = post(url, content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and f"{LIMIT} bytes" in response.json()["detail"]


def test_bad_inputs_are_counted_by_status(url):
    before = scrape(url)
    post(url, json={"text": ""})
    post(url, content=b"x", headers={"content-type": "text/plain"})
    after = scrape(url)
    key = lambda s: ("http_requests_total", (("endpoint", "/predict"), ("method", "POST"), ("status", s)))
    assert after[key("422")] - before.get(key("422"), 0) == 1
    assert after[key("415")] - before.get(key("415"), 0) == 1


def test_timeout_and_concurrency_bound(bundles):
    with running_service([bundles[0]], "--timeout-s", "0.000001") as base:  # no inference can finish in 1 us
        response = post(base, json={"image": pixels(3).tolist()})
        detail = response.json()["detail"]
        assert response.status_code in (503, 504) and ("timeout" in detail or "busy" in detail), detail
    with running_service([bundles[0]], "--max-concurrent", "1") as base:
        result = run_load(base, [{"json": {"image": pixels(4).tolist()}}], concurrency=8, total=32)
        assert result.errors == 0
        assert httpx.get(base + "/readyz").json()["max_in_flight"] == 1  # 8 clients, never 2 inferences at once


def test_no_text_model_is_a_clear_4xx(bundles):
    with running_service([bundles[0]]) as base:
        response = post(base, json={"text": "good"})
        assert response.status_code == 422 and "no text model" in response.json()["detail"]


def test_bounded_load_test_has_no_errors_and_matches_metrics(url):
    payloads = [{"json": {"text": s}} for s in SENTENCES]
    before = scrape(url)
    results = [run_load(url, payloads, concurrency=c, total=40) for c in (1, 4)]
    after = scrape(url)
    assert all(r.errors == 0 and r.requests == 40 and len(r.latencies_s) == 40 for r in results)
    check = check_metrics(before, after, results, model="tiny-bilstm")
    assert check["match"], check
    assert check["statuses"] == {"200": (80, 80)}
    assert sum(server for _, server in check["classes"].values()) == 80


def test_service_import_path_needs_no_torch(bundles):
    """Import the service and answer a request with torch made unimportable."""
    code = ("import sys; sys.modules['torch'] = None\n"
            "from fastapi.testclient import TestClient\n"
            "from dlbook.deploy.serve import ServiceConfig, create_app\n"
            "import dlbook.deploy.serverless, dlbook.deploy.process\n"
            f"with TestClient(create_app(ServiceConfig(models=({str(bundles[1])!r},)))) as c:\n"
            "    r = c.post('/predict', json={'text': 'a witty movie'})\n"
            "print(r.status_code, 'torch' in sys.modules and sys.modules['torch'] is not None)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=PACKAGE_ROOT, env={"PYTHONPATH": str(PACKAGE_ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["200", "False"]


def test_predictor_refuses_a_folder_that_is_not_a_bundle(tmp_path):
    with pytest.raises(ValueError, match="not a model bundle"):
        Predictor(tmp_path)


def test_write_bundle_checks_its_arguments(tmp_path, bundles):
    with pytest.raises(ValueError, match="image_shape"):
        write_bundle(tmp_path / "b", bundles[0] / "model.onnx", name="x", version="1", kind="image",
                     classes=CLASSES, image_shape=(32, 32, 3), mean=(0.5,), std=(0.5,))
    with pytest.raises(ValueError, match="kind"):
        write_bundle(tmp_path / "b", bundles[0] / "model.onnx", name="x", version="1", kind="audio", classes=CLASSES)
    meta = json.loads((bundles[0] / "meta.json").read_text())
    assert meta["image_shape"] == [32, 32, 3] and meta["classes"] == CLASSES
