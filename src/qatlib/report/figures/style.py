"""One look for every figure of the book: drawn at the page's width, its text as large as the prose.

The book's text column is about 676 CSS px wide and its body text 16 px (sphinx-book-theme at a
1280 px window). An image wider than the column is scaled down to it, so a figure ``w`` inches wide
shows ``s`` pt text at ``s · 676 / (72 · w)`` px whatever its dpi. At :data:`PAGE_WIDTH` = 6.5 in
and :data:`FONT_SIZE` = 11 pt every label, tick, legend and title is ≈ 16 px, the size of the body
text; a narrower figure shows it larger. A figure function is decorated with :func:`styled` (its
titles, legends and annotations are made under :data:`RC`) and makes its figure with :func:`figure`
(which also fixes the tick labels, drawn later); :func:`readable` is what the tests check every
figure of the book against.

>>> import matplotlib
>>> matplotlib.use("Agg")
>>> @styled
... def two_panels():
...     return figure(1, 2, height=3.0)
>>> fig, axes = two_panels()
>>> fig.get_size_inches().tolist(), axes.shape
([6.5, 3.0], (1, 2))
>>> _ = axes[0, 0].set_title("readable")
>>> readable(fig)
True
>>> _ = axes[0, 1].set_title("too small", fontsize=6)
>>> readable(fig)
False
>>> round(css_px(FONT_SIZE, fig), 1)   # text height in CSS px at the column width
15.9
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

__all__ = ["PAGE_WIDTH", "COLUMN_PX", "FONT_SIZE", "RC", "styled", "figure", "css_px", "readable"]

#: Width of a full-width figure, inches.
PAGE_WIDTH = 6.5
#: The text column's width in CSS px that a full-width figure is scaled to.
COLUMN_PX = 676
#: Every text element's size in points at PAGE_WIDTH (≈ the 16 px body text).
FONT_SIZE = 11.0
#: Matplotlib settings applied while a figure is drawn (sizes in points).
RC: dict[str, Any] = {
    "font.size": FONT_SIZE,
    "axes.titlesize": FONT_SIZE,
    "axes.labelsize": FONT_SIZE,
    "xtick.labelsize": FONT_SIZE,
    "ytick.labelsize": FONT_SIZE,
    "legend.fontsize": FONT_SIZE,
    "legend.title_fontsize": FONT_SIZE,
    "figure.titlesize": FONT_SIZE,
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "figure.constrained_layout.use": True,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


F = TypeVar("F", bound=Callable[..., Any])


def styled(function: F) -> F:
    """Run a figure function under :data:`RC`, so every text it creates has the book's size."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with plt.rc_context(RC):
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def figure(nrows: int = 1, ncols: int = 1, *, height: float, width: float = PAGE_WIDTH, **subplots: Any):
    """``plt.subplots`` at the page's width (or narrower) with :data:`RC`; axes always a 2-D array.

    ``height`` is in inches; a panel grid wider than one row of three should wrap onto more rows
    rather than shrink its text.
    """
    if not 0 < width <= PAGE_WIDTH:
        raise ValueError(f"width must be in (0, {PAGE_WIDTH}] inches (the page's width), got {width}")
    if height <= 0:
        raise ValueError(f"height must be positive inches, got {height}")
    with plt.rc_context(RC):
        fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False, **subplots)
    for ax in axes.flat:
        ax.tick_params(labelsize=FONT_SIZE)  # tick labels are created at draw time, after RC is gone
    return fig, axes


def css_px(points: float, fig: Figure) -> float:
    """Height in CSS px of ``points``-pt text once ``fig`` is shown at the column's width (or natural size)."""
    width_in = fig.get_size_inches()[0]
    natural_px = width_in * fig.dpi
    scale = min(1.0, COLUMN_PX / natural_px)
    return float(points * fig.dpi / 72 * scale)


def readable(fig: Figure, minimum_px: float = 15.0) -> bool:
    """True when every visible non-empty text of ``fig`` is at least ``minimum_px`` CSS px tall
    at the column's width (titles, labels, ticks, legends, annotations)."""
    fig.canvas.draw()  # realise tick labels and constrained layout
    sizes = [
        text.get_fontsize()
        for text in fig.findobj(lambda artist: hasattr(artist, "get_text") and hasattr(artist, "get_fontsize"))
        if text.get_visible() and text.get_text().strip()
    ]
    return bool(sizes) and bool(css_px(float(np.min(sizes)), fig) >= minimum_px)
