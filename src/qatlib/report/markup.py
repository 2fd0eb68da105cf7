"""How a chapter shows a table, a configuration, a number, a list or its checks: as a paper
would print them, in MyST markup that the book renders.

A code cell whose last value is one of these objects prints MyST Markdown (``_config.yml`` sets
``nb_render_markdown_format: myst``), so a table gets a number and a caption like a paper's
("Table 3.2: ..."), can be cited from the prose with ``{numref}`` by its ``name``, and is a plain
HTML table that the page's column contains. A configuration becomes a collapsed dropdown of
``field | value`` rows instead of a dataclass repr.

Table cells are formatted by the caller (the tables of :mod:`qatlib.report.tables` already hold
strings); :func:`table` only lays them out. For the prose and the cells, :func:`number`,
:func:`integer`, :func:`percent` and :func:`listing` write values the way the text around them
does (``1.2 × 10⁻⁷``, ``1,518``, ``57.1%``, ``0, 1 and 2``), never a Python repr or an exponent in
``e`` notation; :func:`device` names a device; :func:`checks` shows a chapter's invariants as
sentences (and fails the build when one does not hold).

>>> import pandas as pd
>>> frame = pd.DataFrame({"Ē (%)": ["1.50"], "agreement": ["99.1%"]}, index=pd.Index(["baseline (S)"], name="run"))
>>> print(table(frame, "Alignment error.", "tab-demo").data)
:::{table} Alignment error.
:name: tab-demo
:align: center
<BLANKLINE>
| run          |   Ē (%) |   agreement |
|:-------------|--------:|------------:|
| baseline (S) |    1.50 |       99.1% |
:::
>>> table(frame, "", "tab-demo")
Traceback (most recent call last):
...
ValueError: caption must be a non-empty sentence, got ''
>>> from qatlib.experiments.config import Config
>>> class Toy(Config):
...     steps: int = 3
...     lr: float = 0.1
>>> print(config_dropdown(Toy(), "quick").data)
:::{dropdown} Configuration: preset `quick` (2 fields)
| field   |   value |
|:--------|--------:|
| `steps` |       3 |
| `lr`    |     0.1 |
:::
>>> print(table(pd.DataFrame({"run": ["a"], "device": ["cpu (2 cores)"], "Ē": ["1.5e-03"]}), "Text.", "tab-t").data
...       .splitlines()[5])   # text left, numbers right
|:------|:--------------|--------:|
"""

from __future__ import annotations

import math
import re
from typing import Any

from IPython.display import Markdown

__all__ = ["setup", "table", "config_dropdown", "number", "short", "integer", "percent", "listing", "plural", "steps_at", "device", "admonition", "checks"]

_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
#: A cell that reads as a number (sign, digits, a short unit, a ✓/✗), or a dash: right-aligned.
_NUMBER = re.compile(r"^([+\-−]?\d[\d,.]*(e[+\-]?\d+)?(\s?[%a-zμ]{1,3})?(\s?[✓✗…])?|[–—\-])$")


def _pipe_table(frame: Any) -> str:
    """A DataFrame as a Markdown pipe table, cells exactly as given (tabulate would re-format numbers);
    a named index becomes the first column (no empty header row); columns of numbers are
    right-aligned, columns of text left-aligned."""
    if frame.index.name is not None or not _is_range_index(frame):
        frame = frame.reset_index()
    cells = frame.astype(str)
    align = ["left"] + ["right" if all(_NUMBER.match(c) for c in cells[col]) else "left" for col in cells.columns[1:]]
    return cells.to_markdown(index=False, disable_numparse=True, colalign=align)


def _is_range_index(frame: Any) -> bool:
    import pandas as pd

    return isinstance(frame.index, pd.RangeIndex)


def table(frame: Any, caption: str, name: str) -> Markdown:
    """A numbered, captioned table (``{table}`` directive) from a DataFrame of formatted cells.

    ``name`` is the label the prose cites, e.g. ``{numref}`tab-mnist-alignment```; lowercase
    letters, digits and hyphens. Cells may hold inline MyST (``$\\bar E$``, ``**bold**``).
    """
    if not caption or not caption.strip():
        raise ValueError(f"caption must be a non-empty sentence, got {caption!r}")
    if not _NAME.match(name):
        raise ValueError(f"name must be lowercase letters, digits and hyphens (e.g. 'tab-mnist-e'), got {name!r}")
    body = _pipe_table(frame)
    return Markdown(f":::{{table}} {caption.strip()}\n:name: {name}\n:align: center\n\n{body}\n:::")


def config_dropdown(config: Any, preset: str) -> Markdown:
    """A chapter's resolved configuration as a collapsed dropdown of ``field | value`` rows."""
    import pandas as pd

    fields = config.model_dump() if hasattr(config, "model_dump") else dict(vars(config))
    frame = pd.DataFrame(
        {"field": [f"`{key}`" for key in fields], "value": [_value(v) for v in fields.values()]}
    )
    title = f"Configuration: preset `{preset}` ({len(fields)} fields)"
    return Markdown(f":::{{dropdown}} {title}\n{_pipe_table(frame)}\n:::")


def _value(value: Any) -> str:
    """A field value for a table cell as a reader expects it: a sequence as its items separated by
    commas (long ones shortened), a float as written (``1e-4`` as ``1 × 10⁻⁴``), ``None`` as
    "none", a bool as yes/no; pipes escaped."""
    if isinstance(value, (list, tuple)):
        items = [_value(item) for item in value]
        if len(items) > 8:
            items = [items[0], items[1], "…", items[-1]]
            return f"{len(value)} values: " + ", ".join(items)
        return ", ".join(items) if items else "none"
    if isinstance(value, dict):
        return "; ".join(f"{key} {_value(item)}" for key, item in value.items()) or "none"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return integer(value)
    if isinstance(value, float):  # as written in the config (shortest repr), with 10ⁿ for an exponent
        mantissa, _, exponent = repr(value).partition("e")
        return mantissa if not exponent else f"{mantissa} × 10{str(int(exponent)).translate(_SUPERSCRIPT)}"
    return str(value).replace("|", "\\|")


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def number(value: float, digits: int = 2) -> str:
    """A real number with ``digits`` significant digits as the prose prints it: plain decimals from
    10⁻³ to 10⁵, else ``m × 10ⁿ`` (never ``1e-07``); thousands separated by commas.

    >>> number(3.14159), number(0.012345, 3), number(1.234e-7), number(123456.0), number(0.0), number(-2.6e-9, 1)
    ('3.1', '0.0123', '1.2 × 10⁻⁷', '1.2 × 10⁵', '0', '−3 × 10⁻⁹')
    >>> number(float("nan"))
    'n/a'
    """
    if digits < 1:
        raise ValueError(f"digits must be at least 1, got {digits}")
    if not math.isfinite(value):
        return "n/a" if math.isnan(value) else ("∞" if value > 0 else "−∞")
    if value == 0:
        return "0"
    sign = "−" if value < 0 else ""
    magnitude = abs(value)
    exponent = math.floor(math.log10(magnitude))
    mantissa = float(f"{magnitude / 10 ** exponent:.{digits - 1}f}")
    if mantissa >= 10:  # 9.96 -> 10.0 at two digits
        mantissa, exponent = mantissa / 10, exponent + 1
    if -3 <= exponent < 5:
        decimals = max(0, digits - 1 - exponent)
        return f"{sign}{float(f'{magnitude:.{digits}g}'):,.{decimals}f}"
    return f"{sign}{mantissa:.{digits - 1}f} × 10{str(exponent).translate(_SUPERSCRIPT)}"


def short(value: float) -> str:
    """A parameter value as briefly as it reads (``'0.01'``, ``'1,000'``, ``'0.9'``): up to six
    significant digits, commas for thousands, :func:`number` (``10ⁿ``) outside 10⁻⁴ to 10⁶.

    >>> short(0.01), short(1000.0), short(0.99), short(1e-4), short(1e-5), short(30)
    ('0.01', '1,000', '0.99', '0.0001', '1.0 × 10⁻⁵', '30')
    """
    if value != 0 and not 1e-4 <= abs(value) < 1e6:
        return number(value, 2)
    return f"{value:,g}".replace("-", "−")


def integer(value: Any) -> str:
    """A count with thousands separated by commas: ``integer(1518) == '1,518'``."""
    if isinstance(value, float) and not float(value).is_integer():
        raise ValueError(f"integer() takes a whole number, got {value!r}")
    return f"{int(value):,}"


def percent(fraction: float, digits: int = 3) -> str:
    """A fraction as a percentage with at most ``digits`` significant digits and at most two
    decimals above 1%, never shown as 100% unless it is exactly one.

    >>> percent(0.571097), percent(0.98765), percent(1.0), percent(0.999996), percent(2.22e-10), percent(5.2e-6)
    ('57.1%', '98.8%', '100%', '> 99.99%', '2.2 × 10⁻⁸ %', '5.2 × 10⁻⁴ %')
    """
    value = 100 * fraction
    if not math.isfinite(value):
        return "n/a"
    if value == 0 or value == 100:
        return f"{value:.0f}%"
    if abs(value) < 1e-3:
        return f"{number(value, 2)} %"
    decimals = max(0, min(2 if abs(value) >= 1 else 6, digits - 1 - math.floor(math.log10(abs(value)))))
    text = f"{value:.{decimals}f}"
    if float(text) >= 100 > value:
        return "> 99.99%"
    return f"{text}%"


def listing(items: Any, conjunction: str = "and") -> str:
    """Items as a sentence lists them: ``listing([0, 1, 2]) == '0, 1 and 2'``; numbers by :func:`number`."""
    words = [number(item, 3) if isinstance(item, float) else str(item) for item in items]
    if not words:
        raise ValueError("listing() needs at least one item")
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {conjunction} {words[-1]}"


def plural(count: int, noun: str, plural_noun: str | None = None) -> str:
    """``plural(1, 'step') == '1 step'``, ``plural(1518, 'step') == '1,518 steps'`` (never "step(s)")."""
    return f"{integer(count)} {noun if count == 1 else (plural_noun or noun + 's')}"


def steps_at(steps: Any) -> str:
    """Where something happened, as a sentence says it: ``'step 22'``, ``'steps 22 and 190'``, ``'no step'``."""
    steps = [integer(step) for step in steps]
    if not steps:
        return "no step"
    return f"step {steps[0]}" if len(steps) == 1 else f"steps {listing(steps)}"


def device(backend: str, kinds: Any = (), count: int | None = None) -> str:
    """A JAX device as a sentence names it: ``device('cpu', ['cpu']) == 'the CPU'``,
    ``device('gpu', ['NVIDIA H100'], 2) == 'two NVIDIA H100 GPUs'`` (a kind that only repeats the
    backend's name is left out)."""
    name = backend.upper()
    kinds = sorted({str(kind) for kind in kinds if str(kind).lower() != backend.lower()})
    words = {1: "one", 2: "two", 3: "three", 4: "four", 8: "eight"}
    if count is None or count == 1:
        return f"one {kinds[0]} {name}" if kinds else f"the {name}"
    label = f"{kinds[0]} {name}s" if kinds else f"{name}s"
    return f"{words.get(count, integer(count))} {label}"


def admonition(title: str, body: str, kind: str = "note") -> Markdown:
    """A titled admonition (``kind``: note, tip, important, warning) around MyST ``body``.

    >>> print(admonition("Not run here", "One command runs it.").data)
    :::{admonition} Not run here
    :class: note
    <BLANKLINE>
    One command runs it.
    :::
    """
    if not title.strip() or not body.strip():
        raise ValueError("an admonition needs a title and a body")
    return Markdown(f":::{{admonition}} {title.strip()}\n:class: {kind}\n\n{body.strip()}\n:::")


def checks(found: dict[str, bool], title: str = "Checked on this build") -> Markdown:
    """A chapter's invariants as a short admonition of sentences, one per check; raises
    ``AssertionError`` naming every check that failed (the build fails, nothing false is shown).

    >>> print(checks({"M fixes the boundary points": True}).data)
    :::{admonition} Checked on this build
    :class: tip
    <BLANKLINE>
    - M fixes the boundary points.
    :::
    >>> checks({"α < 1": False})
    Traceback (most recent call last):
    ...
    AssertionError: a check failed: α < 1
    """
    failed = [claim for claim, ok in found.items() if not ok]
    if failed:
        raise AssertionError("a check failed: " + "; ".join(failed))
    if not found:
        raise ValueError("checks() needs at least one check")
    lines = "\n".join(f"- {claim}." for claim in found)
    return Markdown(f":::{{admonition}} {title}\n:class: tip\n\n{lines}\n:::")


def _number_root_as_chapter_zero(app: Any, env: Any) -> list[str]:
    """The root document (the introduction) is outside the numbered chapters, so Sphinx numbers its
    tables and figures "1", "2": the very form of the paper's "Table 1". Number them "0.1", "0.2"
    instead, like every chapter's "4.1". Runs after Sphinx assigns the numbers (``env-get-updated``,
    late priority); numbers already in that form are left alone."""
    numbers = env.toc_fignumbers.get(env.config.root_doc, {})
    for figtype, ids in numbers.items():
        numbers[figtype] = {key: (0, *value) if len(value) == 1 else value for key, value in ids.items()}
    return []


def setup(app: Any) -> dict[str, Any]:
    """Sphinx extension: the book's stylesheet and script (``book/_static/qatlib.{css,js}``, found on
    ``html_static_path``), and the introduction's tables and figures numbered "0.n". The script
    configures MathJax's start-up: deferred, and before MathJax's own deferred script (priority 200
    against MathJax's 500), it runs after the page's ``window.MathJax = {...}`` options and before
    MathJax reads them."""
    app.add_css_file("qatlib.css")
    app.add_js_file("qatlib.js", priority=200, loading_method="defer")
    app.connect("env-get-updated", _number_root_as_chapter_zero, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
