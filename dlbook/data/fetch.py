"""A verified copy of a dataset file: from an offline folder, the cache, or a download.

Every loader in :mod:`dlbook.data` asks for its files through :func:`fetch` or
:func:`fetch_bytes`, which try, in order, an offline copy and the cached copy (the
folders of :mod:`dlbook.data.sources`), then a **download** into the cache from the
file's canonical URLs, or, when ``DLBOOK_MIRROR`` is set, from
``$DLBOOK_MIRROR/<spec.path>`` only (a mirror is any web server holding the same layout
as a ``DLBOOK_DATA`` folder). ``DLBOOK_OFFLINE=1`` turns downloads off.

Every file is checked against its SHA-256 before it is used. A download streams into
a hidden temp file next to its destination (:func:`dlbook.files.atomic_write`), is
checked, and only then renamed, so an interrupted or short transfer never leaves a
file that looks like data; temp files of killed downloads are removed once stale. A
transfer slower than :data:`DOWNLOAD_MIN_RATE` fails. Offline folders are only ever read.

Example:
    >>> spec = FileSpec("sst/stsa.binary.dev", sha256="02fe...")   # doctest: +SKIP
    >>> text = fetch_bytes(spec).decode("utf-8")                   # doctest: +SKIP
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import os
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Iterator

from dlbook.data.sources import (CacheWriteError, ChecksumError, CorruptDataError, DataError, DownloadError, FileSpec,
                                 MissingDataError, cache_dir, data_dirs, find_cached, find_offline)
from dlbook.files import DiskFullError, atomic_write

log = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT_S = 60  # seconds one network operation (connect, one read) may block
#: The slowest average transfer (bytes/s) accepted after DOWNLOAD_GRACE_S, so a server trickling a byte at a
#: time fails within DOWNLOAD_GRACE_S + size / DOWNLOAD_MIN_RATE seconds. Lower it on a very slow link.
DOWNLOAD_MIN_RATE, DOWNLOAD_GRACE_S = 10_000, 30.0
_NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, OSError, ValueError)
_CHUNK = 1 << 20
_USER_AGENT = "dlbook/0.1 (+https://pypi.org/project/dlbook)"


def download_urls(spec: FileSpec) -> list[str]:
    """The URLs a download of ``spec`` tries: the mirror's if ``DLBOOK_MIRROR`` is set, else canonical."""
    if _truthy(os.environ.get("DLBOOK_OFFLINE", "")):
        return []
    mirror = os.environ.get("DLBOOK_MIRROR", "").strip()
    if mirror:
        return [f"{mirror.rstrip('/')}/{spec.path}"]
    return list(spec.urls)


# -- checksums ------------------------------------------------------------------------------


def sha256_of(path: str | os.PathLike, checksum_of: str = "file") -> str:
    """SHA-256 (hex) of a file's bytes, or of its gunzipped bytes.

    Raises:
        CorruptDataError: ``checksum_of="gunzip"`` and the file is not a complete gzip stream.
    """
    digest = hashlib.sha256()
    opener = gzip.open if checksum_of == "gunzip" else open
    try:
        with opener(path, "rb") as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                digest.update(chunk)
    except (EOFError, OSError, zlib.error) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise CorruptDataError(f"{path} is not a complete gzip file ({exc}).", path) from exc
    return digest.hexdigest()


def verify(spec: FileSpec, path: str | os.PathLike, fix: str | None = None, shown_as: str | None = None) -> Path:
    """Check ``path`` against ``spec.sha256``; return it as a Path.

    Args:
        spec: what the file should be.
        path: the file to check.
        fix: what to tell the reader to do on a mismatch (by default chosen from
            where the file lives: delete a cached file, replace an offline copy).
        shown_as: how to name the file in the message (default: its path).

    Raises:
        ChecksumError: the SHA-256 differs, or a gzip file is truncated.
    """
    path = Path(path)
    try:
        actual = sha256_of(path, spec.checksum_of)
    except CorruptDataError as exc:
        raise ChecksumError(f"{shown_as or path} is not a complete gzip file. {fix or _fix_for(path)}",
                            path) from exc
    _compare(spec, actual, path, fix, shown_as)
    return path


def _compare(spec: FileSpec, actual: str, path: Path, fix: str | None = None, shown_as: str | None = None) -> None:
    if actual != spec.sha256:
        what = "SHA-256 of its gunzipped data" if spec.checksum_of == "gunzip" else "SHA-256"
        raise ChecksumError(f"{shown_as or path} has the wrong {what} (expected {spec.sha256}, got {actual}): "
                            f"it is truncated, corrupted or a different file. {fix or _fix_for(path)}", path)


def _fix_for(path: Path) -> str:
    try:
        path.resolve().relative_to(cache_dir().resolve())
    except ValueError:
        return ("Replace it with an intact copy, or remove it from the data folder "
                "(DLBOOK_DATA) so that it is downloaded instead.")
    return f"Delete {path} and re-run to download it again."


# -- fetching -------------------------------------------------------------------------------


def fetch(spec: FileSpec) -> Path:
    """A verified local copy of ``spec``: offline copy, else cache, else download.

    Raises:
        ChecksumError: the copy found (or downloaded) has the wrong checksum.
        DownloadError: a download was tried and failed; nothing was written.
        MissingDataError: no copy and no way to download (``DLBOOK_OFFLINE=1`` or no URL).

    Example:
        >>> path = fetch(spec)   # doctest: +SKIP
    """
    return fetch_any([spec])[1]


def fetch_any(specs: list[FileSpec]) -> tuple[FileSpec, Path]:
    """Like :func:`fetch`, for alternative files of one dataset (e.g. two archive formats).

    Each stage (offline, cache, download) tries every alternative, in order, before the
    next stage. Returns the spec that was found and its verified path.
    """
    spec, path, verified = locate_any(specs)
    return spec, path if verified else verify(spec, path)


def locate_any(specs: list[FileSpec]) -> tuple[FileSpec, Path, bool]:
    """Find or download one of ``specs``; return ``(spec, path, verified)``.

    Offline and cached copies are returned unverified (``verified=False``) so that a
    caller who reads the file anyway can check it in the same pass; downloads are
    always verified before they are moved into place.
    """
    for finder in (find_offline, find_cached):
        for spec in specs:
            path = finder(spec)
            if path is not None:
                return spec, path, False
    failures: list[DownloadError] = []
    for spec in specs:
        if not download_urls(spec):
            continue
        try:
            return spec, download(spec), True
        except CacheWriteError:  # no other file can be saved either
            raise
        except DownloadError as exc:
            failures.append(exc)
    raise _missing(specs, failures)


def fetch_bytes(spec: FileSpec) -> bytes:
    """The verified contents of ``spec`` (gunzipped when ``checksum_of="gunzip"``).

    The file is read, decompressed and checked in one pass.

    Example:
        >>> raw = fetch_bytes(spec)   # doctest: +SKIP
    """
    _, path, _ = locate_any([spec])
    try:
        if spec.checksum_of == "gunzip":
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            data = path.read_bytes()
    except (EOFError, OSError, zlib.error) as exc:
        raise ChecksumError(f"{path} is not a complete gzip file ({exc}). {_fix_for(path)}", path) from exc
    _compare(spec, hashlib.sha256(data).hexdigest(), path)
    return data


def download(spec: FileSpec) -> Path:
    """Download ``spec`` into the cache, verify it, and move it into place atomically.

    URLs come from :func:`download_urls`; each is tried in turn. A wrong file or a cache
    that cannot be written is raised at once; other failures move on to the next URL.

    Raises:
        ChecksumError: a download completed but holds the wrong bytes (nothing is kept).
        CacheWriteError: the cache folder cannot be written (the message says how to fix it).
        DownloadError: every URL failed, or was slower than :data:`DOWNLOAD_MIN_RATE` (nothing is kept).
    """
    destination = cache_dir() / spec.path
    urls = download_urls(spec)
    if not urls:
        raise _missing([spec], [])
    errors = []
    for url in urls:
        try:
            _download_one(spec, url, destination)
            return destination
        except CacheWriteError:
            raise
        except DownloadError as exc:
            log.info("%s", exc)
            errors.append(str(exc))
    raise DownloadError(f"Could not download {spec.name}:\n  " + "\n  ".join(errors)
                        + f"\nNothing was written to the cache. {_offline_fix(spec)}", destination)


def _download_one(spec: FileSpec, url: str, destination: Path) -> None:
    log.info("downloading %s -> %s", url, destination)
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        with atomic_write(destination) as out:
            try:
                response = urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S)
            except _NETWORK_ERRORS as exc:
                raise DownloadError(f"{url}: {exc}", destination) from exc
            with response:
                expected = _content_length(response.headers.get("Content-Length"))
                received = 0
                for chunk in _chunks(response, url, destination, spec):
                    out.write(chunk)
                    received += len(chunk)
            if expected is not None and received != expected:
                raise DownloadError(f"{url}: transfer cut short, got {received:,} of {expected:,} bytes", destination)
            out.flush()
            verify(spec, out.name, fix=f"The server sent a different file; nothing was kept in {destination.parent}.",
                   shown_as=f"{spec.name} downloaded from {url}")
    except DataError as exc:
        if isinstance(exc, ChecksumError):
            exc.path = destination
        raise
    except OSError as exc:  # the cache, not the network (network errors are DownloadErrors by now)
        raise CacheWriteError(_cache_fix(destination, exc), destination) from exc


def _chunks(response, url: str, destination: Path, spec: FileSpec) -> Iterator[bytes]:
    """The body as it arrives (``read1``: whatever is there), failing if slower than DOWNLOAD_MIN_RATE."""
    read = getattr(response, "read1", response.read)
    start, received = time.monotonic(), 0
    while True:
        try:
            chunk = read(_CHUNK)
        except _NETWORK_ERRORS as exc:
            raise DownloadError(f"{url}: {exc}", destination) from exc
        if not chunk:
            return
        received += len(chunk)
        elapsed = time.monotonic() - start
        if elapsed > DOWNLOAD_GRACE_S and received < DOWNLOAD_MIN_RATE * elapsed:
            raise DownloadError(
                f"{url}: too slow, {received / elapsed:,.0f} bytes/s over {elapsed:.0f} s (the minimum is "
                f"dlbook.data.fetch.DOWNLOAD_MIN_RATE = {DOWNLOAD_MIN_RATE:,} bytes/s). Try again later, another "
                f"DLBOOK_MIRROR, or a lower DOWNLOAD_MIN_RATE. {_offline_fix(spec)}", destination)
        yield chunk


def _content_length(value: str | None) -> int | None:
    """The announced length; None if absent or invalid (``-1``, ``abc``): then the SHA-256 alone judges."""
    value = (value or "").strip()
    return int(value) if value.isascii() and value.isdigit() else None


def _cache_fix(destination: Path, exc: OSError) -> str:
    if isinstance(exc, IsADirectoryError) and destination.is_dir():
        return f"Cannot save the download: {destination} is a folder; remove or rename it (or set DLBOOK_CACHE)."
    if isinstance(exc, DiskFullError):
        return f"Cannot save the download: {exc.strerror} (DLBOOK_CACHE names the cache folder.)"
    return (f"Cannot save the download in {destination.parent} ({type(exc).__name__}: {exc}); make that "
            "folder writable, or set DLBOOK_CACHE to a writable folder.")


def _missing(specs: list[FileSpec], failures: list[DownloadError]) -> MissingDataError:
    spec = specs[0]
    names = " or ".join(s.path for s in specs)
    offline = ", ".join(str(d) for d in data_dirs()) or "none"
    where = "" if os.environ.get("DLBOOK_DATA", "").strip() else "DLBOOK_DATA is not set; "
    message = f"{names} not found in the offline folders ({where}searched: {offline}) or the cache ({cache_dir()})."
    if failures:
        message += "\n" + "\n".join(str(f) for f in failures)
        return DownloadError(message, failures[-1].path)
    if _truthy(os.environ.get("DLBOOK_OFFLINE", "")):
        message += " Downloads are off (DLBOOK_OFFLINE is set)."
    elif not any(s.urls for s in specs):
        message += " It has no public download URL."
    return MissingDataError(f"{message} {_offline_fix(spec, specs)}", cache_dir() / spec.path)


def _offline_fix(spec: FileSpec, specs: list[FileSpec] | None = None) -> str:
    names = " or ".join(s.path for s in (specs or [spec]))
    hints = " ".join(dict.fromkeys(s.hint for s in (specs or [spec]) if s.hint))
    return f"Fix: set DLBOOK_DATA to the folder holding {names}.{(' ' + hints) if hints else ''}"


def _truthy(value: str) -> bool:
    return value.strip().lower() not in ("", "0", "false", "no", "off")
