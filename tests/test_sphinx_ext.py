"""The book's Sphinx extension: the {result} role quotes a chapter's recorded value, or fails the build."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sphinx")
pytestmark = pytest.mark.slow   # each test builds a small Sphinx project in a fresh process (~4 s)

EXT_DIR = Path(__file__).resolve().parents[1] / "book" / "_ext"


def _project(tmp_path: Path, page: str) -> Path:
    src = tmp_path / "src"
    (src / "chapters").mkdir(parents=True)
    (src / "conf.py").write_text(
        f"import sys\nsys.path.insert(0, {str(EXT_DIR)!r})\nextensions = ['dlbook_sphinx']\n"
        "exclude_patterns = ['**.ipynb']\n")
    (src / "index.rst").write_text(f"Index\n=====\n\n{page}\n\n.. toctree::\n\n   chapters/ch9_demo\n")
    (src / "chapters" / "ch9_demo.rst").write_text("Demo\n====\n\nA chapter.\n")
    meta = {"dlbook": {"results": {"test_accuracy": 0.9112, "train_time_s": 106.8, "params": 61706}}}
    (src / "chapters" / "ch9_demo.ipynb").write_text(json.dumps({"cells": [], "metadata": meta,
                                                                 "nbformat": 4, "nbformat_minor": 5}))
    return src


def _build(tmp_path: Path, src: Path) -> tuple[Path, str]:
    """Build in a fresh process (Sphinx registers node classes globally), as the book's build does."""
    out = tmp_path / "html"
    result = subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-q", "-E", str(src), str(out)],
                            capture_output=True, text=True)
    return out, result.stderr


def test_result_role_quotes_the_recorded_value_and_links_the_chapter(tmp_path):
    src = _project(tmp_path, "LeNet reached :result:`ch9_demo:test_accuracy` in :result:`ch9_demo:train_time_s`.")
    out, warnings = _build(tmp_path, src)
    assert warnings == ""
    html = (out / "index.html").read_text()
    assert "91.12%" in html and "1 min 47 s" in html
    assert 'href="chapters/ch9_demo.html"' in html


@pytest.mark.parametrize("text, says", [
    (":result:`ch9_demo:val_accuracy`", "recorded no 'val_accuracy' (it recorded: params, test_accuracy"),
    (":result:`ch0_missing:test_accuracy`", "no chapter notebook chapters/ch0_missing.ipynb"),
    (":result:`ch9_demo`", "must read chapter:key"),
])
def test_result_role_warns_on_what_no_chapter_shows(tmp_path, text, says):
    src = _project(tmp_path, f"Quoted: {text}.")
    _, warnings = _build(tmp_path, src)
    assert says in warnings


def test_pinned_versions_lists_requirements_with_their_notes(tmp_path):
    src = _project(tmp_path, ".. pinned-versions::")
    (src / "requirements.txt").write_text("# the book's pins\n\n# 2.14.1: tested\ntorch==2.14.1\nnumpy==2.4.6\n-e .\n")
    out, warnings = _build(tmp_path, src)
    assert warnings == ""
    html = (out / "index.html").read_text()
    table = html[html.index("<table"):html.index("</table>")]
    assert '<span class="pre">torch</span>' in table and '<span class="pre">2.4.6</span>' in table
    assert "<p>2.14.1: tested</p>" in table          # its own comment; the file's header (before a blank line) is not
    assert "book’s pins" not in table and "book's pins" not in table and table.index("torch") < table.index("numpy")


def test_chapter_needs_reads_each_chapters_provenance_and_code(tmp_path):
    src = _project(tmp_path, ".. chapter-needs::")
    nb = json.loads((src / "chapters" / "ch9_demo.ipynb").read_text())
    nb["metadata"]["dlbook"].update(budget="full", wall_time_s=270.3, mean_load=1.22, peak_memory_mib=2048)
    nb["nbformat_minor"] = 5
    nb["cells"] = [{"id": "a", "cell_type": "markdown", "metadata": {}, "source": "# 9 Demo chapter"},
                   {"id": "b", "cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
                    "source": "from dlbook.deploy.export import export_onnx\nx, y = load_fashion_mnist('train')"}]
    (src / "chapters" / "ch9_demo.ipynb").write_text(json.dumps(nb))
    out, warnings = _build(tmp_path, src)
    assert warnings == ""
    table = (out / "index.html").read_text()
    table = table[table.index("<table"):table.index("</table>")]
    for text in ("9 Demo chapter", "4 min 30 s", "1.2", "2.0 GiB", "Fashion-MNIST", "deploy"):
        assert text in table, text
    assert 'href="chapters/ch9_demo.html"' in table


def test_chapter_needs_warns_about_a_chapter_without_a_full_run(tmp_path):
    src = _project(tmp_path, ".. chapter-needs::")
    _, warnings = _build(tmp_path, src)
    assert "has no full-budget provenance" in warnings


def _api_project(tmp_path: Path, page: str) -> Path:
    src = tmp_path / "src"
    src.mkdir(parents=True)
    (src / "conf.py").write_text(
        f"import sys\nsys.path.insert(0, {str(EXT_DIR)!r})\n"
        "extensions = ['sphinx.ext.autodoc', 'sphinx.ext.napoleon', 'dlbook_sphinx']\n"
        "nitpicky = True\nnitpick_ignore_regex = [('py:.*', '(?!dlbook).*')]\n")
    (src / "index.rst").write_text("Index\n=====\n\n.. toctree::\n\n   api\n   page\n")
    (src / "api.rst").write_text("API\n===\n\n.. automodule:: dlbook.train.optim\n   :members:\n")
    (src / "page.rst").write_text(f"Page\n====\n\n{page}\n")
    return src


def test_reexported_names_resolve_and_first_mentions_link_to_the_reference(tmp_path):
    src = _api_project(tmp_path, "See :func:`dlbook.train.param_groups`. Then ``param_groups()`` and "
                                 "``param_groups`` again, and ``dlbook.train.optim``; "
                                 "``predict`` and ``dlbook.nothing_here`` stay code.")
    out, err = _build(tmp_path, src)
    assert "WARNING" not in err, err
    html = (out / "page.html").read_text()
    # the role's re-exported name is followed; of the two inline mentions only the first is linked
    assert html.count('href="api.html#dlbook.train.optim.param_groups"') == 2
    assert 'href="api.html#module-dlbook.train.optim"' in html
    assert "api.html#dlbook.nothing_here" not in html and "predict</span></code></a>" not in html


def test_a_dlbook_reference_that_leads_nowhere_still_warns(tmp_path):
    src = _api_project(tmp_path, "See :func:`dlbook.train.no_such_function`.")
    _, err = _build(tmp_path, src)
    assert "dlbook.train.no_such_function" in err and "WARNING" in err


def test_pinned_versions_follows_included_requirement_files(tmp_path):
    src = _project(tmp_path, ".. pinned-versions::")
    (src / "requirements-book.txt").write_text("# the book's toolchain\n\n# 1.0.4: tested\njupyter-book==1.0.4\n")
    (src / "requirements.txt").write_text("torch==2.14.1\n# the toolchain, pinned there\n-r requirements-book.txt\n"
                                          "pytest==9.2.0\n")
    out, warnings = _build(tmp_path, src)
    assert warnings == ""
    html = (out / "index.html").read_text()
    table = html[html.index("<table"):html.index("</table>")]
    assert table.index("torch") < table.index("jupyter-book") < table.index("pytest")
    assert "<p>1.0.4: tested</p>" in table


def test_a_class_on_a_mocked_base_keeps_its_own_signature(tmp_path):
    """make book mocks torch: a model class still shows its __init__'s arguments, not the mock's (*args, **kwargs)."""
    src = _project(tmp_path, ".. autoclass:: demo_net.Net")
    (src / "demo_net.py").write_text('import torch\n\n\nclass Net(torch.nn.Module):\n    """A net."""\n\n'
                                     '    def __init__(self, width: int = 3, depth: int = 2):\n'
                                     '        super().__init__()\n')
    (src / "conf.py").write_text((src / "conf.py").read_text().replace(
        "extensions = ['dlbook_sphinx']",
        f"sys.path.insert(0, {str(src)!r})\nextensions = ['dlbook_sphinx', 'sphinx.ext.autodoc']\n"
        "autodoc_mock_imports = ['torch']"))
    out, warnings = _build(tmp_path, src)
    assert warnings == ""
    html = (out / "index.html").read_text()
    assert "width" in html and "depth" in html and "args" not in html
