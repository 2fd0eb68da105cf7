"""Cell constructors shared by the chapter builders in tools/ (outputs cleared, tags for papermill/myst-nb)."""

from __future__ import annotations

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell


def md(text: str) -> nbformat.NotebookNode:
    """A markdown cell from an indented triple-quoted block."""
    return new_markdown_cell(text.strip("\n"))


def code(text: str, *tags: str) -> nbformat.NotebookNode:
    """A code cell, optionally tagged (``parameters``, ``remove-input``, ...)."""
    cell = new_code_cell(text.strip("\n"))
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell
