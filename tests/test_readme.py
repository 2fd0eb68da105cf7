"""The README's code blocks run as written (the library in five lines, the recipe in a user's loop)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_the_readme_has_the_blocks_it_promises():
    blocks = _python_blocks()
    assert len(blocks) >= 2
    assert any("ste_recipe" in block for block in blocks)


@pytest.mark.parametrize("index", range(len(_python_blocks())))
def test_readme_block_runs(index):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(_python_blocks()[index], f"README block {index}", "exec"), {})  # noqa: S102
    if "ste_recipe" in _python_blocks()[index]:
        recipe, unadjusted = (float(v) for v in re.findall(r"\d\.\de[-+]\d\d", out.getvalue()))
        assert 0 <= recipe < 1e-4  # STE-net stays within 1e-4 of the range of M(Q̂-net) ...
        assert unadjusted > 100 * recipe  # ... and M and α are what keep it there
