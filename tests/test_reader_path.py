"""The reader's path, for every chapter and exercise page: what someone who opens one in Colab gets.

For each notebook, in the smoke budget, under nbval (this is the run of every notebook that ``make test``
does):

- the notebook is a copy in a temporary folder outside the repository that holds only the ``chapters/``
  folder (no ``book/``, no ``benchmarks/``, no checkout), as a reader's download or Colab has;
- it runs in a fresh virtual environment, which has no ``dlbook``: its own Colab install cell installs it,
  as in Colab (an IPython start-up file makes ``google.colab`` importable, and the cell's source is the
  wheel built from this checkout instead of the git URL);
- its data comes through the download path: ``DLBOOK_MIRROR`` points at a local HTTP server holding the
  offline copies, the cache starts empty, ``DLBOOK_DATA`` is unset, and Debian's dataset folder is hidden
  (``DLBOOK_SYSTEM_DATA=``), as Colab has none;
- a last cell checks that the ``dlbook`` it used is the one the install cell put into the fresh environment.

What is shared rather than reinstalled: the pinned third-party packages of ``requirements.txt``. The fresh
environment sees them through a path file pointing at a folder of links to the build environment's
packages, ``dlbook`` excluded (installing torch again would cost 5.5 GB and minutes per run). The install
cells run pip with ``PIP_NO_INDEX=1``, so a dependency the wheel declares and the pins lack fails the cell,
and ``pip check`` in the fresh environment fails a declared range that the pins do not satisfy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from _http import Quiet, mirror_tree, serving

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import install_cells  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.reader]

CHAPTERS = ROOT / "chapters"
NOTEBOOKS = sorted(p for p in CHAPTERS.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
DATA = Path(os.environ.get("DLBOOK_DATA") or ROOT.parent / "shared" / "data")
FASHION = Path("/usr/share/datasets/fashion-mnist")
# build-environment entries the fresh environment must not see: dlbook itself (its editable install)
NOT_SHARED = ("dlbook", "__editable__")
COLAB = 'import sys, types\nsys.modules.setdefault("google.colab", types.ModuleType("google.colab"))\n'
CHECK_INSTALLED = ("import sys\nimport dlbook\n"
                   "assert dlbook.__file__.startswith(sys.prefix), "
                   "f'dlbook came from {dlbook.__file__}, not the environment the install cell installed into'\n"
                   "print('dlbook from', dlbook.__file__)")


@pytest.fixture(scope="session")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out), str(ROOT)], check=True)
    (path,) = out.glob("dlbook-*.whl")
    return path


def test_installing_the_wheel_keeps_the_preinstalled_torch(wheel, tmp_path):
    """pip's plan for the wheel in an environment that already has torch: install dlbook, nothing else."""
    report = tmp_path / "report.json"
    subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "-q", "--report",
                    str(report), str(wheel)], check=True)
    planned = {item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]}
    assert planned == {"dlbook"}, f"installing dlbook would also install {planned - {'dlbook'}}"


def _pinned_packages(folder: Path) -> Path:
    """Links to every package of the build environment except dlbook (path files are not linked).

    pip is among them: the fresh environment is made without its own, whose bundled setuptools would
    shadow the pinned one (torch 2.14.1 asks for setuptools>=77; ensurepip's is older).
    """
    folder.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if entry.name.startswith(NOT_SHARED) or entry.suffix == ".pth" or entry.name == "__pycache__":
            continue
        (folder / entry.name).symlink_to(entry)
    return folder


class Counted(Quiet):
    """The mirror's handler: remembers every path asked for."""

    asked: list[str] = []

    def do_GET(self):
        Counted.asked.append(self.path)
        super().do_GET()


@pytest.fixture(scope="session")
def reader(wheel, tmp_path_factory):
    if not (DATA / "cifar10-jpeg.tar.xz").is_file() or not (DATA / "sst").is_dir():
        pytest.skip(f"the offline copies are not at {DATA}: set DLBOOK_DATA")
    if not FASHION.is_dir():
        pytest.skip("apt-get install dataset-fashion-mnist (the mirror serves its files)")
    home = tmp_path_factory.mktemp("reader")
    venv = home / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "_pinned.pth").write_text(str(_pinned_packages(home / "pinned")) + "\n")
    startup = home / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-colab.py").write_text(COLAB)
    shutil.copytree(CHAPTERS, home / "chapters", ignore=shutil.ignore_patterns("checkpoints", ".ipynb_checkpoints"))
    for path in (home / "chapters").rglob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        install_cells.refresh(nb, path.name, wheel.as_uri())
        nb.cells.append(nbformat.v4.new_code_cell(CHECK_INSTALLED))
        nbformat.write(nb, path)
    (home / "pytest.ini").write_text("[pytest]\n")
    with serving(mirror_tree(home / "mirror", DATA, FASHION), Counted) as url:
        env = {k: v for k, v in os.environ.items()
               if k not in ("DLBOOK_DATA", "PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
        env.update(DLBOOK_MIRROR=url, DLBOOK_CACHE=str(home / "cache"), DLBOOK_SYSTEM_DATA="",
                   DLBOOK_BUDGET="smoke", IPYTHONDIR=str(home / "ipython"), PIP_NO_INDEX="1",
                   PIP_DISABLE_PIP_VERSION_CHECK="1", VIRTUAL_ENV=str(venv),
                   PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
        yield SimpleNamespace(home=home, python=python, site=site, env=env, ran=[])


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: str(p.relative_to(CHAPTERS).with_suffix("")))
def test_notebook_runs_as_a_reader_would(reader, notebook):
    copy = reader.home / "chapters" / notebook.relative_to(CHAPTERS)
    proc = subprocess.run([str(reader.python), "-m", "pytest", "-c", str(reader.home / "pytest.ini"),
                           "-p", "no:cacheprovider", "--nbval-lax", "--nbval-current-env", "-q", "-x", str(copy)],
                          cwd=copy.parent, env=reader.env, capture_output=True, text=True, timeout=1500)
    reader.ran.append(notebook.name)
    assert proc.returncode == 0, f"{notebook.name} failed on the reader's path:\n{proc.stdout[-8000:]}\n{proc.stderr[-2000:]}"


def test_the_installed_wheel_and_the_data_came_the_readers_way(reader):
    """After the notebooks: the install cells put the wheel into the fresh environment, its declared
    requirements hold there, and every dataset came from the mirror into the empty cache."""
    if len(reader.ran) < len(NOTEBOOKS):
        pytest.skip("run together with every test_notebook_runs_as_a_reader_would")
    (dist,) = reader.site.glob("dlbook-*.dist-info")
    assert json.loads((dist / "direct_url.json").read_text())["url"].endswith(".whl")
    check = subprocess.run([str(reader.python), "-m", "pip", "check"], env=reader.env, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    asked = set(Counted.asked)
    for wanted in ("/cifar10-jpeg.tar.xz", "/sst/stsa.binary.train", "/fashion-mnist/train-images-idx3-ubyte.gz"):
        assert wanted in asked, f"no chapter downloaded {wanted}; asked for: {sorted(asked)}"
        assert (reader.home / "cache" / wanted.lstrip("/")).is_file()
