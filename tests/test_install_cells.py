"""The Colab install lines: written from _config.yml, current in every chapter, a no-op outside Colab."""

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import install_cells  # noqa: E402

CHAPTERS = sorted((ROOT / "chapters").rglob("*.ipynb"))


def _nb(*sources: str):
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# t")] +
                                    [nbformat.v4.new_code_cell(s) for s in sources])


def test_every_chapter_has_current_install_lines():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "install_cells.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_install_lines_name_the_configured_repository(path):
    url, branch = install_cells.repository()
    setup = install_cells.setup_cell(nbformat.read(path, as_version=4), path.name).source
    assert setup.startswith(install_cells.BEGIN)
    assert f"@ git+{url}@{branch}" in setup


def test_extras_follow_the_imports():
    nb = _nb("from dlbook.notebook import setup\nrun = setup()",
             "from dlbook.deploy.export import export_onnx\nimport optuna\nfrom statsmodels.api import OLS")
    assert install_cells.extras(nb) == ["deploy", "practice", "series"]
    assert install_cells.extras(_nb("from dlbook.notebook import setup\nrun = setup()")) == []


def test_refresh_replaces_old_lines_and_keeps_the_setup_code():
    nb = _nb("from dlbook.notebook import setup\nrun = setup()", "from dlbook.models.pretrained import x")
    assert install_cells.refresh(nb, "t", install_cells.pip_source("https://example.org/a/b", "main"))
    first = nb.cells[1].source
    assert '"dlbook[nlp] @ git+https://example.org/a/b@main"' in first and first.endswith("run = setup()")
    moved = install_cells.pip_source("https://example.org/c/d", "dev")
    assert install_cells.refresh(nb, "t", moved)   # moved: lines rewritten once
    assert nb.cells[1].source.count(install_cells.BEGIN) == 1 and "c/d@dev" in nb.cells[1].source
    assert not install_cells.refresh(nb, "t", moved)


def test_the_lines_do_nothing_outside_colab_and_install_inside(tmp_path):
    block = install_cells.install_block(install_cells.pip_source("https://example.org/a/b", "main"), ["deploy"])
    calls = []
    namespace = {"__name__": "x"}
    exec(block, namespace)                                    # not in Colab: no pip
    fake = type(sys)("google.colab")
    sys.modules["google.colab"] = fake
    try:
        import subprocess as real
        original, real.run = real.run, lambda cmd, check: calls.append(cmd)
        try:
            exec(block, {"__name__": "x"})
        finally:
            real.run = original
    finally:
        del sys.modules["google.colab"]
    assert calls == [[sys.executable, "-m", "pip", "install", "-q", "dlbook[deploy] @ git+https://example.org/a/b@main"]]


def test_a_setup_cell_is_required_and_a_bad_url_refused(tmp_path):
    with pytest.raises(SystemExit, match="first code cell must call"):
        install_cells.refresh(_nb("print(1)"), "t.ipynb", install_cells.pip_source("https://x/y", "main"))
    config = tmp_path / "_config.yml"
    config.write_text("repository:\n  url: <your repository>\n")
    with pytest.raises(SystemExit, match="set repository.url"):
        install_cells.repository(config)
