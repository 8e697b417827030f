"""Build and run the service's container with podman: the ``Containerfile`` in this folder.

Readers build it with the default base, the official ``python:3.11-slim`` image. A machine
with no access to a container registry (this book's build machine) builds its own base
instead: :func:`debian_base` runs ``debootstrap --variant=minbase bookworm`` from the Debian
mirror apt already uses and imports the tree as ``localhost/debian-base:bookworm``. Podman
runs rootful here with ``runc`` and a ``containers.conf`` that uses cgroupfs and no default
ulimits (:func:`podman_env`); builds and containers use the host network, and the host's CA
bundle is mounted into the build so that pip can verify the package registry.

Example:
    >>> podman_command("images")[:3]
    ['podman', '--runtime', 'runc']
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from dlbook.deploy.process import PACKAGE_ROOT, wait_ready

CONTAINERFILE = Path(__file__).with_name("Containerfile")
DEBIAN_BASE = "localhost/debian-base:bookworm"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
CONTAINERS_CONF = """[containers]
default_ulimits = []

[engine]
cgroup_manager = "cgroupfs"
"""


def podman_available() -> str | None:
    """None when podman, runc and debootstrap are all installed; else what is missing (a skip reason)."""
    missing = [tool for tool in ("podman", "runc", "debootstrap") if shutil.which(tool) is None]
    return f"not installed: {', '.join(missing)} (apt-get install -y podman runc debootstrap)" if missing else None


def podman_env(folder: str | os.PathLike | None = None) -> dict:
    """The environment podman runs with: ``CONTAINERS_CONF`` pointing at the cgroupfs configuration."""
    folder = Path(folder or tempfile.gettempdir()) / "dlbook-podman"
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


def podman_command(*args: str) -> list[str]:
    """``podman --runtime runc <args>``."""
    return ["podman", "--runtime", "runc", *args]


def podman(*args: str, timeout_s: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    """Run one podman command; a failure is an error that shows podman's own message."""
    out = subprocess.run(podman_command(*args), env=podman_env(), capture_output=True, text=True, timeout=timeout_s)
    if check and out.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args[:2])} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return out


def image_exists(tag: str) -> bool:
    return podman("image", "exists", tag, check=False).returncode == 0


def debian_mirror(sources: str = "/etc/apt/sources.list.d/debian.sources") -> str:
    """The first Debian mirror apt uses (``URIs:`` in deb822 sources, else ``sources.list``)."""
    for path in (Path(sources), Path("/etc/apt/sources.list")):
        if path.is_file():
            for line in path.read_text().splitlines():
                words = line.split()
                if words[:1] == ["URIs:"] and "security" not in words[1]:
                    return words[1]
                if words[:1] == ["deb"] and "security" not in line:
                    return next(w for w in words[1:] if w.startswith("http"))
    return "http://deb.debian.org/debian"


def debian_base(tag: str = DEBIAN_BASE, include: str = "python3,python3-venv,ca-certificates") -> float:
    """Make ``tag`` from a debootstrapped Debian bookworm with Python, unless it exists; seconds taken."""
    if image_exists(tag):
        return 0.0
    tic = time.perf_counter()
    with tempfile.TemporaryDirectory() as root:
        out = subprocess.run(["debootstrap", "--variant=minbase", f"--include={include}", "bookworm", root,
                              debian_mirror()], capture_output=True, text=True, timeout=900)
        if out.returncode != 0:
            raise RuntimeError(f"debootstrap failed:\n{out.stderr[-3000:]}")
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(podman_command("import", "-", tag), stdin=tar.stdout, env=podman_env(),
                                  capture_output=True, text=True, timeout=600)
        tar.wait()
        if imported.returncode != 0:
            raise RuntimeError(f"podman import failed:\n{imported.stderr[-3000:]}")
    return time.perf_counter() - tic


def build_image(tag: str = "localhost/dlbook-serve:latest", base: str | None = DEBIAN_BASE) -> float:
    """Build the service image from the repository root; seconds taken. ``base=None``: the Containerfile's default."""
    tic = time.perf_counter()
    args = ["build", "--format", "docker", "--network", "host", "-v", f"{CA_BUNDLE}:{CA_BUNDLE}:ro",
            "-f", str(CONTAINERFILE), "-t", tag]
    if base is not None:
        args += ["--build-arg", f"BASE={base}"]
    podman(*args, str(PACKAGE_ROOT), timeout_s=1200)
    return time.perf_counter() - tic


def image_size_mb(tag: str) -> float:
    """The image's size in MiB, as podman reports it (all layers, uncompressed)."""
    return int(podman("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip()) / 2**20


def run_container(tag: str, bundle: str | os.PathLike, port: int, name: str, timeout_s: float = 120) -> float:
    """Start the image with ``bundle`` mounted on the host network; seconds from ``podman run`` to ``/healthz``.

    Stop it with :func:`stop_container`.
    """
    tic = time.perf_counter()
    podman("run", "-d", "--rm", "--name", name, "--network", "host", "-e", f"PORT={port}",
           "-v", f"{Path(bundle).resolve()}:/models/model:ro", tag, "--model", "/models/model", "--host", "127.0.0.1")
    wait_ready(f"http://127.0.0.1:{port}", timeout_s, path="/healthz")
    return time.perf_counter() - tic


def container_exec(name: str, *command: str, timeout_s: float = 300) -> str:
    """Run a command inside the running container; its standard output."""
    return podman("exec", name, *command, timeout_s=timeout_s).stdout


def stop_container(name: str) -> None:
    podman("rm", "-f", "-t", "2", name, check=False)
