"""Write the student versions of the exercise notebooks: solutions removed, starters and checks kept.

    python tools/make_student.py                       # every chapters/exercises/*.ipynb
    python tools/make_student.py chapters/exercises/ex3_1_cnn.ipynb --out _build/student

``make student`` runs the first form. Each notebook is written to ``<out>/<its path in the
repository>`` (``_build/student/chapters/exercises/ex3_1_cnn.ipynb``) with:

* every solution removed: the markdown cells ``{solution-start}`` ... ``{solution-end}`` and all
  cells between them (sphinx-exercise's gated form, which folds solution code in the book), and
  any other cell tagged ``solution`` (a ``{solution}`` directive with a written answer);
* the exercise's ``starter`` cell (its skeleton, or the article's code to repair) kept where it
  is, just before where the solution was, and every ``check`` cell kept: the checks print "not
  correct yet" and what to try, they never raise, so the notebook runs from top to bottom;
* all outputs, execution counts and the provenance note of the full-budget run removed, and a
  line under the title saying that this is the student version.

A notebook whose gate is not closed, or whose solution has no starter cell before it, is refused
with an error that names the notebook and the cell.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "_build" / "student"
SOLUTION_TAG, STARTER_TAG, CHECK_TAG = "solution", "starter", "check"
STUDENT_NOTE = ("> **Student version.** The solutions are removed. Write your code in each exercise's starter "
                "cell, run it, then run the check under it: it prints **correct**, or what is wrong and what to try.")


def _tags(cell) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def _opens(cell) -> bool:
    return cell.cell_type == "markdown" and "{solution-start}" in cell.source


def _closes(cell) -> bool:
    return cell.cell_type == "markdown" and "{solution-end}" in cell.source


def solution_cells(nb) -> list:
    """The cells a student version drops: gated solutions (with their gate cells) and cells tagged ``solution``."""
    dropped, inside = [], False
    for cell in nb.cells:
        if _opens(cell):
            inside = True
        if inside or SOLUTION_TAG in _tags(cell):
            dropped.append(cell)
        if _closes(cell):
            inside = False
    return dropped


def make_student(nb, name: str = "notebook"):
    """Return a student copy of the exercise notebook ``nb`` (``name`` is used in error messages).

    Example:
        >>> from nbformat.v4 import new_notebook, new_markdown_cell as m, new_code_cell as c
        >>> nb = new_notebook(cells=[m("# 9.9 Exercises"), c("def f(): raise NotImplementedError",
        ...     metadata={"tags": ["starter"]}), m("```{solution-start} ex\\n```"),
        ...     c("def f(): return 1", metadata={"tags": ["solution"]}), m("```{solution-end}\\n```"),
        ...     c("report(check(f))", metadata={"tags": ["check"]})])
        >>> [cell.source[:20] for cell in make_student(nb).cells]
        ['# 9.9 Exercises', '> **Student version.', 'def f(): raise NotIm', 'report(check(f))']
    """
    out = nbformat.from_dict(nb)  # a deep copy
    kept, inside, opened_at, starter_seen = [], False, None, False
    for index, cell in enumerate(out.cells):
        tags = _tags(cell)
        if "dlbook-provenance" in tags:
            continue
        if _opens(cell):
            if inside:
                raise ValueError(f"{name}: cell {index} opens a solution inside the solution opened at cell {opened_at}")
            if not starter_seen:
                raise ValueError(f"{name}: the solution at cell {index} has no cell tagged '{STARTER_TAG}' before it; "
                                 "add the exercise's skeleton (or the code to repair) as a starter cell")
            inside, opened_at, starter_seen = True, index, False
            continue
        if _closes(cell):
            if not inside:
                raise ValueError(f"{name}: cell {index} closes a solution that was never opened")
            inside = False
            continue
        if inside or SOLUTION_TAG in tags:
            continue
        if STARTER_TAG in tags:
            starter_seen = True
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        kept.append(cell)
    if inside:
        raise ValueError(f"{name}: the solution opened at cell {opened_at} is never closed with {{solution-end}}")
    title = next((i for i, c in enumerate(kept) if c.cell_type == "markdown" and c.source.lstrip().startswith("# ")), -1)
    kept.insert(title + 1, nbformat.v4.new_markdown_cell(STUDENT_NOTE, metadata={"tags": ["student-note"]}))
    out.cells = kept
    out.metadata.pop("dlbook", None)
    return out


def write_student(path: Path, out_dir: Path = DEFAULT_OUT) -> Path:
    """Write the student version of the notebook at ``path`` under ``out_dir``, at its path in the repository."""
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such notebook")
    try:
        relative = path.relative_to(ROOT)
    except ValueError:
        relative = Path(path.name)
    nb = nbformat.read(path, as_version=4)
    student = make_student(nb, name=str(relative))
    target = Path(out_dir) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(student, target)
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the student notebooks")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or sorted((ROOT / "chapters" / "exercises").glob("*.ipynb"))
    if not notebooks:
        raise SystemExit("no exercise notebooks found in chapters/exercises/")
    for path in notebooks:
        target = write_student(path, args.out)
        print(f"{path} -> {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
