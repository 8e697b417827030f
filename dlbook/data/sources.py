"""Where dataset files come from: an offline copy, the cache, or a verified download.

Every loader in :mod:`dlbook.data` asks for its files through :func:`fetch`, which
tries, in order:

1. an **offline copy**: ``<dir>/<spec.path>`` for each folder in ``DLBOOK_DATA``
   (several may be joined with ``os.pathsep``), then under the system folders in
   :data:`SYSTEM_DATA_DIRS` (Debian's ``/usr/share/datasets``, where
   ``apt-get install dataset-fashion-mnist`` puts ``fashion-mnist/*.gz``);
2. the **cache**: ``<cache>/<spec.path>``, where ``<cache>`` is ``DLBOOK_CACHE``, else
   ``$XDG_CACHE_HOME/dlbook``, else ``~/.cache/dlbook``;
3. a **download** into the cache from the file's canonical URLs, or, when
   ``DLBOOK_MIRROR`` is set, from ``$DLBOOK_MIRROR/<spec.path>`` only (a mirror is any
   web server holding the same layout as a ``DLBOOK_DATA`` folder). ``DLBOOK_OFFLINE=1``
   turns downloads off.

Every file is checked against its SHA-256 before it is used. A download streams into
a hidden ``*.part`` file next to its destination, is checked, and only then renamed
(``os.replace``), so an interrupted or short transfer never leaves a file that looks
like data. Offline folders are only ever read.

Example:
    >>> spec = FileSpec("sst/stsa.binary.dev", sha256="02fe...")   # doctest: +SKIP
    >>> text = fetch_bytes(spec).decode("utf-8")                   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import logging
import os
import secrets
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, Literal

log = logging.getLogger(__name__)

#: Folders searched after ``DLBOOK_DATA`` for offline copies (same layout). Tests may patch it.
SYSTEM_DATA_DIRS: tuple[Path, ...] = (Path("/usr/share/datasets"),)

DOWNLOAD_TIMEOUT_S = 60
_CHUNK = 1 << 20
_USER_AGENT = "dlbook/0.1 (+https://pypi.org/project/dlbook)"


# -- errors ---------------------------------------------------------------------------------


class DataError(Exception):
    """Base class of every data error; ``path`` is the file concerned (or None)."""

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        super().__init__(message)
        self.path = Path(path) if path is not None else None


class MissingDataError(DataError):
    """No offline copy, no cached copy, and no download possible."""


class DownloadError(MissingDataError):
    """A download failed (network error, HTTP error, or a transfer cut short)."""


class CorruptDataError(DataError):
    """A file is there but its contents cannot be what they should be."""


class ChecksumError(CorruptDataError):
    """A file's SHA-256 is not the expected one (truncated, corrupted or a different file)."""


# -- file specifications --------------------------------------------------------------------


@dataclass(frozen=True)
class FileSpec:
    """One dataset file: where it sits in a data folder, its checksum, where to download it.

    Attributes:
        path: relative path inside ``DLBOOK_DATA``, the cache, and a mirror, e.g.
            ``"sst/stsa.binary.train"``.
        sha256: the expected SHA-256 in hex: of the file's bytes, or of its gunzipped
            bytes when ``checksum_of="gunzip"``.
        urls: canonical download URLs, tried in order; empty if there is none.
        checksum_of: ``"file"`` or ``"gunzip"``. Gunzipped checksums verify the data
            rather than the compression, so a recompressed copy (Debian's Fashion-MNIST
            ``.gz`` files differ from upstream's bytes but hold the same idx data) passes.
        hint: one more way to get the file, added to the "missing" message.
    """

    path: str
    sha256: str
    urls: tuple[str, ...] = ()
    checksum_of: Literal["file", "gunzip"] = "file"
    hint: str = ""

    @property
    def name(self) -> str:
        return Path(self.path).name


# -- folders --------------------------------------------------------------------------------


def data_dirs() -> list[Path]:
    """The folders searched for offline copies: ``DLBOOK_DATA`` entries, then system folders."""
    value = os.environ.get("DLBOOK_DATA", "")
    dirs = [Path(p).expanduser() for p in value.split(os.pathsep) if p.strip()]
    return dirs + [d for d in SYSTEM_DATA_DIRS if d not in dirs]


def cache_dir() -> Path:
    """The cache folder: ``DLBOOK_CACHE``, else ``$XDG_CACHE_HOME/dlbook``, else ``~/.cache/dlbook``.

    It is not created here; writers create what they need.
    """
    if os.environ.get("DLBOOK_CACHE"):
        return Path(os.environ["DLBOOK_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "dlbook"


def download_urls(spec: FileSpec) -> list[str]:
    """The URLs a download of ``spec`` tries: the mirror's if ``DLBOOK_MIRROR`` is set, else canonical."""
    if _truthy(os.environ.get("DLBOOK_OFFLINE", "")):
        return []
    mirror = os.environ.get("DLBOOK_MIRROR", "").strip()
    if mirror:
        return [f"{mirror.rstrip('/')}/{spec.path}"]
    return list(spec.urls)


def find_offline(spec: FileSpec) -> Path | None:
    """The first offline copy of ``spec`` (not verified), or None."""
    for folder in data_dirs():
        candidate = folder / spec.path
        if candidate.is_file():
            return candidate
    return None


def find_cached(spec: FileSpec) -> Path | None:
    """The cached copy of ``spec`` (not verified), or None."""
    candidate = cache_dir() / spec.path
    return candidate if candidate.is_file() else None


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
        raise ChecksumError(
            f"{shown_as or path} has the wrong {what} (expected {spec.sha256}, got {actual}): "
            f"it is truncated, corrupted or a different file. {fix or _fix_for(path)}",
            path,
        )


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

    URLs come from :func:`download_urls`; each is tried in turn. A checksum mismatch is
    raised at once (a wrong file is not a network hiccup); other failures move on to the
    next URL and are reported together.

    Raises:
        ChecksumError: a download completed but holds the wrong bytes (nothing is kept).
        DownloadError: every URL failed (nothing is kept).
    """
    destination = cache_dir() / spec.path
    urls = download_urls(spec)
    if not urls:
        raise _missing([spec], [])
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"Cannot create the cache folder {destination.parent} ({exc}). "
                            f"Set DLBOOK_CACHE to a writable folder.", destination) from exc
    errors = []
    for url in urls:
        try:
            _download_one(spec, url, destination)
            return destination
        except DownloadError as exc:
            log.info("%s", exc)
            errors.append(str(exc))
    raise DownloadError(
        "Could not download " + spec.name + ":\n  " + "\n  ".join(errors)
        + f"\nNothing was written to the cache. {_offline_fix(spec)}",
        destination,
    )


def _download_one(spec: FileSpec, url: str, destination: Path) -> None:
    log.info("downloading %s -> %s", url, destination)
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    with atomic_write(destination) as (out, tmp):
        try:
            with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response:
                expected = response.headers.get("Content-Length")
                received = 0
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    out.write(chunk)
                    received += len(chunk)
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            raise DownloadError(f"{url}: {exc}", destination) from exc  # (OSError: also a full disk)
        if expected is not None and received != int(expected):
            raise DownloadError(
                f"{url}: transfer cut short, got {received:,} of {expected} bytes", destination)
        out.flush()
        try:
            verify(spec, tmp, fix=f"The server sent a different file; nothing was kept in {destination.parent}.",
                   shown_as=f"{spec.name} downloaded from {url}")
        except ChecksumError as exc:
            exc.path = destination
            raise


@contextlib.contextmanager
def atomic_write(destination: Path) -> Iterator[tuple[BinaryIO, Path]]:
    """Write ``destination`` through a hidden temp file in its folder, renamed on success.

    Yields ``(file, temp_path)``. On any exception the temp file is removed and
    ``destination`` is left as it was.

    Example:
        >>> with atomic_write(Path("out.bin")) as (f, _):   # doctest: +SKIP
        ...     f.write(b"data")
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    # A unique hidden name; opened with "xb" (not mkstemp) so the umask, not 0600, sets its mode.
    tmp = destination.parent / f".{destination.name}.{secrets.token_hex(6)}.part"
    try:
        with open(tmp, "xb") as f:
            yield f, tmp
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, destination)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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
