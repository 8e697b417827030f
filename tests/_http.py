"""A local HTTP server for the tests that download (a mirror of the data) or browse (the built book)."""

from __future__ import annotations

import functools
import threading
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator


class Quiet(SimpleHTTPRequestHandler):
    """Serves a folder without logging every request to pytest's output."""

    def log_message(self, *args):
        pass


@contextmanager
def serving(folder: Path, handler: type[SimpleHTTPRequestHandler] = Quiet) -> Iterator[str]:
    """Serve ``folder`` on a free loopback port, in a thread, while the block runs; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def mirror_tree(root: Path, data: Path, fashion: Path) -> Path:
    """A mirror laid out like a ``DLBOOK_DATA`` folder, holding symlinks to the real files.

    ``data`` is the offline folder (``sst/``, ``cifar10-jpeg.tar.xz``), ``fashion`` Debian's Fashion-MNIST folder;
    whatever of them exists is linked.
    """
    (root / "sst").mkdir(parents=True)
    (root / "fashion-mnist").mkdir()
    if (data / "sst").is_dir():
        for f in (data / "sst").iterdir():
            (root / "sst" / f.name).symlink_to(f)
    if fashion.is_dir():
        for f in fashion.glob("*.gz"):
            (root / "fashion-mnist" / f.name).symlink_to(f)
    if (data / "cifar10-jpeg.tar.xz").is_file():
        (root / "cifar10-jpeg.tar.xz").symlink_to(data / "cifar10-jpeg.tar.xz")
    return root
