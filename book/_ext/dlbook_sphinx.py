"""A small fix the book needs from its Sphinx toolchain (jupyter-book 1.0.4, Sphinx 7.4).

**Inline scripts written twice.** Sphinx 7.4 stores an inline script added
before the HTML builder exists with filename ``''`` and one added after with
``None``, so its de-duplication misses them: sphinx-togglebutton and
sphinx-thebe end up with two copies of their ``<script>`` blocks on every page,
and the second ``const THEBE_JS_URL = ...`` is a console error
("Identifier 'THEBE_JS_URL' has already been declared"). We drop the repeats.
"""

from __future__ import annotations

from sphinx.application import Sphinx


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
    return {"parallel_read_safe": True, "parallel_write_safe": True}
