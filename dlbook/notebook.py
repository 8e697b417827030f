"""The setup cell of every chapter, and the provenance it leaves behind.

Every chapter's first code cell calls :func:`setup`; it seeds, picks the device,
reads the budget switch and shows all of that. Cells that produce a headline
number call :func:`record`, which shows it and tags it so that
``tools/execute_notebooks.py`` can copy it into the notebook's metadata and
into the "how this page was made" note at the top of the rendered page.

Example:
    >>> run = setup(seed=0)                     # doctest: +SKIP
    >>> record(test_accuracy=0.912)             # doctest: +SKIP
"""

from __future__ import annotations

import os
import platform
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from dlbook import budget as _budget
from dlbook.train.device import default_device, describe_device, seed_everything

RUN_MIME = "application/vnd.dlbook.run+json"
RESULTS_MIME = "application/vnd.dlbook.results+json"
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
        """``full`` or ``smoke`` by this run's budget (see :func:`dlbook.budget.pick`)."""
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


def record(**results) -> None:
    """Show headline results and tag them for the notebook's provenance.

    Values must be JSON-serialisable numbers or strings (tensors of one element are
    converted). Returns nothing, so a ``record(...)`` on a cell's last line shows once.

    Example:
        >>> record(test_accuracy=0.912, epochs=12)  # doctest: +SKIP
    """
    import json

    clean = {}
    for key, value in results.items():
        if hasattr(value, "item"):
            value = value.item()
        try:
            json.dumps(value)
        except TypeError as exc:
            raise TypeError(f"record({key}=...) needs a number or string, got {type(value).__name__}") from exc
        clean[key] = value
    text = "\n".join(f"{k}: {_fmt(v)}" for k, v in clean.items())
    _display(RESULTS_MIME, clean, text)


def _fmt(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _display(mime: str, data: dict, text: str) -> None:
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
    display({"text/plain": text}, raw=True, metadata={mime: data})
