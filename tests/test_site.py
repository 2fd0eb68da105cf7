"""Browser test of the built book, page by page, as a reader sees it in Chromium at 1400 px and on a
390 px phone (emulated through the DevTools protocol: headless Chromium makes no window narrower than
500 px). A full-page screenshot of every page at both widths is kept under
``test-artifacts/<build>/<page>-<width>.png``.

What a reader would notice, each a test that fails on it:

* the page: a console error, a request leaving the machine, maths not rendered by the bundled MathJax;
* figures: one that did not load or has no numbered caption; text smaller than about 9 px as rendered
  (from the PNG's dpi and its texts' sizes, which :mod:`qatlib.report.figures.style` writes into it,
  and the image's rendered width); labels drawn on top of each other (their boxes, from the same PNG);
* tables: one without a numbered caption, or wider than the text column;
* a phone: the page, a table, a display equation or a caption wider than the screen or cut off by
  its container;
* raw output in the text (outside code): a literal backtick or TeX dollar, a Python repr (``True``,
  ``[0, 1, 2]``, ``('sgd', 'adam')``, ``cpu (cpu)``, ``step(s)``), an unformatted number
  (``2.22e-08``, ``57.1097%``, ``1518`` beside ``1,518``);
* glued text (myst-nb's ``{glue:text}``) longer than a phrase, or bolder than the prose around it;
* the book's own numbers in a form that could be the paper's: "Table 1" or "Section 2" without the
  chapter ("Table 4.1") and without "paper" before it.

:func:`test_every_check_fails_on_a_page_made_of_the_faults` runs every check on a small page built
of these faults (no book build needed), so each check is shown to fail where it should.

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
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("QATLIB_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("QATLIB_CHROMEDRIVER", "/usr/bin/chromedriver")
#: The desktop read: a 1400 px wide window.
DESKTOP_WIDTH = 1400
CHROME_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    f"--window-size={DESKTOP_WIDTH},2200",
)
#: The phone read: DevTools' device metrics of a 390 px wide phone.
PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True}
#: Smallest figure text a reader can read, CSS px: at 1400 px, and on the phone ("about 9 px").
FIGURE_TEXT_PX = {"desktop": 9.0, "phone": 8.5}
#: A glued text longer than this many words is a paragraph, not a number or a phrase.
GLUE_WORDS = 25
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
    with _serve(site) as url:
        yield url


class _serve:
    """A static HTTP server for ``directory`` on 127.0.0.1, as a context manager giving its URL."""

    def __init__(self, directory: Path) -> None:
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)

    def __enter__(self) -> str:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


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

#: Shared by the scripts below: the article, a block's place on the page, and the reader's text.
_COMMON = r"""
const article = document.querySelector('article.bd-article') || document.querySelector('article') || document.body;
const BLOCKS = 'p, li, td, th, caption, figcaption, dt, dd, summary, h1, h2, h3, h4, h5, h6, .admonition-title, pre';
const NOT_PROSE = 'code, kbd, samp, script, style, mjx-container, .cell_input, .headerlink, button';
const squash = text => (text || '').replace(/\s+/g, ' ').trim();
const where = el => {
  const section = el.closest('section');
  const heading = section && section.querySelector(':scope > h1, :scope > h2, :scope > h3, :scope > h4');
  return `${el.tagName.toLowerCase()} in "${heading ? squash(heading.textContent).replace(/#$/, '') : 'the page'}"`;
};
"""

PAGE_FACTS = _COMMON + r"""
const column = article.querySelector('section') || article;
const caption = el => { const c = el.querySelector(':scope > figcaption, :scope > caption');
                        return c ? squash(c.textContent) : ''; };
// The reader's text, block by block: every text node outside code, maths and code-cell inputs
// (a code cell's printed output, or a figure shown as text, counts: a reader reads it).
const groups = new Map();
const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
  const parent = node.parentElement;
  if (!parent || parent.closest(NOT_PROSE)) continue;
  if (parent.closest('pre') && !parent.closest('.cell_output, figure')) continue;  // a code listing
  const block = parent.closest(BLOCKS) || parent;
  if (!groups.has(block)) groups.set(block, []);
  groups.get(block).push(node.textContent);
}
return {
  math: article.querySelectorAll('mjx-container').length,
  display: article.querySelectorAll('mjx-container[display="true"]').length,
  mathErrors: article.querySelectorAll('mjx-merror').length,
  rawMath: Array.from(article.querySelectorAll('div.math, span.math')).filter(
             e => !e.querySelector('mjx-container') && e.textContent.includes('\\\\')).length,
  figures: Array.from(article.querySelectorAll('img')).map(img => {
             const figure = img.closest('figure');
             return {src: img.getAttribute('src'), url: img.currentSrc || img.src, width: img.naturalWidth,
                     shown: img.getBoundingClientRect().width, caption: figure ? caption(figure) : ''}; }),
  tables: Array.from(article.querySelectorAll('table')).map(table => {
             const box = table.closest('.pst-scrollable-table-container') || table.parentElement;
             return {caption: caption(table), inDropdown: !!table.closest('details'),
                     width: table.getBoundingClientRect().width, column: column.clientWidth,
                     overflows: box.scrollWidth > box.clientWidth + 1}; }),
  texts: Array.from(groups, ([block, parts]) => ({where: where(block), text: squash(parts.join(''))}))
              .filter(t => t.text),
  glued: Array.from(article.querySelectorAll('span.pasted-text')).map(span => ({
             where: where(span.closest(BLOCKS) || span), text: squash(span.textContent),
             weight: Number(getComputedStyle(span).fontWeight),
             around: Number(getComputedStyle(span.parentElement).fontWeight)})),
  resources: performance.getEntriesByType('resource').map(r => r.name),
  mathjax: Array.from(document.scripts).map(s => s.src).filter(s => s.includes('mathjax')),
};
"""

#: On the phone: what sticks out of the screen or is cut off by a container that clips or scrolls.
PHONE_FACTS = _COMMON + r"""
document.querySelectorAll('details').forEach(d => { d.open = true; });  // dropdowns' tables count too
const screen = document.documentElement.clientWidth;
const clipping = el => { const out = [];
  for (let a = el.parentElement; a && a !== document.documentElement; a = a.parentElement)
    if (getComputedStyle(a).overflowX !== 'visible') out.push(a);
  return out; };
// How many px of el a reader cannot see without scrolling sideways (null: not rendered): the part of
// its box outside the screen or a clipping container, or its content sticking out of its own box.
const hidden = el => {
  const r = el.getBoundingClientRect();
  if (r.width === 0 && r.height === 0) return null;
  let left = 0, right = screen;
  for (const a of clipping(el)) { const b = a.getBoundingClientRect(); left = Math.max(left, b.left); right = Math.min(right, b.right); }
  const spill = el.tagName !== 'IMG' && el.clientWidth ? Math.max(0, el.scrollWidth - el.clientWidth) : 0;
  return Math.max(0, left - r.left) + Math.max(0, r.right - right) + spill;
};
const cut = [];
const check = (kind, el, target) => { const px = hidden(target || el);
  if (px !== null && px > 1) cut.push({kind, where: where(el), text: squash(el.textContent).slice(0, 70), px: Math.round(px)}); };
article.querySelectorAll('table').forEach(t => check('table', t));
article.querySelectorAll('table > caption, figure > figcaption').forEach(c => check('caption', c));
article.querySelectorAll('mjx-container[display="true"]').forEach(m => check('equation', m, m.querySelector(':scope > mjx-math') || m));
article.querySelectorAll('.admonition').forEach(b => check('admonition', b));
article.querySelectorAll('figure img').forEach(img => check('figure', img.closest('figure'), img));
// What makes the page itself wider than the screen: the outermost elements that reach beyond it.
const wide = Array.from(document.body.querySelectorAll('*')).filter(el => {
  const r = el.getBoundingClientRect();
  return r.right > screen + 1 && r.width > 0 && !clipping(el).length && !(el.parentElement && el.parentElement.getBoundingClientRect().right > screen + 1);
}).slice(0, 5).map(el => `${el.tagName.toLowerCase()}.${el.className}: ${Math.round(el.getBoundingClientRect().right)} px`);
return {
  screen, page: document.documentElement.scrollWidth, wide, cut,
  figures: Array.from(article.querySelectorAll('img')).map(img => ({
             src: img.getAttribute('src'), url: img.currentSrc || img.src, width: img.naturalWidth,
             shown: img.getBoundingClientRect().width})),
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


def _phone_screenshot(browser, path: Path) -> None:
    """A full-page PNG at the phone's width: the emulated screen is stretched to the page's height."""
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**PHONE, "height": min(max(height, PHONE["height"]), 16000)})
    path.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(path))
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)


def _load(browser, url: str) -> None:
    browser.get(url)
    _wait(browser, MATH_READY)
    _wait(browser, IMAGES_READY)


def read_page(browser, url: str, shots: Path | None = None) -> dict:
    """Load ``url`` at the desktop width, then as a phone: the facts of both reads, the console's
    errors, and (with ``shots``, a path stem) a full-page screenshot of each."""
    browser.get_log("browser")  # drop what earlier pages logged
    _load(browser, url)
    facts = browser.execute_script(PAGE_FACTS)
    facts["console"] = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    if shots is not None:
        _screenshot(browser, shots.with_name(f"{shots.name}-{DESKTOP_WIDTH}.png"))
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    try:
        _load(browser, url)
        if shots is not None:
            _phone_screenshot(browser, shots.with_name(f"{shots.name}-{PHONE['width']}.png"))
        facts["phone"] = browser.execute_script(PHONE_FACTS)
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    return facts


@pytest.fixture(scope="session")
def page_facts(site: Path, server: str, browser) -> dict[str, dict]:
    """Read every page once (per build) at both widths: its facts, console errors and screenshots."""
    build = "default" if site == ROOT / "_build" / "html" else "quick"
    facts = {}
    for page in PAGES:
        if not (site / page).is_file():
            continue  # a partial build (e.g. one chapter's toc): its tests skip
        found = read_page(browser, f"{server}/{page}", ARTIFACTS / build / Path(page).stem)
        found["site"] = site
        facts[page] = found
    return facts


def _facts(page_facts: dict, page: str) -> dict:
    if page not in page_facts:
        pytest.skip(f"{page} is not in this build")
    return page_facts[page]


# --------------------------------------------------------------------------------- the checks
# Each takes a page's facts and returns the problems a reader would see (empty: none).

#: Raw markup: a literal backtick, or TeX between dollars that nothing rendered.
RAW_MARKUP = re.compile(r"`|\$[^$\s][^$]*\$")
#: Python reprs in prose.
_ITEM = r"(?:-?\d[\d.]*(?:e[+-]?\d+)?|'[^']*'|\"[^\"]*\")"
_QUOTED = r"(?:'[^']*'|\"[^\"]*\")"
REPRS = {
    "a bare True/False": re.compile(r"\b(?:True|False|None)\b"),
    "a list": re.compile(rf"\[\s*{_ITEM}(?:\s*,\s*{_ITEM})+\s*,?\s*\]|\[\s*{_QUOTED}\s*\]"),
    "a tuple": re.compile(rf"\(\s*{_QUOTED}(?:\s*,\s*{_QUOTED})*\s*,?\s*\)|\(\s*-?\d[\d.]*\s*,\s*-?\d[\d.]*(?:\s*,\s*-?\d[\d.]*)*\s*,?\s*\)"),
    "an object repr": re.compile(r"<[\w.]+ (?:object|at 0x)[^>]*>|<Figure size"),
    "a plural placeholder": re.compile(r"\w\(s\)"),
    "a name repeated in brackets": re.compile(r"\b(\w+) \(\1\)", re.IGNORECASE),
    "a NaN": re.compile(r"\bnan\b"),
}
E_NOTATION = re.compile(r"(?<![\w.])\d+(?:\.\d+)?e[+-]?\d+(?!\w)")
PERCENT = re.compile(r"(?<![\d.,])(\d[\d,]*(?:\.\d+)?)\s?%")
#: An integer of four or more digits without a thousands separator (a year 1900-2099, and either end
#: of a range such as a bibliography's pages "4851–4860", excepted).
BARE_THOUSANDS = re.compile(r"(?<![\w.,/\-−–])(\d{4,})(?![\w–]|[.,]\d)")
#: The book's own numbers are "Table 4.1", "Section 5.2"; a bare "Table 1" is the paper's only
#: after "paper" or "its" (or as "Section 4 of <citation>").
BARE_NUMBER = re.compile(r"(?<![Pp]aper )(?<![Pp]aper's )(?<!\bits )\b(?:Tables?|Figures?|Fig\.|Sections?|Eqs?\.|Equations?)\s+\d+(?![.\d])(?! of\b)")


def raw_markup(facts: dict) -> list[str]:
    return [f"{t['where']}: {t['text'][:120]!r}" for t in facts["texts"] if RAW_MARKUP.search(t["text"])]


#: A statistic and its interval, "3.27 [2.13, 5.02]", "71% [13, 405]": two numbers in brackets right
#: after a number (and its unit) are an interval, not a list.
_INTERVAL_BEFORE = re.compile(r"\d(?:\s*(?:%|pp))?\s*$")


def _is_interval(text: str, match: re.Match) -> bool:
    return match.group(0).count(",") == 1 and bool(_INTERVAL_BEFORE.search(text[:match.start()]))


def python_reprs(facts: dict) -> list[str]:
    found = []
    for t in facts["texts"]:
        for what, pattern in REPRS.items():
            match = next((m for m in pattern.finditer(t["text"]) if what != "a list" or not _is_interval(t["text"], m)), None)
            if match:
                found.append(f"{t['where']}: {what} {match.group(0)!r} in {t['text'][:120]!r}")
    return found


def _significant(number: str) -> int:
    return len(number.replace(",", "").replace(".", "").lstrip("0"))


def unformatted_numbers(facts: dict) -> list[str]:
    found = []
    for t in facts["texts"]:
        text = t["text"]
        for match in E_NOTATION.finditer(text):
            found.append(f"{t['where']}: e-notation {match.group(0)!r}")
        for match in PERCENT.finditer(text):
            if _significant(match.group(1)) > 4:
                found.append(f"{t['where']}: {match.group(0)!r} has more than 4 significant digits")
        for match in BARE_THOUSANDS.finditer(text):
            if not (len(match.group(1)) == 4 and 1900 <= int(match.group(1)) <= 2099):
                found.append(f"{t['where']}: {match.group(1)!r} without a thousands separator")
    return found


def long_or_bold_glue(facts: dict) -> list[str]:
    found = []
    for g in facts["glued"]:
        if len(g["text"].split()) > GLUE_WORDS:
            found.append(f"{g['where']}: a glued paragraph of {len(g['text'].split())} words: {g['text'][:80]!r}…")
        if g["weight"] > g["around"]:
            found.append(f"{g['where']}: glued text bolder ({g['weight']}) than the prose ({g['around']}): {g['text'][:60]!r}")
    return found


def ambiguous_numbers(facts: dict) -> list[str]:
    return [f"{t['where']}: {match.group(0)!r} could be the paper's (the book's own read 'Table 4.1')"
            for t in facts["texts"] for match in BARE_NUMBER.finditer(t["text"])]


def phone_overflow(facts: dict) -> list[str]:
    phone = facts["phone"]
    found = [f"the page is {phone['page']} px wide on a {phone['screen']} px screen: {phone['wide']}"] if phone["page"] > phone["screen"] + 1 else []
    found += [f"{c['kind']} ({c['where']}) cut by {c['px']} px: {c['text']!r}" for c in phone["cut"]]
    return found


def _figure_texts(site: Path, figure: dict) -> dict | None:
    from qatlib.report.figures import style

    path = site / urllib.parse.unquote(urllib.parse.urlparse(figure["url"]).path).lstrip("/")
    try:
        return style.read_png_texts(path)
    except (ValueError, OSError):
        return None


def small_figure_text(facts: dict) -> list[str]:
    """Figures whose smallest text renders below :data:`FIGURE_TEXT_PX` (pt · dpi/72 · shown/natural width)."""
    found = []
    for read, figures in (("desktop", facts["figures"]), ("phone", facts["phone"]["figures"])):
        for figure in figures:
            texts = _figure_texts(facts["site"], figure)
            if texts is None:
                found.append(f"{figure['src']}: no text sizes in the PNG (not drawn by qatlib.report.figures.style)")
                continue
            if not texts["texts"] or not figure["width"]:
                continue
            smallest = min(t["pt"] for t in texts["texts"])
            px = smallest * texts["dpi"] / 72 * figure["shown"] / figure["width"]
            if px < FIGURE_TEXT_PX[read] - 1e-9:
                found.append(f"{figure['src']} ({read}): {smallest:g} pt text shows at {px:.1f} px (< {FIGURE_TEXT_PX[read]:g})")
    return sorted(set(found))


def overlapping_figure_labels(facts: dict) -> list[str]:
    from qatlib.report.figures import style

    found = []
    for figure in facts["figures"]:
        texts = _figure_texts(facts["site"], figure)
        if texts is None:
            found.append(f"{figure['src']}: no text boxes in the PNG (not drawn by qatlib.report.figures.style)")
            continue
        found += [f"{figure['src']}: {a.text!r} overlaps {b.text!r}" for a, b in style.overlapping_texts(texts)]
    return found


# ----------------------------------------------------------------------------------- the tests
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
def test_figure_text_is_readable(page: str, page_facts: dict) -> None:
    assert small_figure_text(_facts(page_facts, page)) == []


@pytest.mark.parametrize("page", PAGES)
def test_figure_labels_do_not_overlap(page: str, page_facts: dict) -> None:
    assert overlapping_figure_labels(_facts(page_facts, page)) == []


@pytest.mark.parametrize("page", PAGES)
def test_every_table_is_numbered_captioned_and_fits(page: str, page_facts: dict) -> None:
    tables = _facts(page_facts, page)["tables"]
    uncaptioned = [t for t in tables if not t["inDropdown"] and not re.match(r"Table \d+(\.\d+)* \S", t["caption"])]
    assert not uncaptioned, f"{len(uncaptioned)} table(s) without a numbered caption ('Table n ...')"
    wide = [(t["caption"][:40], round(t["width"]), t["column"]) for t in tables if t["overflows"]]
    assert not wide, f"tables wider than the text column (caption, width, column): {wide}"


@pytest.mark.parametrize("page", PAGES)
def test_page_fits_a_phone(page: str, page_facts: dict) -> None:
    assert phone_overflow(_facts(page_facts, page)) == []


@pytest.mark.parametrize("page", PAGES)
def test_text_has_no_raw_markup(page: str, page_facts: dict) -> None:
    assert raw_markup(_facts(page_facts, page)) == []


@pytest.mark.parametrize("page", PAGES)
def test_text_has_no_python_repr(page: str, page_facts: dict) -> None:
    assert python_reprs(_facts(page_facts, page)) == []


@pytest.mark.parametrize("page", PAGES)
def test_numbers_are_formatted(page: str, page_facts: dict) -> None:
    assert unformatted_numbers(_facts(page_facts, page)) == []


@pytest.mark.parametrize("page", PAGES)
def test_glued_text_is_a_phrase_in_the_prose_weight(page: str, page_facts: dict) -> None:
    assert long_or_bold_glue(_facts(page_facts, page)) == []


@pytest.mark.parametrize("page", PAGES)
def test_own_numbers_cannot_be_mistaken_for_the_papers(page: str, page_facts: dict) -> None:
    assert ambiguous_numbers(_facts(page_facts, page)) == []


def test_site_bundles_mathjax(site: Path) -> None:
    """The page references the bundled MathJax, and the bundle (with its fonts) is in the site."""
    html = (site / PAGES[0]).read_text(encoding="utf-8")
    assert "_static/mathjax/tex-chtml.js" in html
    assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file()
    assert any((site / "_static" / "mathjax" / "output" / "chtml" / "fonts").rglob("*.woff*"))


# ------------------------------------------------------------- the checks, shown to fail
FAULTY_PAGE = """<!DOCTYPE html>
<html><head><meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="margin: 0"><article class="bd-article"><section><h1>Faults</h1>
<p>Read <code>kept `here`</code> but not `results/beyond/momentum/metrics.json` nor $O(1/k^2)$.</p>
<p>Ran seeds [0, 1, 2] with ('sgd', 'adam') on cpu (cpu), 1 CPU device(s), at step(s) 22, 190.</p>
<p>M fixes the boundary points: True</p>
<p>&lt;IPython.core.display.Markdown object&gt; and a ratio of nan.</p>
<p>Error 2.22e-08%, agreement 57.1097% over 1518 weights; in 2024, 1,518 weights.</p>
<p>As Table 1 shows (paper Table 1 differs; Section 4 of the paper, its Section 6; Table 4.1 is ours), Section 2: slopes.</p>
<p><span class="pasted-text" style="font-weight: bold">{long}</span></p>
<div style="overflow-x: auto"><table style="width: 700px"><caption>Table 1.1 A table wider than a phone.</caption>
<tr><td>a</td><td>b</td></tr></table></div>
<div class="math"><mjx-container display="true" style="display: block; overflow-x: auto">
<mjx-math style="display: inline-block; width: 600px">wide</mjx-math></mjx-container></div>
<figure><img src="small.png" style="width: 300px"><figcaption>Figure 1.1 Small text, labels on top of each other.</figcaption></figure>
<figure><img src="plain.png"><figcaption>Figure 1.2 No text sizes.</figcaption></figure>
</section></article></body></html>
"""


def _faulty_site(tmp: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    from qatlib.report.figures import style

    fig, axes = style.figure(1, 1, height=2.0)
    axes[0, 0].set_xticks([0.5, 0.51], ["one label", "another"], fontsize=5)
    fig.savefig(tmp / "small.png")
    fig.savefig(tmp / "plain.png", metadata={})
    from PIL import Image

    with Image.open(tmp / "plain.png") as image:  # the same picture without the text chunk
        image.save(tmp / "plain.png")
    (tmp / "faults.html").write_text(FAULTY_PAGE.format(long=" ".join(["words"] * 40)), encoding="utf-8")
    return tmp


def test_an_interval_after_a_value_is_not_a_python_list() -> None:
    facts = {"texts": [{"where": "p", "text": "A fails (3.27 [2.13, 5.02]), 71% [13, 405], +0.03 pp [0.05, 0.11]; seeds [0, 1]"}]}
    assert python_reprs(facts) == ["p: a list '[0, 1]' in " + repr(facts["texts"][0]["text"][:120])]


def test_every_check_fails_on_a_page_made_of_the_faults(browser, tmp_path: Path) -> None:
    """Each check above, run on a page made of the faults it exists for, finds them: the control that
    shows the checks can fail (the book's pages must give them nothing to find)."""
    site = _faulty_site(tmp_path)
    with _serve(site) as url:
        facts = read_page(browser, f"{url}/faults.html")
    facts["site"] = site
    raw = raw_markup(facts)
    assert len(raw) == 1 and "metrics.json" in raw[0]  # the backtick inside <code> is not raw
    reprs = " ".join(python_reprs(facts))
    for what in REPRS:
        assert what in reprs, what
    numbers = " ".join(unformatted_numbers(facts))
    assert "'2.22e-08'" in numbers and "'57.1097%'" in numbers and "'1518'" in numbers and "'2024'" not in numbers
    assert len(long_or_bold_glue(facts)) == 2  # too long, and bold
    ambiguous = " ".join(ambiguous_numbers(facts))
    assert "'Table 1'" in ambiguous and "'Section 2'" in ambiguous
    assert "Section 4" not in ambiguous and "Section 6" not in ambiguous
    assert ambiguous.count("'Table 1'") == 1  # "paper Table 1" and "Table 1.1" are fine
    phone = " ".join(phone_overflow(facts))
    assert "table (" in phone and "equation (" in phone and "caption (" in phone
    small = " ".join(small_figure_text(facts))
    assert "small.png (desktop): 5 pt" in small and "plain.png: no text sizes" in small
    overlaps = " ".join(overlapping_figure_labels(facts))
    assert "'one label' overlaps 'another'" in overlaps and "plain.png: no text boxes" in overlaps


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
    shutil.copytree(ROOT / "book" / "_static", tmp / "book" / "_static")
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
