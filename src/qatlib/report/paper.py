"""The paper's own numbers (Tables 3-5, Appendix H) as printed, for chapters to show beside ours.

>>> tables = paper_tables()
>>> tables["table4"]["mnist"]["sgd"]["baseline"]["E_bar"]
0.00515
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

__all__ = ["paper_tables"]


@functools.cache
def _load() -> str:
    return resources.files("qatlib.report").joinpath("paper_tables.json").read_text()


def paper_tables() -> dict[str, Any]:
    """Return a fresh copy of the printed tables (fractions, not percentages)."""
    return json.loads(_load())
