"""The Colab install lines at the top of every chapter's setup cell, written from ``_config.yml``.

    python tools/install_cells.py            # write or refresh them in every chapter notebook
    python tools/install_cells.py --check    # exit 1 naming each notebook whose lines are missing or stale

In Colab the lines install ``dlbook`` with the extras the chapter imports, from the repository that
``_config.yml`` names (``repository.url`` and ``repository.branch``: the same setting the page's Colab
button is built from). Anywhere else they do nothing, so a local run is unchanged. A publisher who moves
the book sets the URL once in ``_config.yml`` and runs this script; ``tools/execute_notebooks.py`` runs it
too before each full-budget run, and a test fails while a notebook is stale.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
BEGIN = "# --- Colab only: install dlbook (written by tools/install_cells.py from _config.yml; do not edit) ---"
END = "# --- end of the Colab install ---"

# What a chapter imports -> the dlbook extra (pyproject.toml) that provides it.
EXTRAS_BY_MODULE = {
    "dlbook.deploy": "deploy",
    "dlbook.models.pretrained": "nlp",
    "transformers": "nlp",
    "sentence_transformers": "nlp",
    "optuna": "practice",
    "skimage": "practice",
    "vega_datasets": "practice",
    "statsmodels": "series",
    "jupyterquiz": "teach",
    "dlbook.exercises": "teach",
}
_IMPORT = re.compile(r"^\s*(?:from|import)\s+([\w.]+)", re.MULTILINE)


def repository(config: Path = ROOT / "_config.yml") -> tuple[str, str]:
    """``(url, branch)`` of the book's repository, from ``_config.yml``."""
    settings = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    repo = settings.get("repository") or {}
    url, branch = repo.get("url"), repo.get("branch", "main")
    if not url or not str(url).startswith("https://"):
        raise SystemExit(f"{config}: set repository.url to the book's https:// git URL (got {url!r})")
    return str(url).rstrip("/"), str(branch)


def extras(nb) -> list[str]:
    """The extras a notebook needs, from the modules its code cells import."""
    found = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for module in _IMPORT.findall(cell.source):
            for prefix, extra in EXTRAS_BY_MODULE.items():
                if module == prefix or module.startswith(prefix + "."):
                    found.add(extra)
    return sorted(found)


def pip_source(url: str, branch: str) -> str:
    """Where pip installs ``dlbook`` from: the repository's branch (``git+<url>@<branch>``)."""
    return f"git+{url}@{branch}"


def install_block(source: str, needed: list[str]) -> str:
    """The lines that go at the top of the setup cell; ``source`` is what pip installs from (:func:`pip_source`,
    or a wheel's ``file://`` URL in the reader's-path test)."""
    spec = f"dlbook[{','.join(needed)}]" if needed else "dlbook"
    return "\n".join([
        BEGIN,
        "import sys",
        'if "google.colab" in sys.modules:',
        "    import subprocess",
        f'    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "{spec} @ {source}"], check=True)',
        END,
    ])


def _without_block(source: str) -> str:
    if BEGIN not in source:
        return source
    head, _, rest = source.partition(BEGIN)
    _, found, tail = rest.partition(END)
    if not found:
        raise SystemExit(f"a setup cell has {BEGIN!r} without {END!r}; delete the broken lines and run again")
    return head + tail.lstrip("\n")


def setup_cell(nb, name: str):
    cells = [c for c in nb.cells if c.cell_type == "code"]
    if not cells or "setup(" not in cells[0].source:
        raise SystemExit(f"{name}: the first code cell must call dlbook.notebook.setup()")
    return cells[0]


def refresh(nb, name: str, source: str) -> bool:
    """Write install lines from ``source`` (:func:`pip_source`) into ``nb``'s setup cell; True if it changed."""
    cell = setup_cell(nb, name)
    new = install_block(source, extras(nb)) + "\n" + _without_block(cell.source)
    changed = new != cell.source
    cell.source = new
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook under chapters/")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a notebook is stale")
    args = parser.parse_args(argv)
    source = pip_source(*repository())
    stale = []
    for path in args.notebooks or sorted((ROOT / "chapters").rglob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        if refresh(nb, path.name, source):
            stale.append(path.name)
            if not args.check:
                nbformat.write(nb, path)
    if args.check and stale:
        print("stale or missing Colab install lines in: " + ", ".join(stale) +
              "; run `python tools/install_cells.py`", file=sys.stderr)
        return 1
    print(("would change: " if args.check else "changed: ") + (", ".join(stale) or "nothing"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
