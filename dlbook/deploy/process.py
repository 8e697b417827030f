"""Start the model service as its own process on a free loopback port, and stop it again.

The tests, the notebook and the load test all start the service the way production does,
``python -m dlbook.deploy.serve ...`` in a separate process, so the numbers include the
HTTP stack and nothing shares the caller's interpreter (or its torch).

Example:
    >>> port = free_port()
    >>> 1024 <= port <= 65535
    True
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder that holds dlbook/


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def serve_command(models: list[str | os.PathLike], port: int, host: str = "127.0.0.1", *extra: str,
                  python: str = sys.executable) -> list[str]:
    """The command line that starts the service (the ``Containerfile``'s ``CMD`` is the same, with its paths).

    Example:
        >>> serve_command(["bundles/cifar10"], 8000, python="python")
        ['python', '-m', 'dlbook.deploy.serve', '--model', 'bundles/cifar10', '--host', '127.0.0.1', '--port', '8000']
    """
    cmd = [python, "-m", "dlbook.deploy.serve"]
    for m in models:
        cmd += ["--model", str(m)]
    return cmd + ["--host", host, "--port", str(port), *extra]


def wait_ready(url: str, timeout_s: float = 60.0, path: str = "/readyz", process: subprocess.Popen | None = None) -> float:
    """Poll ``url + path`` until it answers 200; seconds waited. A dead process or a timeout is an error."""
    tic = time.perf_counter()
    while True:
        if process is not None and process.poll() is not None:
            out = process.stdout.read().decode(errors="replace") if process.stdout else ""
            raise RuntimeError(f"the service exited with code {process.returncode} before it was ready:\n{out[-2000:]}")
        try:
            if httpx.get(url + path, timeout=1.0).status_code == 200:
                return time.perf_counter() - tic
        except httpx.TransportError:
            pass
        if time.perf_counter() - tic > timeout_s:
            raise TimeoutError(f"{url}{path} was not ready after {timeout_s} s")
        time.sleep(0.02)


@contextmanager
def running_service(models: list[str | os.PathLike], *extra: str, timeout_s: float = 60.0,
                    env: dict | None = None) -> Iterator[str]:
    """Run the service on a free 127.0.0.1 port for the ``with`` block; yields its base URL.

    ``extra`` are more command-line options (``"--max-concurrent", "1"``); ``env`` is added to
    the child's environment. The child is stopped (terminate, then kill) when the block ends.
    """
    port = free_port()
    child_env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")])),
                 **(env or {})}
    process = subprocess.Popen(serve_command(models, port, "127.0.0.1", *extra), env=child_env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, timeout_s, process=process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()
