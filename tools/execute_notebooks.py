"""Execute chapter notebooks top to bottom in a fresh kernel and record their provenance.

    python tools/execute_notebooks.py chapters/ch3_1_cnn.ipynb [--budget full]

(``make notebook NB=...`` runs this under a CPU lock so full runs never overlap.)

For each notebook it: refreshes the Colab install lines at the top of its setup cell
(``tools/install_cells.py``), clears all outputs, runs every cell in a fresh kernel
with ``DLBOOK_BUDGET`` set, stores into ``metadata.dlbook`` the budget, device,
library versions, wall time, date, the machine's mean load, the peak memory of the kernel (the largest
child process), the code version
(git ``commit``, whether the tree was ``dirty`` and which ``dirty_paths`` under
``dlbook/``, and ``dlbook_sha256``, a hash of the package source, all taken before
the first cell runs) and the headline results each cell passed to
``dlbook.notebook.record``, with their labels; writes a "How this page was made" note as the
second cell; refuses to save a notebook whose outputs contain an absolute path
of this machine; and writes the file atomically.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from dlbook.files import atomic_write  # noqa: E402
from dlbook.notebook import (  # noqa: E402
    LABELS_MIME,
    MACHINE_PATH,
    RESULTS_MIME,
    RUN_MIME,
    code_version,
    format_duration,
    format_result,
)
from install_cells import refresh as refresh_install_lines  # noqa: E402
from install_cells import pip_source, repository  # noqa: E402

PROVENANCE_TAG = "dlbook-provenance"


def collect(nb, mime: str) -> dict:
    found = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            meta = out.get("metadata", {})
            if mime in meta:
                found.update(meta[mime])
    return found


def code_text(meta: dict) -> str:
    """The note's sentence on which code made the page: commit, dirty tree, package hash."""
    sha = meta.get("dlbook_sha256")
    package = f"the `dlbook` source has SHA-256 `{sha[:16]}`" if sha else "the `dlbook` source hash was not recorded"
    commit = meta.get("commit")
    if not commit:
        return f"> Code: not run from a git checkout; {package}."
    if meta.get("dirty"):
        changed = meta.get("dirty_paths") or []
        where = (f"with uncommitted changes to {', '.join(f'`{p}`' for p in changed)}" if changed
                 else "with uncommitted changes outside `dlbook/`")
        return f"> Code: commit `{commit[:12]}` {where}; {package}."
    return f"> Code: commit `{commit[:12]}`, clean tree; {package}."


def load_text(meta: dict) -> str:
    """The note's sentence on the machine's load: always shown, with a warning when the CPU was shared."""
    load, cores = meta.get("mean_load"), meta.get("cpu_count")
    if load is None:
        return "> The machine's load was not sampled during this run."
    text = f"> Mean load during the run: {load:.2f} on {cores} cores"
    if cores is not None and load > cores + 0.5:
        return text + "; other work shared this machine, so its times are longer than on an idle machine."
    return text + "."


def provenance_text(meta: dict) -> str:
    versions = meta["versions"]
    libs = ", ".join(f"{k} {versions[k]}" for k in ("torch", "torchvision", "captum") if k in versions)
    lines = [
        f"> **How this page was made.** Every output below comes from one run of this notebook, top to bottom "
        f"in a fresh kernel, in the **{meta['budget']}** budget: it took **{format_duration(meta['wall_time_s'])}** "
        f"on {meta['device_name']}, seed {meta['seed']}, on {meta['executed_at'][:10]} with Python "
        f"{versions.get('python')}, {libs}.",
        load_text(meta),
        code_text(meta),
    ]
    if meta["results"]:
        labels = meta.get("labels", {})
        shown = "; ".join(format_result(k, v, labels.get(k)) for k, v in meta["results"].items())
        lines.append(f"> Headline results: {shown}.")
    lines.append("> Re-run it yourself: the first code cell shows the budget switch (`DLBOOK_BUDGET=full|smoke`).")
    return "\n>\n".join(lines)


class Load:
    """Samples the 1-minute load average in a background thread, to say whether the run had the machine alone."""

    def __init__(self, every: float = 15.0):
        import threading

        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)
        self._thread.start()

    def _run(self, every: float) -> None:
        while not self._stop.wait(every):
            self.samples.append(os.getloadavg()[0])

    def mean(self) -> float | None:
        self._stop.set()
        self.samples.append(os.getloadavg()[0])  # a last sample, so even a short run has one
        return round(sum(self.samples) / len(self.samples), 2) if self.samples else None


def execute(path: Path, budget: str, timeout: int) -> dict:
    nb = nbformat.read(path, as_version=4)
    refresh_install_lines(nb, path.name, pip_source(*repository()))  # the Colab lines, current with _config.yml
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    os.environ["DLBOOK_BUDGET"] = budget
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    # OpenMP threads that sleep instead of spinning while they wait: on a shared 2-core machine, spinning
    # threads of several processes slowed LeNet-5's training step 15-fold (510 vs 33 ms a batch, measured).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    version = code_version(ROOT)  # before any cell runs: the code this run imports
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(path.parent)}})
    tic = time.perf_counter()
    load = Load()
    client.execute()
    wall = time.perf_counter() - tic
    # the kernel has exited: the largest resident set of any finished child process, the kernel among them
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    run = collect(nb, RUN_MIME)
    if not run:
        raise SystemExit(f"{path}: no setup cell output; its first code cell must call dlbook.notebook.setup()")
    meta = {
        "budget": run["budget"], "seed": run["seed"], "device": run["device"], "device_name": run["device_name"],
        "threads": run["threads"], "versions": run["versions"], "wall_time_s": round(wall, 1),
        "executed_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "results": collect(nb, RESULTS_MIME), "labels": collect(nb, LABELS_MIME),
        "mean_load": load.mean(), "cpu_count": os.cpu_count(), "peak_memory_mib": round(peak_mib),
        **version,
    }
    nb.metadata["dlbook"] = meta
    insert_note(nb)
    write_checked(nb, path)
    return meta


def insert_note(nb) -> None:
    """(Re)write the provenance note, the notebook's second cell, from ``metadata.dlbook``."""
    nb.cells = [c for c in nb.cells if PROVENANCE_TAG not in c.get("metadata", {}).get("tags", [])]
    note = nbformat.v4.new_markdown_cell(provenance_text(nb.metadata["dlbook"]), metadata={"tags": [PROVENANCE_TAG]})
    nb.cells.insert(1, note)


def refresh_note(path: Path) -> None:
    """Rewrite only the note of an executed notebook (after a change to its wording), without running it."""
    nb = nbformat.read(path, as_version=4)
    if "dlbook" not in nb.metadata:
        raise SystemExit(f"{path}: never executed with provenance; run it first")
    insert_note(nb)
    write_checked(nb, path)


def write_checked(nb, path: Path) -> None:
    """Write atomically, refusing outputs that contain a path of this machine."""
    text = nbformat.writes(nb)
    hit = MACHINE_PATH.search(text)
    if hit:
        context = text[max(0, hit.start() - 120): hit.end() + 80].replace("\\n", "\n")
        raise SystemExit(f"{path}: outputs contain a path of this machine ({hit.group(0)}...):\n{context}\n"
                         "Silence or rewrite the warning or print that shows it, then run again.")
    with atomic_write(path) as f:
        f.write(text.encode("utf-8"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--budget", default="full", choices=["full", "smoke"])
    parser.add_argument("--timeout", type=int, default=3 * 3600, help="seconds per cell")
    parser.add_argument("--refresh-note", action="store_true", help="only rewrite the provenance note")
    args = parser.parse_args(argv)
    for path in args.notebooks:
        if args.refresh_note:
            refresh_note(path)
            continue
        print(f"executing {path} ({args.budget} budget) ...", flush=True)
        meta = execute(path, args.budget, args.timeout)
        print(f"  done in {format_duration(meta['wall_time_s'])}; results: {meta['results']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
