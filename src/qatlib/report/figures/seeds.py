"""Figures of verdicts over seeds: a claim's ratio against run length, with its 95% interval.

>>> import matplotlib
>>> matplotlib.use("Agg")
>>> from qatlib.report import claims
>>> series = {"paper preset": {100: claims.ratio_interval([1.0, 1.2, 1.1]), 1000: claims.ratio_interval([3.0, 2.8, 3.3])}}
>>> fig = ratio_against_length({"A, SGD + momentum": series}, threshold=2.0, paper=0.90)
>>> len(fig.axes)
1
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from qatlib.report.claims import Interval
from qatlib.report.figures import style

__all__ = ["ratio_against_length"]

_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red")


@style.styled
def ratio_against_length(
    panels: Mapping[str, Mapping[str, Mapping[int, Interval]]], *, threshold: float, paper: float | None = None
) -> Figure:
    """One panel per claim (``{title: {series label: {steps: interval}}}``): each series' geometric
    mean over seeds against the run length (log x), its 95% interval as error bars; the claim's
    threshold as a dotted line and the paper's printed value as a dashed one."""
    if not panels:
        raise ValueError("no panels to draw")
    fig, axes = style.figure(1, len(panels), height=3.3, sharey=True)
    labels: dict[str, str] = {}
    for ax, (title, series) in zip(axes[0], panels.items(), strict=True):
        for index, (label, points) in enumerate(series.items()):
            steps = np.array(sorted(points), dtype=float)
            shift = 1.0 + 0.04 * (index - (len(series) - 1) / 2)  # side by side, not on top of each other
            means = np.array([points[s].mean for s in sorted(points)])
            low = np.array([points[s].low if points[s].n > 1 else points[s].mean for s in sorted(points)])
            high = np.array([points[s].high if points[s].n > 1 else points[s].mean for s in sorted(points)])
            color = _COLORS[index % len(_COLORS)]
            ax.errorbar(steps * shift, means, yerr=[means - low, high - means], color=color, marker="o", ms=5, lw=1.4, capsize=3)
            labels[label] = color
        ax.axhline(threshold, color="0.3", ls=":", lw=1.2)
        if paper is not None:
            ax.axhline(paper, color="0.3", ls="--", lw=1.2)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training steps")
        ax.set_title(title)
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel(r"$\bar E$ baseline / $\bar E$ lr-tweak")
    handles = [Line2D([], [], color=color, marker="o", lw=1.4, label=label) for label, color in labels.items()]
    handles.append(Line2D([], [], color="0.3", ls=":", lw=1.2, label=f"threshold {threshold:g}"))
    if paper is not None:
        handles.append(Line2D([], [], color="0.3", ls="--", lw=1.2, label=f"paper, {paper:.2f}"))
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 2))
    return fig
