"""The book builds with warnings as errors, and every page works in a browser, offline.

The build runs once per session (``jupyter-book build . --all -W -n --keep-going``
into ``_build/html``); set ``DLBOOK_BOOK_BUILT=1`` to reuse a build that the
Makefile has just made. Then headless Chromium (Debian's ``chromium`` and
``chromium-driver``) opens every page of the table of contents over a local HTTP
server, with every host name except 127.0.0.1 unresolvable, so that the test sees
what a reader without internet sees, and checks:

- no errors in the browser console;
- every ``<img>`` loaded;
- every internal link points at a file of the build, and at an existing anchor;
- every piece of math was typeset by MathJax (no raw ``\\(x\\)`` left);
- no request left the machine (the page loads nothing from a CDN);
- on pages with saved widget state, the embed manager loaded and drew the widgets.

Full-page screenshots of the intro, chapter 3.1 and project 4.1 go to ``tests/artifacts/``.
"""

from __future__ import annotations

import functools
import html.parser
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import pytest
from _http import serving

pytestmark = pytest.mark.book

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = os.environ.get("DLBOOK_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("DLBOOK_CHROMEDRIVER", "/usr/bin/chromedriver")
SCREENSHOTS = {"book/intro": "intro.png", "chapters/ch3_1_cnn": "ch3_1_cnn.png",
               "chapters/ch4_1_cifar10_vgg": "ch4_1_cifar10_vgg.png"}
PAGE_TIMEOUT_S = 20


def toc_pages() -> list[str]:
    """Docnames listed in _toc.yml (root first), read without a YAML dependency."""
    text = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    pages = re.findall(r"^root:\s*(\S+)", text, flags=re.M)
    pages += re.findall(r"^\s*-?\s*file:\s*(\S+)", text, flags=re.M)
    return [p.removesuffix(".md").removesuffix(".ipynb") for p in pages]


PAGES = toc_pages() + ["genindex", "search"]


# --------------------------------------------------------------------------- build


@pytest.fixture(scope="session")
def built_book() -> Path:
    """Build the book once per session (or reuse it when DLBOOK_BOOK_BUILT=1)."""
    if os.environ.get("DLBOOK_BOOK_BUILT") == "1" and (HTML / "index.html").exists():
        return HTML
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", ".", "--all",
           "--warningiserror", "--nitpick", "--keep-going"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    log = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)  # no ANSI colours
    if proc.returncode != 0 or not (HTML / "index.html").exists():
        problems = [line for line in log.splitlines() if re.search(r"WARNING|ERROR|Exception|Error", line)]
        pytest.fail(
            f"`{' '.join(cmd[1:])}` failed (exit {proc.returncode}).\n"
            + ("Warnings and errors:\n" + "\n".join(problems[:60]) + "\n\n" if problems else "")
            + "Last lines of the Sphinx log:\n" + "\n".join(log.splitlines()[-40:]),
            pytrace=False,
        )
    return HTML


def test_book_builds_without_warnings(built_book):
    assert (built_book / "index.html").exists()
    for page in PAGES:
        assert (built_book / f"{page}.html").exists(), f"{page}.html was not built"


def test_every_built_page_is_in_the_toc(built_book):
    """No orphan pages: only_build_toc_files keeps stray notebooks out of the book."""
    skip = {"index", "genindex", "py-modindex", "search"}   # Sphinx's own index pages (autodoc adds the module index)
    built = {
        p.relative_to(built_book).with_suffix("").as_posix()
        for p in built_book.rglob("*.html")
        if not p.relative_to(built_book).parts[0].startswith("_")
    }
    assert built - skip == set(toc_pages())


class _Loads(html.parser.HTMLParser):
    """URLs a page loads by itself: script src, stylesheet/preload/icon link href, img src."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("script", "img", "iframe") and a.get("src"):
            self.urls.append(a["src"])
        elif tag == "link" and a.get("href") and set((a.get("rel") or "").split()) & {
                "stylesheet", "preload", "modulepreload", "prefetch", "icon"}:
            self.urls.append(a["href"])


def test_offline_assets_are_served_by_the_book(built_book):
    """MathJax, require.js and the widget manager are files of the book, not CDN URLs."""
    static = built_book / "_static"
    assert (static / "mathjax" / "tex-chtml.js").is_file()
    assert (static / "vendor" / "requirejs-2.3.6" / "require.js").is_file()
    assert (static / "vendor" / "html-manager-1.0.6" / "embed-amd.js").is_file()
    for page in PAGES:
        parser = _Loads()
        parser.feed((built_book / f"{page}.html").read_text(encoding="utf-8"))
        remote = [u for u in parser.urls if re.match(r"(https?:)?//", u)]
        assert not remote, f"{page}.html loads {remote}"


# --------------------------------------------------------------------------- browser


@pytest.fixture(scope="session")
def server(built_book):
    """Serve _build/html on 127.0.0.1, as a classroom server (or `python -m http.server`) would."""
    with serving(built_book) as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium that cannot reach any host but 127.0.0.1."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            pytest.skip(f"{path} not found: apt-get install chromium chromium-driver")
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager download a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="dlbook-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--no-first-run", "--disable-component-update",
        "--disable-sync", "--disable-extensions", "--disable-default-apps",
        "--window-size=1280,900", f"--user-data-dir={profile}",
        # a classroom without internet: every other host fails to resolve
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(PAGE_TIMEOUT_S)
    driver.set_script_timeout(PAGE_TIMEOUT_S)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


class _Anchors(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("id", "name") and value:
                self.ids.add(value)


@functools.lru_cache(maxsize=None)
def anchors_of(path: Path) -> frozenset[str]:
    parser = _Anchors()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return frozenset(parser.ids)


WAIT_FOR_PAGE_JS = """
const done = arguments[arguments.length - 1];
const deadline = Date.now() + arguments[0];
async function settle() {
  // MathJax 3 typesets after load; wait for it.
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    try { await MathJax.startup.promise; } catch (e) { return done('MathJax failed: ' + e); }
  }
  // Widgets: the embed manager replaces each widget-view script with a rendered view.
  const views = document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]').length;
  while (views && Date.now() < deadline
         && document.querySelectorAll('.jupyter-widgets, .widget-subarea .lm-Widget').length == 0) {
    await new Promise(r => setTimeout(r, 100));
  }
  // Then until no new resource has been requested for 300 ms.
  let n = -1;
  while (Date.now() < deadline && n != performance.getEntriesByType('resource').length) {
    n = performance.getEntriesByType('resource').length;
    await new Promise(r => setTimeout(r, 300));
  }
  done(null);
}
settle();
"""

INSPECT_JS = """
const imgs = Array.from(document.images).map(i => ({
  src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0}));
// an <a> inside an inline SVG has an SVGAnimatedString href: resolve its value against the page
const links = Array.from(document.querySelectorAll('a[href]')).map(
  a => typeof a.href === 'string' ? a.href : new URL(a.getAttribute('href'), document.baseURI).href);
const math = Array.from(document.querySelectorAll('.math'));
return {
  url: location.href,
  images: imgs,
  links: links,
  math: math.length,
  math_unrendered: math.filter(m => !m.querySelector('mjx-container'))
                       .map(m => m.textContent.slice(0, 60)),
  mjx: document.querySelectorAll('mjx-container').length,
  raw_tex: /\\\\\\(|\\\\\\[/.test(Array.from(document.querySelectorAll('article p, article li, article td'))
                                 .map(e => e.textContent).join(' ')),
  widget_state: document.querySelectorAll('script[type="application/vnd.jupyter.widget-state+json"]').length,
  widget_views: document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]').length,
  widgets_drawn: document.querySelectorAll('.jupyter-widgets').length,
  requirejs: typeof window.requirejs === 'function',
  resources: performance.getEntriesByType('resource').map(e => e.name),
};
"""


def requested_urls(driver) -> list[str]:
    """Every URL the browser asked for since the last call (CDP network events)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def is_local(url: str) -> bool:
    """False for anything fetched over the network from a host other than 127.0.0.1.

    (data:, blob: and the browser's own chrome:// pages are not network requests.)
    """
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https", "ws", "wss", "ftp") and not url.startswith("//"):
        return True
    return parsed.hostname == "127.0.0.1"


def full_page_screenshot(driver, path: Path, width: int = 1280) -> None:
    """Screenshot of the whole page, laid out as in a window as tall as the page."""
    height = driver.execute_script(
        "return Math.max(document.documentElement.scrollHeight, document.body.scrollHeight)")
    driver.set_window_size(width, min(int(height) + 200, 12000))
    time.sleep(0.5)  # let the theme re-layout (sticky sidebars, lazy images)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        driver.save_screenshot(str(path))
    finally:
        driver.set_window_size(width, 900)


def open_page(driver, server: str, page: str) -> dict:
    driver.get_log("browser"), driver.get_log("performance")  # drop the previous page's entries
    driver.get(f"{server}/{page}.html")
    error = driver.execute_async_script(WAIT_FOR_PAGE_JS, PAGE_TIMEOUT_S * 1000 - 2000)
    info = driver.execute_script(INSPECT_JS)
    info["settle_error"] = error
    info["console"] = driver.get_log("browser")
    info["requests"] = requested_urls(driver)
    return info


def check_link(built_book: Path, server: str, page_url: str, href: str) -> str | None:
    """None if ``href`` (absolute, as the browser resolved it) resolves inside the build."""
    parts = urllib.parse.urlsplit(href)
    if parts.scheme not in ("http", "https") or not href.startswith(server + "/"):
        return None  # external link or mailto: not ours to check (and not loaded)
    target = built_book / urllib.parse.unquote(parts.path).lstrip("/")
    if target.is_dir():
        target = target / "index.html"
    if not target.is_file():
        return f"{href} -> missing file {target.relative_to(built_book)}"
    fragment = urllib.parse.unquote(parts.fragment)
    if fragment and target.suffix == ".html" and fragment not in anchors_of(target):
        return f"{href} -> no anchor #{fragment} in {target.relative_to(built_book)}"
    return None


@pytest.mark.parametrize("page", PAGES)
def test_page_in_browser(page, built_book, server, browser):
    info = open_page(browser, server, page)
    problems = []

    if info["settle_error"]:
        problems.append(info["settle_error"])
    errors = [e["message"] for e in info["console"] if e["level"] == "SEVERE"]
    problems += [f"console error: {m}" for m in errors]
    problems += [f"image not loaded: {i['src']}" for i in info["images"] if not i["ok"]]
    for href in sorted(set(info["links"])):
        bad = check_link(built_book, server, info["url"], href)
        if bad:
            problems.append(f"broken link: {bad}")
    remote = sorted({u for u in info["requests"] + info["resources"] if not is_local(u)})
    problems += [f"remote request: {u}" for u in remote]
    if info["math"]:
        if info["math_unrendered"]:
            problems.append(f"math not typeset by MathJax: {info['math_unrendered'][:5]}")
        if not info["mjx"]:
            problems.append("page has math but no mjx-container")
    if info["raw_tex"]:
        problems.append("raw TeX delimiters \\( or \\[ left in the text")
    if info["widget_state"]:
        if not info["requirejs"]:
            problems.append("widget state saved but require.js did not load")
        embed = [u for u in info["resources"] if u.endswith("embed-amd.js") or "embed-amd.js?" in u]
        if not embed:
            problems.append("widget state saved but embed-amd.js was not loaded")
        if info["widget_views"] and not info["widgets_drawn"]:
            problems.append("widget views present but no widget was drawn")

    if page in SCREENSHOTS:
        full_page_screenshot(browser, ARTIFACTS / SCREENSHOTS[page])

    assert not problems, f"{page}.html:\n  " + "\n  ".join(problems)


def test_browser_checks_are_not_vacuous(built_book, server, browser):
    """The checks above see real math, a real figure and, once a chapter has them, real widgets."""
    info = open_page(browser, server, "book/notation")
    assert info["math"] >= 5 and info["mjx"] >= 5, f"notation: {info['math']} math elements, {info['mjx']} typeset"
    info = open_page(browser, server, "book/intro")
    assert any(i["ok"] and i["src"].endswith(".svg") for i in info["images"]), info["images"]
    for page in PAGES:
        if "application/vnd.jupyter.widget-state+json" in (built_book / f"{page}.html").read_text(encoding="utf-8"):
            info = open_page(browser, server, page)
            assert info["widgets_drawn"], f"{page}: widget state saved but nothing drawn"
            break


SEARCH_JS = """
const done = arguments[arguments.length - 1];
const start = Date.now();
(function poll() {
  const hits = document.querySelectorAll('#search-results ul.search li');
  const status = document.querySelector('#search-results p.search-summary');
  if (hits.length || (status && /did not match/.test(status.textContent)) || Date.now() - start > 15000) {
    done({hits: hits.length, first: hits.length ? hits[0].textContent.trim().slice(0, 120) : null,
          summary: status ? status.textContent.trim() : null});
  } else { setTimeout(poll, 200); }
})();
"""


def test_search_finds_dropout(built_book, server, browser):
    """The offline search index answers: a search for "dropout" lists pages."""
    browser.get(f"{server}/search.html?q=dropout")
    found = browser.execute_async_script(SEARCH_JS)
    assert found["hits"] >= 2, f"search for 'dropout' found {found}"


# Elements that may be wider than a phone: they scroll inside themselves.
OVERFLOW_JS = """
const width = document.documentElement.clientWidth;
function scrolls(el) {
  for (let e = el; e && e !== document.body; e = e.parentElement) {
    const s = getComputedStyle(e);
    if (['auto', 'scroll', 'hidden'].includes(s.overflowX) || e.tagName === 'PRE' || e.tagName === 'TABLE') return true;
  }
  return false;
}
const wide = [];
for (const el of document.querySelectorAll('body *')) {
  const r = el.getBoundingClientRect();
  if (r.width > 0 && r.right > width + 1 && getComputedStyle(el).visibility !== 'hidden' && !scrolls(el)) {
    wide.push(`${el.tagName.toLowerCase()}.${el.className || ''} right=${Math.round(r.right)}`);
  }
}
return {width: width, page: document.documentElement.scrollWidth, wide: wide.slice(0, 8)};
"""
PHONE_PAGES = {"book/intro": "intro", "chapters/ch2_3_evaluation": "ch2_3_evaluation",
               "chapters/ch4_2_sst_sentiment": "ch4_2_sst_sentiment"}


@pytest.mark.parametrize("page", sorted(PHONE_PAGES))
def test_pages_fit_a_phone_and_are_screenshot(page, built_book, server, browser):
    """At 390 px nothing but code blocks and tables (which scroll) is wider than the screen; screenshots at 390 and 1280 px."""
    name = PHONE_PAGES[page]
    open_page(browser, server, page)
    full_page_screenshot(browser, ARTIFACTS / f"{name}-1280.png", width=1280)
    browser.set_window_size(390, 844)
    try:
        time.sleep(0.5)
        layout = browser.execute_script(OVERFLOW_JS)
        full_page_screenshot(browser, ARTIFACTS / f"{name}-390.png", width=390)
    finally:
        browser.set_window_size(1280, 900)
    assert not layout["wide"], f"{page}.html at {layout['width']} px: wider than the screen: {layout['wide']}"
