"""Browser test of the built book: equations rendered by the bundled MathJax, figures loaded, no
request leaves the machine. Screenshots are kept under ``test-artifacts/``.

Which site is tested (the test builds nothing itself unless asked to):

1. ``$QATLIB_SITE`` — a built ``html`` folder;
2. ``_build/quick/_build/html`` (``QATLIB_PRESET=quick jupyter-book build . --path-output _build/quick``);
3. ``_build/html`` (``jupyter-book build .``);
4. with ``QATLIB_BUILD_SITE=1``: a quick build into a temporary folder (several minutes).

Without a site, or without Chromium (Debian's ``chromium`` + ``chromium-driver``), the tests skip
and say why; CI sets ``QATLIB_REQUIRE_SITE=1`` to turn both skips into failures.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import os
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
PAGES = ("book/theorems.html", "book/intuition.html")


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


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    candidates = [Path(p) for p in (os.environ.get("QATLIB_SITE"),) if p]
    candidates += [ROOT / "_build" / "quick" / "_build" / "html", ROOT / "_build" / "html"]
    for candidate in candidates:
        if (candidate / PAGES[0]).is_file():
            return candidate
    if os.environ.get("QATLIB_BUILD_SITE") == "1":
        return _build_quick_site(tmp_path_factory.mktemp("site"))
    _unavailable(
        "no built book found (looked in $QATLIB_SITE, _build/quick/_build/html, _build/html); build it "
        "with `QATLIB_PRESET=quick jupyter-book build . --path-output _build/quick` or set QATLIB_BUILD_SITE=1"
    )
    raise AssertionError("unreachable")


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
const mj = window.MathJax;
if (!mj || !mj.startup || !mj.startup.promise) return false;
if (!window.__qatlibMath) { window.__qatlibMath = 'pending'; mj.startup.promise.then(() => { window.__qatlibMath = 'done'; }); }
return window.__qatlibMath === 'done' && document.querySelectorAll('mjx-container').length > 0;
"""

IMAGES_READY = """
const imgs = Array.from(document.querySelectorAll('article img, main img'));
return imgs.length > 0 && imgs.every(img => img.complete);
"""


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_math_and_figures_offline(page: str, server: str, browser) -> None:
    browser.get(f"{server}/{page}")
    _wait(browser, MATH_READY)
    _wait(browser, IMAGES_READY)
    counts = browser.execute_script(
        """
        return {
          math: document.querySelectorAll('mjx-container').length,
          display: document.querySelectorAll('mjx-container[display="true"]').length,
          errors: document.querySelectorAll('mjx-merror').length,
          raw: Array.from(document.querySelectorAll('div.math, span.math')).filter(
                 e => !e.querySelector('mjx-container') && e.textContent.includes('\\\\')).length,
          images: Array.from(document.querySelectorAll('article img, main img')).map(
                 img => [img.getAttribute('src'), img.naturalWidth]),
          resources: performance.getEntriesByType('resource').map(r => r.name),
          mathjax: Array.from(document.scripts).map(s => s.src).filter(s => s.includes('mathjax')),
        };
        """
    )
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / f"{Path(page).stem}.png"))

    assert counts["math"] > 0, "no MathJax output on the page"
    assert counts["display"] > 0, "no display equation rendered"
    assert counts["errors"] == 0, f"{counts['errors']} MathJax errors"
    assert counts["raw"] == 0, f"{counts['raw']} math blocks left as raw TeX"
    assert counts["mathjax"] and all(src.startswith(server) for src in counts["mathjax"]), counts["mathjax"]
    broken = [src for src, width in counts["images"] if not width]
    assert counts["images"] and not broken, f"figures that did not load: {broken}"
    foreign = [name for name in counts["resources"] if not name.startswith(server) and not name.startswith("data:")]
    assert not foreign, f"the page fetched resources from elsewhere: {foreign}"


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
    assert "sphinx-mathjax-offline" in config["sphinx"]["extra_extensions"]
    assert config["sphinx"]["config"]["mathjax_path"] == "mathjax/tex-chtml.js"
    assert config["bibtex_bibfiles"] == ["book/references.bib"]


def test_toc_follows_the_paper_and_every_chapter_exists() -> None:
    toc = _yaml(ROOT / "_toc.yml")
    chapters = [toc["root"]] + [entry["file"] for entry in toc["chapters"]]
    assert chapters == ["book/intro", "book/intuition", "book/theorems", "book/mnist", "book/resnet50", "book/bibliography"]
    missing = [c for c in chapters if not any((ROOT / f"{c}{ext}").is_file() for ext in (".md", ".ipynb"))]
    assert not missing, f"chapters listed in _toc.yml but absent: {missing}"


def _tiny_book(tmp: Path, markdown: str, code: str) -> Path:
    """A one-chapter book with this repository's _config.yml."""
    nbformat = pytest.importorskip("nbformat")
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    (tmp / "book").mkdir()
    shutil.copy(ROOT / "_config.yml", tmp / "_config.yml")
    shutil.copy(ROOT / "book" / "references.bib", tmp / "book" / "references.bib")
    (tmp / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: book/chapter\n")
    (tmp / "book" / "intro.md").write_text("# Intro\n\nSee {cite:p}`bengio2013`.\n\n```{bibliography}\n```\n")
    nb = new_notebook(cells=[new_markdown_cell(markdown), new_code_cell(code)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp / "book" / "chapter.ipynb")
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
