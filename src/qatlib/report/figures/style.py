"""One look for every figure of the book: drawn at the page's width, its text as large as the prose,
and a PNG that says how large its text is and where each label sits.

The book's text column is about 676 CSS px wide and its body text 16 px (sphinx-book-theme at a
1280 px window). An image wider than the column is scaled down to it, so a figure ``w`` inches wide
shows ``s`` pt text at ``s · 676 / (72 · w)`` px whatever its dpi. At :data:`PAGE_WIDTH` = 6.5 in
and :data:`FONT_SIZE` = 11 pt every label, tick, legend and title is ≈ 16 px, the size of the body
text; a narrower figure shows it larger. A figure function is decorated with :func:`styled` (its
titles, legends and annotations are made under :data:`RC`) and makes its figure with :func:`figure`
(which also fixes the tick labels, drawn later); :func:`readable` is what the tests check every
figure of the book against, and :func:`overlapping_texts` finds labels drawn on top of each other.

A figure made by :func:`figure` writes, into every PNG it is saved as (``savefig`` or a notebook's
inline display), a ``qatlib:texts`` text chunk: JSON with the dpi and, for each visible text, its
kind, size in points and box in the PNG's pixels (:func:`read_png_texts` reads it back), so a test
of the built site can compute how large each figure's text is as a browser renders it.

>>> import io, matplotlib
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
>>> round(css_px(FONT_SIZE, fig), 1)   # text height in CSS px at the column's width
15.9
>>> _ = axes[0, 0].set_xticks([0.5, 0.52], ["a long label", "another one"])
>>> [(a.text, b.text) for a, b in overlapping_texts(fig)]
[('a long label', 'another one')]
>>> png = io.BytesIO(); fig.savefig(png, format="png")
>>> texts = read_png_texts(png)
>>> texts["dpi"], min(t["pt"] for t in texts["texts"]), len(overlapping_texts(texts))
(110.0, 6.0, 1)
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import IO, Any, TypeVar

import numpy as np
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

__all__ = [
    "PAGE_WIDTH",
    "COLUMN_PX",
    "FONT_SIZE",
    "RC",
    "PNG_KEY",
    "TextBox",
    "BookFigure",
    "styled",
    "figure",
    "css_px",
    "readable",
    "text_boxes",
    "overlapping_texts",
    "read_png_texts",
]

#: Width of a full-width figure, inches.
PAGE_WIDTH = 6.5
#: The text column's width in CSS px that a full-width figure is scaled to.
COLUMN_PX = 676
#: Every text element's size in points at PAGE_WIDTH (≈ the 16 px body text).
FONT_SIZE = 11.0
#: The PNG text chunk that holds a figure's texts (:func:`read_png_texts`).
PNG_KEY = "qatlib:texts"
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
        import matplotlib

        with matplotlib.rc_context(RC):
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@dataclass(frozen=True)
class TextBox:
    """A visible text of a drawn figure: ``kind`` (``"xtick"``, ``"ytick"`` or ``"text"``), the axes
    it belongs to (its index in ``fig.axes``, -1 for the figure's own texts), its size in points and
    its box ``(x0, y0, x1, y1)`` in the drawn image's pixels."""

    text: str
    kind: str
    axes: int
    pt: float
    box: tuple[float, float, float, float]


class BookFigure(Figure):
    """A figure of the book: shown in a notebook (and glued into a page) as the PNG its canvas
    writes, cropped to its content, whether or not pyplot's inline backend is active."""

    def _repr_png_(self) -> bytes:
        import io

        buffer = io.BytesIO()
        self.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()


class _BookCanvas(FigureCanvasAgg):
    """An Agg canvas whose PNGs carry the figure's :class:`TextBox` list under :data:`PNG_KEY`."""

    def print_png(self, filename_or_obj: Any, *, metadata: dict[str, str] | None = None,
                  pil_kwargs: dict[str, Any] | None = None, **_print_figure: Any) -> None:
        # ``_print_figure``: dpi, facecolor, ... that print_figure has already applied to the figure.
        # Draw first (as the PNG will be drawn: same dpi, same bbox_inches crop), then read the boxes.
        self.draw()
        texts = {"dpi": float(self.figure.dpi), "texts": [asdict(box) for box in text_boxes(self.figure, draw=False)]}
        metadata = {**(metadata or {}), PNG_KEY: json.dumps(texts, ensure_ascii=True)}
        super().print_png(filename_or_obj, metadata=metadata, pil_kwargs=pil_kwargs)


def figure(nrows: int = 1, ncols: int = 1, *, height: float, width: float = PAGE_WIDTH, **subplots: Any):
    """A grid of axes at the page's width (or narrower) with :data:`RC`; axes always a 2-D array.

    ``height`` is in inches; a panel grid wider than one row of three should wrap onto more rows
    rather than shrink its text. The figure is a :class:`BookFigure`, not registered with pyplot (no
    global state: nothing shows it unless it is returned and displayed), and its PNGs carry its
    text boxes.
    """
    import matplotlib

    if not 0 < width <= PAGE_WIDTH:
        raise ValueError(f"width must be in (0, {PAGE_WIDTH}] inches (the page's width), got {width}")
    if height <= 0:
        raise ValueError(f"height must be positive inches, got {height}")
    with matplotlib.rc_context(RC):
        fig = BookFigure(figsize=(width, height))
        _BookCanvas(fig)
        axes = fig.subplots(nrows, ncols, squeeze=False, **subplots)
    for ax in axes.flat:
        ax.tick_params(labelsize=FONT_SIZE)  # tick labels are created at draw time, after RC is gone
    return fig, axes


def css_px(points: float, fig: Figure) -> float:
    """Height in CSS px of ``points``-pt text once ``fig`` is shown at the column's width (or natural size)."""
    width_in = fig.get_size_inches()[0]
    natural_px = width_in * fig.dpi
    scale = min(1.0, COLUMN_PX / natural_px)
    return float(points * fig.dpi / 72 * scale)


def _drawn_ticks(axis: Axis) -> list[Any]:
    """The ticks of ``axis`` that a draw shows: those inside the view interval (what matplotlib's own
    draw keeps; ticks outside it keep stale labels)."""
    low, high = sorted(axis.get_view_interval())
    transform = axis.get_transform()
    low_t, high_t = sorted(transform.transform([low, high]))
    slack = 1e-10 * max(abs(high_t - low_t), 1.0)
    ticks = [*axis.get_major_ticks(len(axis.get_majorticklocs())), *axis.get_minor_ticks(len(axis.get_minorticklocs()))]
    return [tick for tick in ticks if low_t - slack <= transform.transform([tick.get_loc()])[0] <= high_t + slack]


def text_boxes(fig: Figure, *, draw: bool = True) -> list[TextBox]:
    """Every visible, non-empty text of ``fig`` as drawn: tick labels (of the ticks in view), titles,
    axis labels, legends, annotations and the figure's own texts. ``draw=False`` when the figure has
    just been drawn (the boxes are those of that draw)."""
    if draw:
        fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes: list[TextBox] = []
    ticks: set[int] = set()

    def add(text: Text, kind: str, axes: int) -> None:
        if not (text.get_visible() and text.get_text().strip()):
            return
        extent = text.get_window_extent(renderer)
        if extent.width <= 0 or extent.height <= 0:
            return
        boxes.append(TextBox(text.get_text(), kind, axes, float(text.get_fontsize()),
                             tuple(round(float(v), 2) for v in (extent.x0, extent.y0, extent.x1, extent.y1))))

    for index, ax in enumerate(fig.axes):
        if not ax.get_visible():
            continue
        for kind, axis in (("xtick", ax.xaxis), ("ytick", ax.yaxis)):
            every = [*axis.get_major_ticks(len(axis.get_majorticklocs())), *axis.get_minor_ticks(len(axis.get_minorticklocs()))]
            ticks.update(id(label) for tick in every for label in (tick.label1, tick.label2))
            if not axis.get_visible():
                continue
            for tick in _drawn_ticks(axis):
                for label in (tick.label1, tick.label2):
                    add(label, kind, index)
    owner = {id(artist): index for index, ax in enumerate(fig.axes) for artist in ax.findobj(Text)}
    for text in fig.findobj(Text):
        if id(text) in ticks:
            continue
        parent = text.axes
        if parent is not None and not parent.get_visible():
            continue
        add(text, "text", owner.get(id(text), -1))
    return boxes


def _as_boxes(source: Figure | dict[str, Any] | Iterable[TextBox]) -> list[TextBox]:
    if isinstance(source, Figure):
        return text_boxes(source)
    if isinstance(source, dict):
        return [TextBox(**{**entry, "box": tuple(entry["box"])}) for entry in source["texts"]]
    return list(source)


def overlapping_texts(source: Figure | dict[str, Any] | Iterable[TextBox], *, tolerance: float = 0.5) -> list[tuple[TextBox, TextBox]]:
    """Pairs of texts drawn on top of each other (boxes that share more than ``tolerance`` px each
    way), from a figure, the dict :func:`read_png_texts` returns, or a list of :class:`TextBox`.

    Every pair counts (two tick labels of one axis, a tick label under a legend, a title on a
    label); a clean figure has none."""
    boxes = _as_boxes(source)
    found = []
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            width = min(a.box[2], b.box[2]) - max(a.box[0], b.box[0])
            height = min(a.box[3], b.box[3]) - max(a.box[1], b.box[1])
            if width > tolerance and height > tolerance:
                found.append((a, b))
    return found


def readable(fig: Figure, minimum_px: float = 15.0) -> bool:
    """True when every visible non-empty text of ``fig`` is at least ``minimum_px`` CSS px tall
    at the column's width (titles, labels, ticks, legends, annotations)."""
    sizes = [box.pt for box in text_boxes(fig)]
    return bool(sizes) and bool(css_px(float(np.min(sizes)), fig) >= minimum_px)


def read_png_texts(png: str | IO[bytes] | Any) -> dict[str, Any]:
    """The ``{"dpi", "texts"}`` a figure of :func:`figure` wrote into its PNG (a path or a binary
    file); ``texts`` lists :class:`TextBox` fields. A PNG without them is an error that says so."""
    from PIL import Image

    if hasattr(png, "seek"):
        png.seek(0)
    with Image.open(png) as image:
        chunks: Sequence[Any] = getattr(image, "text", {}) or {}
        if PNG_KEY not in chunks:
            raise ValueError(f"{getattr(png, 'name', png)!s} has no {PNG_KEY!r} chunk: it was not drawn by "
                             "qatlib.report.figures.style.figure")
        return json.loads(chunks[PNG_KEY])
