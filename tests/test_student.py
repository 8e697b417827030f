"""The exercise notebooks and their student versions (``make student``, tools/make_student.py).

* no solution text leaks into a student notebook;
* a student notebook keeps every starter and check cell, and runs from top to bottom with each
  check saying "not correct yet" (the checks print, they never raise);
* the committed exercise notebooks come from a full-budget run with provenance, and there every
  check accepts the notebook's own (reference) solution.
"""

import json
import os
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from make_student import main as make_student_main  # noqa: E402
from make_student import make_student, solution_cells  # noqa: E402

from dlbook.exercises import CORRECT, NOT_YET  # noqa: E402
from dlbook.notebook import MACHINE_PATH  # noqa: E402

NOTEBOOKS = sorted((ROOT / "chapters" / "exercises").glob("*.ipynb"))


def test_there_are_exercise_notebooks():
    assert len(NOTEBOOKS) >= 4, f"expected the exercise notebooks in chapters/exercises/, found {NOTEBOOKS}"


@pytest.fixture(params=NOTEBOOKS, ids=lambda p: p.name)
def notebook(request):
    return request.param, nbformat.read(request.param, as_version=4)


def tagged(nb, tag):
    return [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]


def test_every_exercise_has_a_starter_a_gated_solution_and_a_check(notebook):
    path, nb = notebook
    gates = [c for c in nb.cells if c.cell_type == "markdown" and "{solution-start}" in c.source]
    assert len(gates) >= 2, f"{path.name}: fewer than two coding exercises with a gated solution"
    assert len(tagged(nb, "starter")) == len(gates) == len(tagged(nb, "check")), (
        f"{path.name}: {len(tagged(nb, 'starter'))} starters, {len(gates)} solutions, {len(tagged(nb, 'check'))} checks")
    assert all(":class: dropdown" in g.source for g in gates), f"{path.name}: a solution is not folded (:class: dropdown)"
    assert tagged(nb, "quiz"), f"{path.name}: no concept quiz (a code cell tagged 'quiz')"
    assert "setup(" in next(c.source for c in nb.cells if c.cell_type == "code"), f"{path.name}: first code cell must call setup()"


def test_student_version_has_no_solution_text(notebook):
    path, nb = notebook
    student = make_student(nb, path.name)
    text = json.dumps([c.source for c in student.cells])
    elsewhere = {line.strip() for c in nb.cells if c not in solution_cells(nb) for line in c.source.splitlines()}
    leaked = [line.strip() for c in solution_cells(nb) for line in c.source.splitlines()
              if len(line.strip()) >= 12 and line.strip() not in elsewhere and json.dumps(line.strip())[1:-1] in text]
    assert not leaked, f"{path.name}: solution lines in the student version: {leaked[:5]}"
    assert "{solution" not in text, f"{path.name}: a solution directive is left in the student version"
    assert len(tagged(student, "starter")) == len(tagged(nb, "starter"))
    assert len(tagged(student, "check")) == len(tagged(nb, "check"))
    assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code"), "outputs are not cleared"
    assert "dlbook" not in student.metadata and not tagged(student, "dlbook-provenance")


def test_make_student_refuses_broken_gates():
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    start, end = new_markdown_cell("```{solution-start} ex\n```"), new_markdown_cell("```{solution-end}\n```")
    starter = new_code_cell("def f(): raise NotImplementedError", metadata={"tags": ["starter"]})
    with pytest.raises(ValueError, match="never closed"):
        make_student(new_notebook(cells=[starter, start, new_code_cell("x = 1")]), "nb")
    with pytest.raises(ValueError, match="no cell tagged 'starter'"):
        make_student(new_notebook(cells=[start, new_code_cell("x = 1"), end]), "nb")
    with pytest.raises(ValueError, match="never opened"):
        make_student(new_notebook(cells=[end]), "nb")


def test_make_student_writes_each_notebook_at_its_path(tmp_path):
    assert make_student_main(["--out", str(tmp_path)]) == 0
    for path in NOTEBOOKS:
        assert (tmp_path / path.relative_to(ROOT)).is_file()


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_student_notebook_runs_and_every_check_says_not_yet(path, tmp_path):
    """Executed in the smoke budget: no cell raises, and each check reports what is missing."""
    from nbclient import NotebookClient

    student = make_student(nbformat.read(path, as_version=4), path.name)
    env = {"DLBOOK_BUDGET": os.environ.get("DLBOOK_BUDGET", "smoke")}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        NotebookClient(student, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    for cell in tagged(student, "check"):
        printed = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        assert NOT_YET in printed, f"{path.name}: a check did not report 'not correct yet':\n{cell.source}\n{printed}"


def test_committed_notebook_is_a_full_run_whose_solutions_pass_every_check(notebook):
    path, nb = notebook
    rerun = f"run `make notebook NB=chapters/exercises/{path.name}`"
    meta = nb.metadata.get("dlbook")
    assert meta and meta.get("budget") == "full", f"{path.name}: not executed in the full budget with provenance; {rerun}"
    assert meta.get("commit") and len(meta.get("dlbook_sha256") or "") == 64, f"{path.name}: no code version; {rerun}"
    assert "dlbook-provenance" in nb.cells[1].metadata.get("tags", []), f"{path.name}: provenance note is not the second cell"
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    assert counts == list(range(1, len(counts) + 1)), f"{path.name}: execution counts {counts}; {rerun}"
    for cell in tagged(nb, "check"):
        printed = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        assert printed.strip().endswith(f": {CORRECT}"), f"{path.name}: the solution fails its check:\n{printed}"
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out.output_type != "error", f"{path.name}: error output {out.get('ename')}"
    assert MACHINE_PATH.search(path.read_text(encoding="utf-8")) is None, f"{path.name}: contains a machine path"
