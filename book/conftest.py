"""nbval over the book's chapters, which are MyST Markdown notebooks (``book/<chapter>.md``).

nbval collects only ``.ipynb`` files; this collector hands it each chapter read through jupytext,
the same reader ``python -m qatlib run`` uses, so the tested notebook is the built one. A Markdown
file without a jupytext header (the introduction, the bibliography) is prose and is not collected.
"""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import jupytext
from nbval import plugin


def is_notebook(path: Path) -> bool:
    """A MyST Markdown notebook: front matter that names a jupytext format and a kernel."""
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        return False
    front = text.split("\n---", 1)[0]
    return "jupytext:" in front and "kernelspec:" in front


class MystNotebook(plugin.IPyNbFile):
    """nbval's notebook collector, reading the notebook from its MyST source."""

    def collect(self):
        def read(path, as_version):
            return jupytext.read(path, as_version=as_version)

        with mock.patch.object(plugin.nbformat, "read", read):
            yield from super().collect()


def pytest_collect_file(file_path: Path, parent):
    option = parent.config.option
    if (option.nbval or option.nbval_lax) and file_path.suffix == ".md" and is_notebook(file_path):
        return MystNotebook.from_parent(parent, path=file_path)
    return None
