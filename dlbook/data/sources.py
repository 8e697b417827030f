"""What a dataset file is and where a copy may sit: the file specs, the folders, the errors.

A file is named by a :class:`FileSpec` (its path inside a data folder, its SHA-256,
where to download it). A copy may sit in

1. an **offline folder**: ``<dir>/<spec.path>`` for each folder in ``DLBOOK_DATA``
   (several may be joined with ``os.pathsep``), then under the system folders in
   :data:`SYSTEM_DATA_DIRS` (Debian's ``/usr/share/datasets``, where
   ``apt-get install dataset-fashion-mnist`` puts ``fashion-mnist/*.gz``), or the folders
   ``DLBOOK_SYSTEM_DATA`` names instead (empty: none, as on a machine without those packages);
2. the **cache**: ``<cache>/<spec.path>``, where ``<cache>`` is ``DLBOOK_CACHE``, else
   ``$XDG_CACHE_HOME/dlbook``, else ``~/.cache/dlbook``.

:mod:`dlbook.data.fetch` looks there, downloads what is missing, and checks every
file's SHA-256. Every error is a :class:`DataError` whose message says what to do.

Example:
    >>> find_offline(FileSpec("sst/stsa.binary.dev", sha256="02fe..."))   # doctest: +SKIP
    PosixPath('/data/sst/stsa.binary.dev')
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from dlbook.files import remove_stale_temps

#: Folders searched after ``DLBOOK_DATA`` for offline copies (same layout), unless ``DLBOOK_SYSTEM_DATA`` is set.
SYSTEM_DATA_DIRS: tuple[Path, ...] = (Path("/usr/share/datasets"),)



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


class CacheWriteError(DownloadError):
    """A file cannot be saved in the cache: no permission, a folder in the way, or a full disk."""


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


def _folders(value: str) -> list[Path]:
    return [Path(p).expanduser() for p in value.split(os.pathsep) if p.strip()]


def data_dirs() -> list[Path]:
    """The folders searched for offline copies: ``DLBOOK_DATA`` entries, then the system folders.

    The system folders are :data:`SYSTEM_DATA_DIRS`, or those ``DLBOOK_SYSTEM_DATA`` names when it is
    set (``DLBOOK_SYSTEM_DATA=`` turns them off: the reader's-path test runs so, as Colab would).
    """
    dirs = _folders(os.environ.get("DLBOOK_DATA", ""))
    system = os.environ.get("DLBOOK_SYSTEM_DATA")
    system_dirs = SYSTEM_DATA_DIRS if system is None else _folders(system)
    return dirs + [d for d in system_dirs if d not in dirs]


def cache_dir() -> Path:
    """The cache folder: ``DLBOOK_CACHE``, else ``$XDG_CACHE_HOME/dlbook``, else ``~/.cache/dlbook``.

    It is not created here; writers create what they need.
    """
    if os.environ.get("DLBOOK_CACHE"):
        return Path(os.environ["DLBOOK_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "dlbook"


def find_offline(spec: FileSpec) -> Path | None:
    """The first offline copy of ``spec`` (not verified), or None."""
    for folder in data_dirs():
        candidate = folder / spec.path
        if candidate.is_file():
            return candidate
    return None


def find_cached(spec: FileSpec) -> Path | None:
    """The cached copy of ``spec`` (not verified), or None; stale temp files of killed downloads go."""
    candidate = cache_dir() / spec.path
    remove_stale_temps(candidate.parent)
    return candidate if candidate.is_file() else None
