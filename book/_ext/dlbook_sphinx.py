"""What the book adds to its Sphinx toolchain (jupyter-book 1.0.4, Sphinx 7.4).

**Pinned versions.** ``{pinned-versions}`` (a directive, no arguments) renders ``requirements.txt`` as a
table (package, version, the comment above its pin), so the tools page lists the versions the book was
built with and cannot drift from them.

**Quoted results.** A page that quotes another chapter's number writes
``{result}`ch3_1_cnn:test_accuracy``` and the build puts in the value that chapter's committed run
recorded with ``record()`` (its notebook metadata, ``dlbook.results``), formatted as the chapter shows it
and linked to the chapter. A chapter or key that does not exist is a build warning, so the
warnings-as-errors build fails instead of a page quoting a number no chapter shows.

**Inline scripts written twice.** Sphinx 7.4 stores an inline script added
before the HTML builder exists with filename ``''`` and one added after with
``None``, so its de-duplication misses them: sphinx-togglebutton and
sphinx-thebe end up with two copies of their ``<script>`` blocks on every page,
and the second ``const THEBE_JS_URL = ...`` is a console error
("Identifier 'THEBE_JS_URL' has already been declared"). We drop the repeats.
"""

from __future__ import annotations

import json
from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective, SphinxRole

from dlbook.notebook import format_recorded

logger = logging.getLogger(__name__)
CHAPTERS = "chapters"


def recorded_results(srcdir: str | Path, chapter: str) -> dict:
    """The ``record()`` results in ``chapters/<chapter>.ipynb``'s metadata; {} if it has none."""
    path = Path(srcdir) / CHAPTERS / f"{chapter}.ipynb"
    meta = json.loads(path.read_text(encoding="utf-8")).get("metadata", {}).get("dlbook", {})
    return meta.get("results", {})


class ResultRole(SphinxRole):
    """``{result}`chapter:key``` -> the recorded value, linked to the chapter."""

    def run(self):
        chapter, sep, key = self.text.strip().partition(":")
        if not sep or not chapter or not key:
            return self._fail(f"{{result}}`{self.text}` must read chapter:key, e.g. ch3_1_cnn:test_accuracy")
        path = Path(self.env.srcdir) / CHAPTERS / f"{chapter}.ipynb"
        if not path.exists():
            return self._fail(f"{{result}}`{self.text}`: no chapter notebook {CHAPTERS}/{chapter}.ipynb")
        self.env.note_dependency(str(path))
        results = recorded_results(self.env.srcdir, chapter)
        if key not in results:
            known = ", ".join(sorted(results)) or "none"
            return self._fail(f"{{result}}`{self.text}`: {chapter} recorded no {key!r} (it recorded: {known})")
        ref = addnodes.pending_xref("", refdomain="std", reftype="doc", reftarget=f"/{CHAPTERS}/{chapter}",
                                    refexplicit=True, refwarn=True)
        ref += nodes.inline(text=format_recorded(key, results[key]), classes=["dlbook-result"])
        return [ref], []

    def _fail(self, message: str):
        logger.warning(message, location=self.get_location())
        return [nodes.inline(text=self.text)], []


def pinned_requirements(path: str | Path) -> list[tuple[str, str, str]]:
    """``(package, version, note)`` for each ``name==version`` line; the note is the comment just above it."""
    rows, note = [], []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("#"):
            note.append(line.lstrip("# ").strip())
        elif "==" in line:
            name, _, version = line.partition("==")
            rows.append((name.strip(), version.split(";")[0].strip(), " ".join(note)))
            note = []
        else:
            note = []
    return rows


class PinnedVersions(SphinxDirective):
    """``{pinned-versions}``: the pins of ``requirements.txt`` as a table."""

    def run(self):
        path = Path(self.env.srcdir) / "requirements.txt"
        if not path.exists():
            logger.warning("{pinned-versions}: no requirements.txt at the book's root", location=self.get_location())
            return []
        self.env.note_dependency(str(path))
        rows = pinned_requirements(path)
        table = nodes.table(classes=["dlbook-pins"])
        group = nodes.tgroup(cols=3)
        table += group
        for width in (20, 12, 68):
            group += nodes.colspec(colwidth=width)
        head, body = nodes.thead(), nodes.tbody()
        group += head
        group += body
        for parent, cells in [(head, ("package", "version", "note"))] + [(body, r) for r in rows]:
            row = nodes.row()
            for i, text in enumerate(cells):
                paragraph = nodes.paragraph()
                paragraph += nodes.literal(text=text) if i < 2 and parent is body else nodes.Text(text)
                entry = nodes.entry()
                entry += paragraph
                row += entry
            parent += row
        return [table]


def _dedupe_scripts(app: Sphinx, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen, unique = set(), []
    for js in scripts:
        key = (
            getattr(js, "filename", js) or "",
            getattr(js, "priority", 500),
            tuple(sorted(getattr(js, "attributes", {}).items())),
        )
        if key not in seen:
            seen.add(key)
            unique.append(js)
    context["script_files"] = unique


def setup(app: Sphinx) -> dict:
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    app.add_role("result", ResultRole())
    app.add_directive("pinned-versions", PinnedVersions)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
