"""Browser test of the built book, page by page, as a reader sees it in Chromium: no console
error, equations rendered by the bundled MathJax, every figure loaded and numbered with a caption,
every table numbered with a caption and no wider than the text column, no request leaving the
machine. A full-page screenshot of every page is kept under ``test-artifacts/<build>/``.

Which sites are tested (the test builds nothing itself unless asked to):

* ``quick``: ``$QATLIB_SITE`` if set, else ``_build/quick/_build/html`` (``make book-quick``, which
  ``make test`` runs first); with ``QATLIB_BUILD_SITE=1`` and none found, a quick build into a
  temporary folder (several minutes);
* ``default``: ``_build/html`` (``make book``), when it has been built.

Without a quick site, or without Chromium (Debian's ``chromium`` + ``chromium-driver``), the tests
skip and say why; CI sets ``QATLIB_REQUIRE_SITE=1`` to turn both skips into failures. A missing
default build always skips (it takes ~12 minutes to build; run ``make book`` first).
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("QATLIB_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("QATLIB_CHROMEDRIVER", "/usr/bin/chromedriver")
CHROME_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1280,2200",
)
PAGES = (
    "book/intro.html", "book/intuition.html", "book/theorems.html",
    "book/mnist.html", "book/resnet50.html", "book/beyond.html", "book/bibliography.html",
)
#: Pages whose text has display equations (the others may have inline maths only).
DISPLAY_MATH = {"book/intuition.html", "book/theorems.html", "book/beyond.html"}
#: Pages that must show at least one figure.
FIGURES = {"book/intuition.html", "book/theorems.html", "book/mnist.html", "book/resnet50.html", "book/beyond.html"}


def _unavailable(reason: str) -> None:
    if os.environ.get("QATLIB_REQUIRE_SITE") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def _build_quick_site(tmp: Path) -> Path:
    env = dict(os.environ, QATLIB_PRESET="quick")
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb), "build", str(ROOT), "--path-output", str(tmp), "-W", "-n", "--keep-going"]
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    return tmp / "_build" / "html"


def _quick_site(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    candidates = [Path(p) for p in (os.environ.get("QATLIB_SITE"),) if p]
    candidates.append(ROOT / "_build" / "quick" / "_build" / "html")
    for candidate in candidates:
        if (candidate / PAGES[0]).is_file():
            return candidate
    if os.environ.get("QATLIB_BUILD_SITE") == "1":
        return _build_quick_site(tmp_path_factory.mktemp("site"))
    return None


@pytest.fixture(scope="session", params=["quick", "default"])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A built site: the quick build (required in CI) or the default one (checked when present)."""
    if request.param == "quick":
        found = _quick_site(tmp_path_factory)
        if found is None:
            _unavailable(
                "no quick build of the book found (looked in $QATLIB_SITE, _build/quick/_build/html); build it "
                "with `make book-quick` or set QATLIB_BUILD_SITE=1"
            )
        return found
    default = ROOT / "_build" / "html"
    if not (default / PAGES[0]).is_file():
        pytest.skip("no default build of the book in _build/html; `make book` builds it (~12 min)")
    return default


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="session")
def server(site: Path) -> Iterator[str]:
    """Serve the site on 127.0.0.1 (MathJax loads its components and fonts like on a real host)."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="session")
def browser():
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        _unavailable(
            f"Chromium not found at {CHROMIUM} / {CHROMEDRIVER}; install Debian's `chromium chromium-driver` "
            "(or set QATLIB_CHROMIUM / QATLIB_CHROMEDRIVER)"
        )
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console messages, for get_log
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver, script: str, timeout: float = 60.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: d.execute_script(script))


MATH_READY = """
if (!Array.from(document.scripts).some(s => s.src.includes('mathjax'))) return true;  // a page without maths
const mj = window.MathJax;
if (!mj || !mj.startup || !mj.startup.promise) return false;
if (!window.__qatlibMath) { window.__qatlibMath = 'pending'; mj.startup.promise.then(() => { window.__qatlibMath = 'done'; }); }
return window.__qatlibMath === 'done';
"""

IMAGES_READY = """
return Array.from(document.querySelectorAll('article img')).every(img => img.complete);
"""

PAGE_FACTS = """
const article = document.querySelector('article.bd-article');
const column = article.querySelector('section') || article;
const caption = el => { const c = el.querySelector(':scope > figcaption, :scope > caption');
                        return c ? c.textContent.replace(/\\s+/g, ' ').trim() : ''; };
return {
  math: article.querySelectorAll('mjx-container').length,
  display: article.querySelectorAll('mjx-container[display="true"]').length,
  mathErrors: article.querySelectorAll('mjx-merror').length,
  rawMath: Array.from(article.querySelectorAll('div.math, span.math')).filter(
             e => !e.querySelector('mjx-container') && e.textContent.includes('\\\\')).length,
  figures: Array.from(article.querySelectorAll('img')).map(img => {
             const figure = img.closest('figure');
             return {src: img.getAttribute('src'), width: img.naturalWidth, shown: img.clientWidth,
                     caption: figure ? caption(figure) : ''}; }),
  tables: Array.from(article.querySelectorAll('table')).map(table => {
             const box = table.closest('.pst-scrollable-table-container') || table.parentElement;
             return {caption: caption(table), inDropdown: !!table.closest('details'),
                     width: table.getBoundingClientRect().width, column: column.clientWidth,
                     overflows: box.scrollWidth > box.clientWidth + 1}; }),
  resources: performance.getEntriesByType('resource').map(r => r.name),
  mathjax: Array.from(document.scripts).map(s => s.src).filter(s => s.includes('mathjax')),
};
"""


def _screenshot(browser, path: Path) -> None:
    """A full-page PNG: the window is stretched to the page's height for the shot, then restored."""
    size = browser.get_window_size()
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(size["width"], min(max(height, size["height"]), 16000))
    path.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(path))
    browser.set_window_size(size["width"], size["height"])


@pytest.fixture(scope="session")
def page_facts(site: Path, server: str, browser) -> dict[str, dict]:
    """Load every page once (per build): its console messages, rendered facts and a screenshot."""
    build = "default" if site == ROOT / "_build" / "html" else "quick"
    facts = {}
    for page in PAGES:
        if not (site / page).is_file():
            continue  # a partial build (e.g. one chapter's toc): its tests skip
        browser.get_log("browser")  # drop what earlier pages logged
        browser.get(f"{server}/{page}")
        _wait(browser, MATH_READY)
        _wait(browser, IMAGES_READY)
        found = browser.execute_script(PAGE_FACTS)
        found["console"] = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
        _screenshot(browser, ARTIFACTS / build / f"{Path(page).stem}.png")
        facts[page] = found
    return facts


def _facts(page_facts: dict, page: str) -> dict:
    if page not in page_facts:
        pytest.skip(f"{page} is not in this build")
    return page_facts[page]


@pytest.mark.parametrize("page", PAGES)
def test_page_has_no_console_error(page: str, page_facts: dict) -> None:
    console = _facts(page_facts, page)["console"]
    assert console == [], f"{page} logged errors: {console}"


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_math_offline(page: str, page_facts: dict, server: str) -> None:
    facts = _facts(page_facts, page)
    assert facts["mathErrors"] == 0, f"{facts['mathErrors']} MathJax errors"
    assert facts["rawMath"] == 0, f"{facts['rawMath']} math blocks left as raw TeX"
    if page in DISPLAY_MATH:
        assert facts["display"] > 0, "no display equation rendered"
    if facts["math"]:
        assert facts["mathjax"], "maths rendered without the bundled MathJax?"
    assert all(src.startswith(server) for src in facts["mathjax"]), facts["mathjax"]
    foreign = [name for name in facts["resources"] if not name.startswith(server) and not name.startswith("data:")]
    assert not foreign, f"the page fetched resources from elsewhere: {foreign}"


@pytest.mark.parametrize("page", PAGES)
def test_every_figure_is_loaded_numbered_and_captioned(page: str, page_facts: dict) -> None:
    figures = _facts(page_facts, page)["figures"]
    if page in FIGURES:
        assert figures, f"{page} shows no figure"
    broken = [f["src"] for f in figures if not f["width"]]
    assert not broken, f"figures that did not load: {broken}"
    uncaptioned = [f["src"] for f in figures if not re.match(r"Figure \d+(\.\d+)* \S", f["caption"])]
    assert not uncaptioned, f"images without a numbered caption ('Figure n ...'): {uncaptioned}"


@pytest.mark.parametrize("page", PAGES)
def test_every_table_is_numbered_captioned_and_fits(page: str, page_facts: dict) -> None:
    tables = _facts(page_facts, page)["tables"]
    uncaptioned = [t for t in tables if not t["inDropdown"] and not re.match(r"Table \d+(\.\d+)* \S", t["caption"])]
    assert not uncaptioned, f"{len(uncaptioned)} table(s) without a numbered caption ('Table n ...')"
    wide = [(t["caption"][:40], round(t["width"]), t["column"]) for t in tables if t["overflows"]]
    assert not wide, f"tables wider than the text column (caption, width, column): {wide}"


def test_site_bundles_mathjax(site: Path) -> None:
    """The page references the bundled MathJax, and the bundle (with its fonts) is in the site."""
    html = (site / PAGES[0]).read_text(encoding="utf-8")
    assert "_static/mathjax/tex-chtml.js" in html
    assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file()
    assert any((site / "_static" / "mathjax" / "output" / "chtml" / "fonts").rglob("*.woff*"))


# ------------------------------------------------------------------------- build configuration
def _yaml(path: Path) -> dict:
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_config_is_offline_cached_and_strict() -> None:
    config = _yaml(ROOT / "_config.yml")
    execute = config["execute"]
    assert execute["execute_notebooks"] == "cache"
    assert execute["allow_errors"] is False and execute["raise_on_error"] is True
    assert execute["timeout"] >= 1800
    assert config["only_build_toc_files"] is True
    for pattern in (".venv", "_build", "results/**", "tests/**", "README.md"):
        assert pattern in config["exclude_patterns"]
    extensions = config["sphinx"]["config"]["extensions"]
    assert "sphinx-mathjax-offline" in extensions and "sphinx_thebe" not in extensions
    assert config["sphinx"]["config"]["mathjax_path"] == "mathjax/tex-chtml.js"
    assert config["bibtex_bibfiles"] == ["book/references.bib"]


def test_toc_follows_the_paper_and_every_chapter_exists() -> None:
    toc = _yaml(ROOT / "_toc.yml")
    chapters = [toc["root"]] + [entry["file"] for part in toc["parts"] for entry in part["chapters"]]
    assert chapters == ["book/intro", "book/intuition", "book/theorems", "book/mnist", "book/resnet50", "book/beyond", "book/bibliography"]
    missing = [c for c in chapters if not any((ROOT / f"{c}{ext}").is_file() for ext in (".md", ".ipynb"))]
    assert not missing, f"chapters listed in _toc.yml but absent: {missing}"


def _tiny_book(tmp: Path, markdown: str, code: str) -> Path:
    """A one-chapter book with this repository's _config.yml."""
    jupytext = pytest.importorskip("jupytext")
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    (tmp / "book").mkdir()
    shutil.copy(ROOT / "_config.yml", tmp / "_config.yml")
    for name in ("references.bib", "favicon.svg"):
        shutil.copy(ROOT / "book" / name, tmp / "book" / name)
    (tmp / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: book/chapter\n")
    (tmp / "book" / "intro.md").write_text("# Intro\n\nSee {cite:p}`bengio2013`.\n\n```{bibliography}\n```\n")
    nb = new_notebook(cells=[new_markdown_cell(markdown), new_code_cell(code)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    jupytext.write(nb, tmp / "book" / "chapter.md", fmt="md:myst")  # a chapter as the book's are written
    return tmp


def _build(book: Path) -> subprocess.CompletedProcess:
    jb = Path(sys.executable).with_name("jupyter-book")
    return subprocess.run(
        [str(jb), "build", str(book), "-W", "-n", "--keep-going"], capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "markdown, code, needle",
    [
        ("# Chapter", 'raise RuntimeError("boom")', "boom"),
        ("# Chapter\n\nSee {numref}`fig-nowhere`.", "1 + 1", "fig-nowhere"),
    ],
    ids=["notebook-error", "broken-reference"],
)
def test_build_fails_on_notebook_error_or_broken_reference(tmp_path: Path, markdown: str, code: str, needle: str) -> None:
    result = _build(_tiny_book(tmp_path, markdown, code))
    assert result.returncode != 0
    assert needle in result.stdout + result.stderr


@pytest.mark.slow
def test_the_same_tiny_book_builds_without_the_fault(tmp_path: Path) -> None:
    """The control for the test above: with neither fault, the same book (this _config.yml, a
    MyST chapter) builds cleanly under -W, so the failures above are the faults' doing."""
    result = _build(_tiny_book(tmp_path, "# Chapter\n\nInline $w_{\\hat Q}^{(t)}$.", "1 + 1"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
