"""The setup cell of every chapter, and the provenance it leaves behind.

Every chapter's first code cell calls :func:`setup`; it seeds, picks the device,
reads the budget switch and shows all of that. Cells that produce a headline
number call :func:`record`, which shows it and tags it so that
``tools/execute_notebooks.py`` can copy it into the notebook's metadata and
into the "how this page was made" note at the top of the rendered page.

It also says which code made a page: :func:`code_version` gives the git commit,
whether the working tree was dirty, and :func:`dlbook_sha256`, a hash of the
package's source, which ``tools/execute_notebooks.py`` stores next to the results;
:func:`format_result` turns a recorded key and value into the words the page shows.

Example:
    >>> run = setup(seed=0)                     # doctest: +SKIP
    >>> record(test_accuracy=0.912, train_time_s=41.5,
    ...        labels={"train_time_s": "training time"})  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from dlbook import budget as _budget
from dlbook.train.device import default_device, describe_device, seed_everything

RUN_MIME = "application/vnd.dlbook.run+json"
RESULTS_MIME = "application/vnd.dlbook.results+json"
LABELS_MIME = "application/vnd.dlbook.labels+json"
PACKAGE_DIR = Path(__file__).resolve().parent
# An absolute path of the machine a notebook ran on; none may appear in a committed notebook.
MACHINE_PATH = re.compile(r"(/work/|/root/|/tmp/|/home/[a-z]+/|/Users/)")


@dataclass
class Run:
    """What a notebook runs with: shown in its setup cell, stored in its metadata."""

    budget: str
    seed: int
    device: str
    device_name: str
    threads: int
    data_dir: str | None
    versions: dict = field(default_factory=dict)

    @property
    def smoke(self) -> bool:
        return self.budget == "smoke"

    def pick(self, full, smoke):
        """``full`` or ``smoke`` by this run's budget (``DLBOOK_BUDGET``, read by :func:`dlbook.budget.current`)."""
        return smoke if self.smoke else full

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)


def library_versions() -> dict:
    """Versions of the libraries the book's numbers depend on."""
    import importlib.metadata as md

    versions = {"python": platform.python_version()}
    for name in ("torch", "torchvision", "captum", "numpy", "scikit-learn", "dlbook"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return versions


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def setup(seed: int = 0, device: str | torch.device | None = None, show: bool = True) -> Run:
    """Seed everything, pick the device, read the budget; show and return a :class:`Run`.

    Args:
        seed: seeds Python, NumPy and torch.
        device: force a device; by default CUDA if present, else CPU.
        show: display the run's summary (and tag it for provenance).
    """
    seed_everything(seed)
    dev = torch.device(device) if device is not None else default_device()
    name = describe_device(dev)
    if dev.type == "cpu":
        name = name.replace("CPU (", f"{cpu_model()} CPU (", 1)  # e.g. "AMD EPYC CPU (2 cores, bf16)"
    data = os.environ.get("DLBOOK_DATA")
    run = Run(
        budget=_budget.current(),
        seed=seed,
        device=str(dev),
        device_name=name,
        threads=torch.get_num_threads(),
        data_dir="DLBOOK_DATA" if data else None,  # never an absolute path in outputs
        versions=library_versions(),
    )
    if show:
        _display(
            RUN_MIME,
            asdict(run),
            f"budget={run.budget}  seed={seed}  device={run.device} ({name})  "
            f"torch {run.versions.get('torch')}  threads={run.threads}",
        )
    return run


def record(labels: dict[str, str] | None = None, **results) -> None:
    """Show headline results and tag them for the notebook's provenance.

    Values must be JSON-serialisable numbers or strings (tensors of one element are
    converted). ``labels`` maps a key to the words the page shows for it ("training
    time" for ``train_time_s``); a key without one is shown as its words, with a unit
    suffix (``_s``, ``_min``, ``_ms``, ``_mib``) read as a unit. Returns nothing, so a
    ``record(...)`` on a cell's last line shows once.

    Example:
        >>> record(test_accuracy=0.912, max_T=2048,
        ...        labels={"max_T": "longest sequence T"})  # doctest: +SKIP
    """
    import json

    labels = dict(labels or {})
    unknown = sorted(set(labels) - set(results))
    if unknown:
        raise ValueError(f"record(labels=...) names {unknown}, which are not recorded; label only keys you pass")
    for key, label in labels.items():
        if not isinstance(label, str) or not label.strip():
            raise TypeError(f"record(labels={{{key!r}: ...}}) needs a non-empty string, got {label!r}")
    clean = {}
    for key, value in results.items():
        if hasattr(value, "item"):
            value = value.item()
        try:
            json.dumps(value)
        except TypeError as exc:
            raise TypeError(f"record({key}=...) needs a number or string, got {type(value).__name__}") from exc
        clean[key] = value
    text = "\n".join(format_result(k, v, labels[k]) if k in labels else f"{k}: {_fmt(v)}" for k, v in clean.items())
    _display(RESULTS_MIME, clean, text, extra={LABELS_MIME: labels} if labels else None)


def _fmt(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def format_duration(seconds: float) -> str:
    """``0.213`` -> ``"0.213 s"``; ``190.2`` -> ``"3 min 10 s"``; ``41.1 * 60`` -> ``"41 min 6 s"``; ``4000`` -> ``"1 h 6 min"``.

    Under 10 s three significant digits are kept (a 0.21 s cold start must not read "0 s").
    """
    if seconds < 10:
        return f"{seconds:.3g} s"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def format_value(value, percent: bool = False) -> str:
    """A float as a percentage when ``percent``, else to 4 significant digits; ints with thousands commas.

    Example:
        >>> format_value(0.9116, percent=True), format_value(0.5), format_value(1e-3), format_value(61706)
        ('91.16%', '0.5', '0.001', '61,706')
    """
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if percent:
            return f"{value:.2%}"
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


#: Key endings of values that are a share of a whole, shown as a percentage ("test_accuracy" 0.9116 -> 91.16%).
#: Only these: a dropout of 0.5 or a learning rate of 0.01 is a number, not 50% or 1%.
PERCENT_SUFFIXES = ("accuracy", "accuracy_tta", "_f1", "_rate", "_fraction", "_below_naive")  # _tta: with test-time views


# Unit suffixes of result keys: how the value is shown, and the suffix dropped from the words.
_UNITS = {
    "_s": lambda v: format_duration(v),
    "_min": lambda v: f"{v:,.1f} min",
    "_ms": lambda v: f"{v:,.4g} ms",
    "_mib": lambda v: f"{v:,.4g} MiB",
}


def format_result(key: str, value, label: str | None = None) -> str:
    """The words a page shows for one recorded result: ``"label: value"``.

    Without a label the key's words are used, and a unit suffix becomes the unit. A key ending in
    one of :data:`PERCENT_SUFFIXES` is a share, shown as a percentage; other numbers are shown as they are.

    Example:
        >>> format_result("train_time_min", 41.1)
        'train time: 41.1 min'
        >>> format_result("max_T", 2048, "longest sequence T")
        'longest sequence T: 2,048'
        >>> format_result("test_accuracy", 0.9116)
        'test accuracy: 91.16%'
        >>> format_result("rnn_embedding_dropout", 0.5, "embedding dropout")
        'embedding dropout: 0.5'
    """
    words = label or _words(key, value)
    return f"{words}: {format_recorded(key, value)}"


def _unit(key: str, value):
    """The unit suffix of ``key`` that applies to ``value``, or None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not key.lower().endswith("_per_s"):
        for suffix in _UNITS:  # a rate ("images_per_s") is not a duration
            if key.lower().endswith(suffix):
                return suffix
    return None


def _words(key: str, value) -> str:
    suffix = _unit(key, value)
    return (key[: -len(suffix)] if suffix else key).replace("_", " ")


def format_recorded(key: str, value) -> str:
    """How a page shows one recorded value, by its key: a unit suffix is the unit, a share a percentage.

    The book's pages quote other chapters' results through this (the ``{result}`` role), so a number
    reads the same everywhere.

    Example:
        >>> format_recorded("train_time_s", 106.8), format_recorded("test_accuracy", 0.9112)
        ('1 min 47 s', '91.12%')
        >>> format_recorded("params", 61706), format_recorded("train_images_per_s", 166)
        ('61,706', '166')
    """
    suffix = _unit(key, value)
    if suffix:
        return _UNITS[suffix](value)
    return format_value(value, percent=key.lower().endswith(PERCENT_SUFFIXES))


def repository_file(path: str, start: str | Path = ".") -> Path | None:
    """A file of the book's repository, if the notebook runs inside a checkout of it; else None.

    A chapter opened on its own (in Colab, or downloaded as one file) has no ``book/`` or
    ``benchmarks/`` beside it: where a cell reads such a file it calls this and says what is
    missing instead of failing. The repository is the first folder at or above ``start`` that
    holds ``_toc.yml``.

    Example:
        >>> repository_file("no/such/file.json") is None
        True
    """
    for folder in (Path(start).resolve(), *Path(start).resolve().parents):
        if (folder / "_toc.yml").is_file():
            candidate = folder / path
            return candidate if candidate.exists() else None
    return None


def dlbook_sha256(package_dir: str | Path = PACKAGE_DIR) -> str:
    """SHA-256 of the package's source: every ``**/*.py`` under ``package_dir``, in sorted order.

    Each file contributes its path relative to ``package_dir`` (POSIX form), a NUL, its
    size in bytes, a NUL, then its bytes, so renaming or moving a file changes the hash
    as much as editing it does. Compiled files, data and ``__pycache__`` are ignored.

    Example:
        >>> len(dlbook_sha256())
        64
    """
    root = Path(package_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder; pass the dlbook package folder (the one with __init__.py)")
    digest = hashlib.sha256()
    files = sorted((p.relative_to(root).as_posix(), p) for p in root.rglob("*.py")
                   if "__pycache__" not in p.parts and p.is_file())
    for rel, path in files:
        data = path.read_bytes()
        digest.update(f"{rel}\0{len(data)}\0".encode("utf-8"))
        digest.update(data)
    return digest.hexdigest()


def _git(repo: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def code_version(repo: str | Path = PACKAGE_DIR.parent, package: str = "dlbook") -> dict:
    """Which code a run used: git commit, whether the tree was dirty, and the package's source hash.

    Returns ``{"commit": str | None, "dirty": bool | None, "dirty_paths": [...],
    "dlbook_sha256": str}``: ``commit`` is HEAD's full hash (None outside a git checkout,
    and then ``dirty`` is None too); ``dirty`` is True when ``git status`` lists any
    change, untracked files included; ``dirty_paths`` are the changed paths under
    ``package/``, relative to the repository root.

    Example:
        >>> code_version()["commit"]  # doctest: +SKIP
        'ffe1eaf35a8fd8cbbeb3f3d44ee9648c626a0679'
    """
    repo = Path(repo)
    head = _git(repo, "rev-parse", "--verify", "HEAD")
    status = _git(repo, "status", "--porcelain", "--untracked-files=all") if head else None
    dirty_paths: list[str] = []
    if status is not None:
        for line in status.splitlines():
            path = line[3:].split(" -> ")[-1].strip('"')
            if path.startswith(f"{package}/"):
                dirty_paths.append(path)
    return {
        "commit": head.strip() if head else None,
        "dirty": bool(status.strip()) if status is not None else None,
        "dirty_paths": sorted(dirty_paths),
        "dlbook_sha256": dlbook_sha256(repo / package if (repo / package).is_dir() else PACKAGE_DIR),
    }


def _display(mime: str, data: dict, text: str, extra: dict | None = None) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # plain Python: just print
        print(text)
        return
    if get_ipython() is None:
        print(text)
        return
    # The JSON rides in the output's metadata: renderers show the text, tools/execute_notebooks.py reads the JSON.
    display({"text/plain": text}, raw=True, metadata={mime: data, **(extra or {})})
