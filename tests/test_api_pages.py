"""The API reference pages are the ones tools/make_api_pages.py writes, and they cover every public module."""

import pkgutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import make_api_pages  # noqa: E402

import dlbook  # noqa: E402


def test_committed_pages_match_the_generator():
    for path, text in make_api_pages.expected_pages().items():
        assert path.exists() and path.read_text(encoding="utf-8") == text, \
            f"{path.relative_to(ROOT)} is stale: run python tools/make_api_pages.py"


def test_every_public_module_has_a_section():
    pages = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "book" / "api").glob("*.md"))
    public = [m.name for m in pkgutil.walk_packages(dlbook.__path__, "dlbook.")
              if not any(part.startswith("_") for part in m.name.split("."))]
    missing = [name for name in public if f".. automodule:: {name}\n" not in pages]
    assert not missing, f"modules without an API section: {missing}; add them to tools/make_api_pages.py PAGES"


def test_every_page_is_in_the_table_of_contents():
    toc = (ROOT / "_toc.yml").read_text()
    for slug in ["index", *make_api_pages.PAGES]:
        assert f"book/api/{slug}\n" in toc
