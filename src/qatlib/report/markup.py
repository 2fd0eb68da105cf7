"""How a chapter shows a table or a configuration: as MyST markup that the book renders.

A code cell whose last value is one of these objects prints MyST Markdown (``_config.yml`` sets
``nb_render_markdown_format: myst``), so a table gets a number and a caption like a paper's
("Table 3.2: ..."), can be cited from the prose with ``{numref}`` by its ``name``, and is a plain
HTML table that the page's column contains. A configuration becomes a collapsed dropdown of
``field | value`` rows instead of a dataclass repr.

Numbers are formatted by the caller (the tables of :mod:`qatlib.report.tables` already hold
strings); this module only lays them out.

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

import re
from typing import Any

from IPython.display import Markdown

__all__ = ["table", "config_dropdown"]

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
    """A field value for a table cell: pipes escaped, long sequences shortened."""
    if isinstance(value, (list, tuple)) and len(value) > 8:
        value = f"{len(value)} values: {value[0]}, {value[1]}, …, {value[-1]}"
    text = str(value)
    return text.replace("|", "\\|")
