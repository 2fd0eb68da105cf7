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


def _papermill_command() -> str:
    bash = "".join(re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.DOTALL))
    lines = [line.split("  #")[0] for line in bash.splitlines() if "papermill" in line]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.slow
def test_readme_papermill_command_runs_as_written(tmp_path):
    """The README's papermill line (MyST source -> jupytext -> papermill) executes the chapter; only
    the output path is redirected to a temporary folder."""
    import json
    import subprocess

    command = _papermill_command()
    assert " out.ipynb " in command and "book/mnist.md" in command
    command = command.replace(" out.ipynb ", f" {tmp_path / 'out.ipynb'} ")
    root = README.parent
    subprocess.run(command, shell=True, check=True, cwd=root, capture_output=True, timeout=600)
    executed = json.loads((tmp_path / "out.ipynb").read_text())
    injected = [c for c in executed["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and "steps = 50" in "".join(injected[0]["source"])
    assert all(not any(o.get("output_type") == "error" for o in c.get("outputs", [])) for c in executed["cells"])
