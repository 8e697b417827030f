"""The MLflow registry (SQLite backend, aliases) and the service that serves its champion and reloads it live."""

import shutil

import httpx
import numpy as np
import pytest
import torch
from test_deploy_service import make_bundles, pixels

from dlbook.deploy.export import export_onnx
from dlbook.deploy.predlog import PredictionLog
from dlbook.deploy.process import running_service
from dlbook.deploy.registry import CHAMPION, PREVIOUS, Registry, RegistryError
from dlbook.deploy.runtime import encode_image, write_bundle
from dlbook.deploy.serve import admin_refusal
from dlbook.models.vgg import VGG, VGGConfig

pytestmark = pytest.mark.slow  # MLflow's first open of a SQLite database runs its migrations (seconds)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A registry with two real bundles (different weights) as versions 1 and 2; 1 is the champion."""
    root = tmp_path_factory.mktemp("registry")
    image, _, vgg, _, _ = make_bundles(root)
    torch.manual_seed(1)
    other = VGG(VGGConfig.tiny()).eval()
    export_onnx(other, (torch.randn(2, 3, 32, 32),), root / "vgg2.onnx", input_names=["images"],
                dynamic={"images": {0: "batch"}}, dynamo=False)
    image2 = write_bundle(root / "image2", root / "vgg2.onnx", name="tiny-vgg", version="t2", kind="image",
                          classes=[f"c{i}" for i in range(10)], image_shape=(32, 32, 3), mean=(0.5, 0.4, 0.3),
                          std=(0.25, 0.25, 0.25))
    reg = Registry(root / "reg", "cifar10-classifier")
    v1 = reg.register(image, {"clean_accuracy": 0.5, "drift_accuracy": 0.3}, tags={"note": "first"})
    v2 = reg.register(image2, {"clean_accuracy": 0.5, "drift_accuracy": 0.4})
    reg.promote(v1.version)
    return root, reg, v1, v2


def probs(response):
    return np.array(list(response.json()["probabilities"].values()))


def test_registry_versions_aliases_and_rollback(setup, tmp_path):
    _, reg, v1, v2 = setup
    assert (v1.version, v2.version) == ("1", "2") and v1.metrics == {"clean_accuracy": 0.5, "drift_accuracy": 0.3}
    assert reg.get(CHAMPION).version == "1" and PREVIOUS not in reg.aliases()
    reopened = Registry(reg.root, reg.name)  # the state lives in SQLite, not in the object
    assert reopened.get(CHAMPION).version == "1"
    assert (reg.fetch(v2, tmp_path) / "model.onnx").read_bytes() == (setup[0] / "vgg2.onnx").read_bytes()
    with pytest.raises(RegistryError, match="no alias 'staging'"):
        reg.get("staging")
    with pytest.raises(RegistryError, match="nothing to roll back"):
        Registry(tmp_path / "empty", "x").rollback()


def test_service_picks_up_a_new_alias_rolls_back_and_keeps_serving_through_bad_entries(setup):
    root, reg, v1, v2 = setup
    reg.promote(v1.version)
    image = encode_image(pixels(5))
    headers = {"content-type": "image/png"}
    with running_service([], "--registry", str(reg.root), "--log-db", str(root / "log.db"), "--log-inputs",
                         "--threads", "1") as url:
        post = lambda rid: httpx.post(url + "/predict", content=image, headers={**headers, "x-request-id": rid},
                                      timeout=30)
        first = post("a-1")
        assert first.json()["version"] == "1" and first.headers["x-request-id"] == "a-1"
        reg.promote(v2.version)
        answer = httpx.post(url + "/admin/reload", timeout=120).json()
        assert answer == {"reloaded": True, "model": "tiny-vgg", "version": "2", "previous_version": "1"}
        second = post("a-2")
        assert second.json()["version"] == "2" and not np.allclose(probs(first), probs(second))
        assert reg.rollback() == "1" and reg.aliases() == {CHAMPION: "1", PREVIOUS: "2"}
        assert httpx.post(url + "/admin/reload", timeout=120).json()["version"] == "1"
        assert np.allclose(probs(post("a-3")), probs(first))
        # a corrupt entry: its ONNX file is garbage; the reload is refused and version 1 keeps serving
        bad = root / "bad"
        shutil.copytree(setup[0] / "image", bad)
        (bad / "model.onnx").write_bytes(b"not an onnx model")
        v3 = reg.register(bad, {"clean_accuracy": 0.9, "drift_accuracy": 0.9})
        reg.set_alias(CHAMPION, v3.version)
        refused = httpx.post(url + "/admin/reload", timeout=120)
        assert refused.status_code == 409
        assert "still serving tiny-vgg version 1" in refused.json()["detail"] and "does not load" in refused.json()["detail"]
        # a missing entry: the alias points at nothing
        reg.client.delete_registered_model_alias(reg.name, CHAMPION)
        missing = httpx.post(url + "/admin/reload", timeout=120)
        assert missing.status_code == 409 and "no alias 'champion'" in missing.json()["detail"]
        assert post("a-4").json()["version"] == "1"
        metrics = httpx.get(url + "/metrics").text
        assert 'model_reloads_total{result="failed"} 2.0' in metrics and 'model_reloads_total{result="ok"} 2.0' in metrics
    rows = PredictionLog(root / "log.db").rows(prefix="a-")
    assert [(r["request_id"], r["version"]) for r in rows] == [("a-1", "1"), ("a-2", "2"), ("a-3", "1"), ("a-4", "1")]
    assert rows[0]["input"] == image and rows[0]["confidence"] == pytest.approx(probs(first).max(), abs=1e-6)
    reg.promote(v1.version)


def test_reload_needs_the_operator_token_when_the_service_has_one(setup):
    _, reg, v1, _ = setup
    reg.promote(v1.version)
    with running_service([], "--registry", str(reg.root), "--threads", "1", env={"DLBOOK_ADMIN_TOKEN": "s3cret"}) as url:
        reload = lambda **headers: httpx.post(url + "/admin/reload", headers=headers, timeout=120)
        missing = reload()
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert "DLBOOK_ADMIN_TOKEN" in missing.json()["detail"]
        assert reload(authorization="Bearer wrong").status_code == 403
        assert reload(authorization="Basic s3cret").status_code == 401
        assert reload(authorization="Bearer s3cret").json()["version"] == "1"
        metrics = httpx.get(url + "/metrics").text
        assert 'http_requests_total{endpoint="/admin/reload",method="POST",status="401"} 2.0' in metrics
        assert 'model_reloads_total{result="ok"} 1.0' in metrics   # a refused request loads nothing


def test_admin_refusal_without_a_token_lets_only_loopback_clients_reload():
    assert admin_refusal(None, "127.0.0.1", None) is None and admin_refusal(None, "::1", None) is None
    for host in ("10.88.0.1", "192.168.1.20", None, "testclient"):   # a container's gateway, a LAN, no address
        status, message = admin_refusal(None, host, None)
        assert status == 403 and "DLBOOK_ADMIN_TOKEN" in message
    assert admin_refusal("Bearer s3cret", "10.88.0.1", "s3cret") is None   # with a token, any address
    assert admin_refusal("Bearer s3cre", "127.0.0.1", "s3cret")[0] == 403  # and loopback needs it too


def test_service_refuses_to_start_on_a_missing_champion(setup, tmp_path):
    empty = Registry(tmp_path / "empty", "cifar10-classifier")
    with pytest.raises(RuntimeError, match="no alias 'champion'"):
        with running_service([], "--registry", str(empty.root), timeout_s=120):
            pass
