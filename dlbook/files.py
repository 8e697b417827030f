"""Files that are never half-written and never silently wrong: one atomic write, checked tensor files.

Two things go wrong with files that a long run depends on (checkpoints, decoded
dataset caches, downloads):

* **A write is interrupted** (the process is killed, the disk fills up). Every
  writer in dlbook goes through :func:`atomic_write`: the bytes go to a hidden
  temp file in the destination's folder, are flushed to disk, and only then
  renamed over the destination (``os.replace`` is atomic on POSIX and Windows).
  The old file survives any failure; a full disk is a :class:`DiskFullError` that
  names the folder. Temp files left by killed writers are removed the next time
  the same destination is written, once they are older than :data:`STALE_AFTER_S`.
* **A file rots** (a flipped bit on disk or in transit). :func:`save_checked`
  stores a SHA-256 of the payload inside the file and :func:`load_checked`
  verifies it before anything is unpickled, so a corrupted checkpoint is an
  error that names the file instead of a weight that quietly became 3e37.

Example:
    >>> save_checked({"w": torch.ones(2)}, "run/last.pt")   # doctest: +SKIP
    >>> load_checked("run/last.pt")["w"]                      # doctest: +SKIP
    tensor([1., 1.])
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import re
import secrets
import time
from pathlib import Path
from typing import BinaryIO, Iterator

import torch

#: A temp file untouched for this long belongs to a writer that was killed (an active writer
#: keeps touching its file); it is removed the next time its destination is written.
STALE_AFTER_S = 3600.0

_MAGIC = b"DLBOOK-CHECKED-1\n"
_DIGEST_LEN = 64  # hex SHA-256
_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
# The temp names dlbook's writers use: ".<name>.<12 hex digits>.tmp" (or ".part" for older downloads).
# Nothing else in a folder is ever removed, so a checkpoint saved into a home folder cannot touch other files.
_TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{12}\.(?:tmp|part)$")


class DiskFullError(OSError):
    """The disk (or quota) holding ``folder`` is full; what was there before is untouched."""

    def __init__(self, folder: str | os.PathLike, cause: BaseException | None = None):
        self.folder = Path(folder)
        super().__init__(errno.ENOSPC, f"no space left in {self.folder} ({cause}); the previous file there, if any, "
                                       "is untouched. Free some space or point the run at another folder.")


class CorruptFileError(ValueError):
    """A file exists but is not what was written: truncated, bit-rotted, or written by another program."""

    def __init__(self, message: str, path: str | os.PathLike):
        super().__init__(message)
        self.path = Path(path)


def remove_stale_temps(folder: str | os.PathLike, older_than_s: float = STALE_AFTER_S) -> list[Path]:
    """Delete the hidden temp files (``.<name>.<hex>.tmp`` / ``.part``) that killed writers left in ``folder``.

    Only files not modified for ``older_than_s`` seconds are removed, so a writer that is
    still running keeps its temp file. Returns the paths removed.

    Example:
        >>> remove_stale_temps("checkpoints")   # doctest: +SKIP
        []
    """
    folder, now, removed = Path(folder), time.time(), []
    if not folder.is_dir():
        return removed
    for path in folder.glob(".*"):
        if not _TEMP_NAME.match(path.name):
            continue
        try:
            if path.is_file() and now - path.stat().st_mtime > older_than_s:
                path.unlink()
                removed.append(path)
        except OSError:  # another process removed or is replacing it: not ours to fight over
            continue
    return removed


def _is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in _FULL:
        return True
    # torch.save reports a failed write as RuntimeError("[enforce fail at inline_container.cc...] unexpected pos")
    return isinstance(exc, RuntimeError) and ("unexpected pos" in str(exc) or "No space left" in str(exc))


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Write ``path`` through a hidden temp file in its folder, renamed over it only on success.

    Yields a binary file. On any exception the temp file is removed and ``path`` is
    left as it was; a full disk raises :class:`DiskFullError` naming the folder.

    Example:
        >>> with atomic_write("out.bin") as f:   # doctest: +SKIP
        ...     f.write(b"data")
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, f"{path} is a folder, so no file can be written there; "
                                              "remove or rename the folder", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent)
    # Opened with "xb" (not mkstemp) so that the umask, not 0600, sets the file's mode.
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        with open(tmp, "xb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if _is_disk_full(exc):
            raise DiskFullError(path.parent, exc) from exc
        raise


def save_checked(obj, path: str | os.PathLike) -> None:
    """``torch.save`` ``obj`` to ``path`` atomically, with a SHA-256 of the payload stored in the file.

    Read it back with :func:`load_checked`, which refuses a file whose bytes changed.

    Example:
        >>> save_checked({"model": model.state_dict()}, "run/last.pt")   # doctest: +SKIP
    """
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    payload = buffer.getbuffer()
    digest = hashlib.sha256(payload).hexdigest().encode("ascii")
    with atomic_write(path) as f:
        f.write(_MAGIC + digest + b"\n")
        f.write(payload)


def load_checked(path: str | os.PathLike, map_location=None):
    """Load a file written by :func:`save_checked`, after checking its SHA-256 (``weights_only=True``).

    Raises:
        FileNotFoundError: there is no file at ``path``.
        CorruptFileError: the file is truncated, altered, or was not written by :func:`save_checked`.

    Example:
        >>> state = load_checked("run/last.pt", map_location="cpu")   # doctest: +SKIP
    """
    path = Path(path)
    data = path.read_bytes()
    header = len(_MAGIC) + _DIGEST_LEN + 1
    if not data.startswith(_MAGIC):
        raise CorruptFileError(
            f"{path} was not written by dlbook (no dlbook checksum header). If it is a plain torch.save file, "
            "such as a state_dict, load it with torch.load(path, weights_only=True); otherwise delete it.", path)
    expected = data[len(_MAGIC):header - 1].decode("ascii", errors="replace")
    actual = hashlib.sha256(memoryview(data)[header:]).hexdigest()
    if actual != expected:
        raise CorruptFileError(
            f"{path} is corrupt: its contents do not match the checksum stored when it was written (truncated, or "
            "changed on disk). Delete it and use an earlier copy, or recreate it.", path)
    try:
        return torch.load(io.BytesIO(memoryview(data)[header:]), map_location=map_location, weights_only=True)
    except Exception as exc:  # verified bytes that still do not unpickle: written by an incompatible version
        raise CorruptFileError(f"{path} passed its checksum but cannot be loaded ({exc}); it was probably written "
                               "by an incompatible version of torch or dlbook. Recreate it.", path) from exc
