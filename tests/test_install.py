"""A clean install of the package, as Colab would do it: the wheel installs without touching torch,
and a chapter runs from outside the repository against the installed copy."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out), str(ROOT)], check=True)
    (path,) = out.glob("dlbook-*.whl")
    return path


@pytest.mark.slow
def test_installing_the_wheel_keeps_the_preinstalled_torch(wheel, tmp_path):
    """pip's plan for the wheel in an environment that already has torch: install dlbook, nothing else."""
    report = tmp_path / "report.json"
    subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "-q", "--report",
                    str(report), str(wheel)], check=True)
    planned = {item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]}
    assert planned == {"dlbook"}, f"installing dlbook would also install {planned - {'dlbook'}}"


@pytest.mark.slow
def test_chapter_runs_from_outside_the_repository(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True)
    work = tmp_path / "reader"
    work.mkdir()
    nb_path = work / "chapter.ipynb"
    shutil.copy(ROOT / "chapters" / "ch3_1_cnn.ipynb", nb_path)
    nb = nbformat.read(nb_path, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell("import dlbook; print(dlbook.__file__)"))
    env = {"PYTHONPATH": str(site), "DLBOOK_BUDGET": "smoke"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(work)}}).execute()
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    where = nb.cells[0].outputs[0]["text"]
    assert where.startswith(str(site)), f"the notebook imported dlbook from {where}, not the installed wheel"
