"""The committed chapter notebooks are what the book renders: they must come from a clean full-budget run."""

import json
from pathlib import Path

import pytest

from dlbook.notebook import MACHINE_PATH

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "chapters").rglob("*.ipynb"))


def test_there_are_chapters():
    assert NOTEBOOKS, "no chapter notebooks found in chapters/"


@pytest.fixture(params=NOTEBOOKS, ids=lambda p: p.name)
def notebook(request):
    return request.param, json.loads(request.param.read_text(encoding="utf-8"))


def code_cells(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]


def test_executed_in_the_full_budget_with_provenance(notebook):
    path, nb = notebook
    meta = nb["metadata"].get("dlbook")
    assert meta, f"{path.name}: no provenance; run `make notebook NB=chapters/{path.name}`"
    assert meta["budget"] == "full", f"{path.name} was executed in the {meta['budget']} budget, not full"
    for key in ("device_name", "seed", "versions", "wall_time_s", "executed_at", "results"):
        assert key in meta, f"{path.name}: provenance lacks {key}"
    assert meta["results"], f"{path.name}: no headline results recorded with dlbook.notebook.record()"
    note = nb["cells"][1]
    assert "dlbook-provenance" in note["metadata"].get("tags", []), f"{path.name}: provenance note is not the second cell"
    assert "full" in "".join(note["source"])


def test_provenance_names_the_code_version(notebook):
    """Outputs are tied to code: the git commit, whether the tree was dirty, and a hash of the dlbook source."""
    path, nb = notebook
    meta = nb["metadata"].get("dlbook") or {}
    rerun = f"re-run it with `make notebook NB=chapters/{path.name}`"
    assert meta.get("commit"), f"{path.name}: provenance lacks the git commit; {rerun}"
    assert "dirty" in meta, f"{path.name}: provenance does not say whether the tree was dirty; {rerun}"
    sha = meta.get("dlbook_sha256") or ""
    assert len(sha) == 64, f"{path.name}: provenance lacks the dlbook source hash (dlbook_sha256); {rerun}"
    note = "".join(nb["cells"][1]["source"])
    assert meta["commit"][:12] in note and sha[:16] in note, f"{path.name}: the provenance note does not show the code version"
    assert "Mean load during the run" in note, f"{path.name}: the provenance note does not show the machine's load"


def test_first_code_cell_is_the_setup_cell(notebook):
    path, nb = notebook
    assert "setup(" in "".join(code_cells(nb)[0]["source"]), f"{path.name}: first code cell must call setup()"


def test_execution_counts_in_order_and_no_errors(notebook):
    path, nb = notebook
    counts = [c["execution_count"] for c in code_cells(nb)]
    assert None not in counts, f"{path.name}: unexecuted cells"
    assert counts == list(range(1, len(counts) + 1)), f"{path.name}: execution counts {counts} are not 1..N"
    for cell in code_cells(nb):
        tags = cell["metadata"].get("tags", [])
        for out in cell.get("outputs", []):
            if out["output_type"] == "error":
                assert "raises-exception" in tags, f"{path.name}: error {out['ename']} in an untagged cell"
            if out["output_type"] == "stream" and out["name"] == "stderr":
                text = "".join(out["text"])
                assert "Traceback" not in text and "Warning:" not in text, f"{path.name}: warning in output:\n{text[:500]}"


def test_no_paths_of_the_build_machine(notebook):
    path, _ = notebook
    hit = MACHINE_PATH.search(path.read_text(encoding="utf-8"))
    assert hit is None, f"{path.name} contains a machine path: ...{hit.group(0)}..."


def test_recorded_results_appear_in_outputs(notebook):
    """Headline numbers in the metadata are outputs of the notebook, not typed in."""
    path, nb = notebook
    shown = json.dumps([c.get("outputs", []) for c in code_cells(nb)])
    assert "application/vnd.dlbook.results+json" in shown
