"""The service's container, built and run with podman on this machine (slow; skipped where podman is absent).

Cost here: the debootstrapped base image once (~30 s on an idle machine, ~4 min under load; kept
between runs), then the image build (~15-75 s: pip downloads fastapi, uvicorn, onnxruntime) and a
container start. Needs the Debian packages podman, runc and debootstrap, root, and the package registry.
"""

import os

import httpx
import numpy as np
import pytest

from dlbook.deploy import container
from dlbook.deploy.process import free_port
from dlbook.deploy.runtime import encode_image

from test_deploy_service import make_bundles, pixels

SKIP = container.podman_available() or (None if os.geteuid() == 0 else "podman here runs rootful: run as root")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(SKIP is not None, reason=f"container test skipped: {SKIP}")]
TAG = "localhost/dlbook-serve:test"


def test_container_builds_runs_as_non_root_and_serves(tmp_path):
    image_bundle, text_bundle, *_ = make_bundles(tmp_path)
    container.debian_base()
    container.build_image(TAG)
    assert container.image_size_mb(TAG) < 1024  # no torch inside: torch alone is ~700 MB
    name, port = f"dlbook-test-{os.getpid()}", free_port()
    try:
        seconds = container.run_container(TAG, image_bundle, port, name)
        assert seconds < 120
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(url + "/healthz").json() == {"status": "ok"}
        response = httpx.post(url + "/predict", content=encode_image(pixels(5)), headers={"content-type": "image/png"})
        assert response.status_code == 200 and response.json()["model"] == "tiny-vgg"
        bad = httpx.post(url + "/predict", json={"text": "good"})  # the container serves the image model only
        assert bad.status_code == 422 and "no text model" in bad.json()["detail"]
        assert container.container_exec(name, "id", "-u").strip() == "10001"
        probe = container.container_exec(name, "python", "-c",
                                         "import importlib.util as u; print(u.find_spec('torch') is None)")
        assert probe.strip() == "True"
    finally:
        container.stop_container(name)
    assert np.isfinite(seconds)
