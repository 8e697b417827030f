"""Write the API reference pages, book/api/*.md: one page per part of dlbook, one section per module.

The pages hold no docstrings, only autodoc directives; Sphinx reads the docstrings from the
package at build time, so the reference cannot drift from the code. Run it after adding a
module (``tests/test_api_pages.py`` fails while a module is missing from the pages):

    python tools/make_api_pages.py
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "book" / "api"

# page: (title, what it holds, modules in reading order; a package's own docstring comes first)
PAGES = {
    "data": ("dlbook.data", "Datasets, their offline and download paths, splits, loaders and batch transforms.",
             ["dlbook.data"]),
    "models": ("dlbook.models", "The book's networks, one family per module, and the conventions they share.",
               ["dlbook.models"]),
    "train": ("dlbook.train", "The Trainer, callbacks, checkpoints, inference, schedules and diagnostics.",
              ["dlbook.train"]),
    "recipes": ("dlbook.recipes", "Every choice behind a chapter's headline run, as data.", ["dlbook.recipes"]),
    "metrics": ("dlbook.metrics and dlbook.calibration", "Classification metrics written from their definitions, "
                "and calibration.", ["dlbook.metrics", "dlbook.calibration"]),
    "interpret": ("dlbook.interpret", "Attributions (Captum), their sanity checks and layer activations.",
                  ["dlbook.interpret"]),
    "behaviour": ("dlbook.behaviour", "Behavioural tests of a text classifier.", ["dlbook.behaviour"]),
    "deploy": ("dlbook.deploy", "Export, quantisation, the service, containers, load tests, monitoring and the "
               "model registry.", ["dlbook.deploy"]),
    "exercises": ("dlbook.exercises", "The automatic checks of the exercises, one module per chapter.",
                  ["dlbook.exercises"]),
    "notebook": ("Notebooks, timing, files and figures", "What every chapter notebook uses around its "
                 "subject: the budget switch and provenance, timing, checked files, plots and widgets.",
                 ["dlbook.notebook", "dlbook.budget", "dlbook.timing", "dlbook.files", "dlbook.viz",
                  "dlbook.widgets"]),
}

# private helpers, documented where they are used
SKIP = {"dlbook.interpret._common"}


def modules_of(name: str) -> list[str]:
    """``name`` and, for a package, its public submodules in alphabetical order."""
    module = importlib.import_module(name)
    names = [name]
    if hasattr(module, "__path__"):
        for info in sorted(pkgutil.iter_modules(module.__path__), key=lambda i: i.name):
            full = f"{name}.{info.name}"
            if not info.name.startswith("_") or full in SKIP:
                names += [] if full in SKIP else modules_of(full)
    return names


def page(slug: str) -> str:
    title, blurb, roots = PAGES[slug]
    lines = [f"# {title}", "", blurb, ""]
    for root in roots:
        for name in modules_of(root):
            package = hasattr(importlib.import_module(name), "__path__")
            lines += [f"## `{name}`", "", "```{eval-rst}", f".. automodule:: {name}", "   :members:",
                      "   :undoc-members:"]
            # a package: only what it defines itself; its modules' members are documented in their sections
            lines += ["   :ignore-module-all:"] if package else ["   :show-inheritance:"]
            lines += ["```", ""]
    return "\n".join(lines)


def index() -> str:
    lines = ["# API reference", "",
             "Every public class and function of the `dlbook` package, from its docstrings, built with the book. "
             "A chapter's first mention of a `dlbook` name links here.", "",
             "```{eval-rst}", ".. automodule:: dlbook", "```", "", "Each part of the package has a page:", ""]
    lines += ["| page | holds |", "|---|---|"]
    lines += [f"| {{doc}}`{title} <{slug}>` | {blurb} |" for slug, (title, blurb, _) in PAGES.items()]
    lines += ["", "Each page documents every module of its part where the module defines it: "
              "`dlbook.train.Trainer`, imported from `dlbook.train`, is documented as "
              "`dlbook.train.trainer.Trainer`.", ""]
    return "\n".join(lines)


def expected_pages() -> dict[Path, str]:
    return {OUT / "index.md": index(), **{OUT / f"{slug}.md": page(slug) for slug in PAGES}}


def main() -> int:
    sys.path.insert(0, str(ROOT))
    OUT.mkdir(parents=True, exist_ok=True)
    for path, text in expected_pages().items():
        path.write_text(text, encoding="utf-8")
        print("wrote", path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
