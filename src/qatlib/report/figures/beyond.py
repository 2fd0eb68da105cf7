"""Figures of the chapter "When is the STE enough?" (:mod:`qatlib.report.beyond` computes their numbers)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from qatlib.experiments.records import E_BAR
from qatlib.report.beyond.analysis import EXPERIMENT_LABELS, ratios
from qatlib.report.figures.style import figure, styled

__all__ = ["COLOURS", "learning_rate", "momentum", "ratio_bars", "shape"]

SHORT_LABELS = {"baseline": "recipe", "lr_tweak": "1.01η", "unadjusted": "no M, α", "diagnostic": "diagnostic", "slope_alpha": "α on slope"}
COLOURS = {"baseline": "C0", "lr_tweak": "C1", "unadjusted": "C2", "diagnostic": "C3", "slope_alpha": "C4"}


def _band(ax: Any, frame: Any, x_scale: float, colour: str, label: str, column: str = E_BAR, marker: str = "o") -> None:
    stats = frame.groupby("x")[column].agg(["mean", "min", "max"]).reset_index()
    ax.plot(stats.x / x_scale, stats["mean"], marker=marker, color=colour, label=label, lw=1.5, ms=4)
    ax.fill_between(stats.x / x_scale, stats["min"], stats["max"], color=colour, alpha=0.2, lw=0)


@styled
def learning_rate(frame: Any, series: Sequence[str], titles: dict[str, str], reference: dict[str, float]):
    """Ē against η/η_ref (log-log) per optimizer, mean over seeds with the min-max band, plus the
    ratios Ē(baseline)/Ē(lr-tweak) and Ē(unadjusted)/Ē(baseline) beneath."""
    fig, axes = figure(2, len(series), height=5.2, sharex=True)
    for column, name in enumerate(series):
        part = frame[frame.series == name]
        ax = axes[0, column]
        for experiment in ("baseline", "lr_tweak", "unadjusted"):
            sub = part[part.experiment == experiment]
            if len(sub):
                _band(ax, sub, reference[name], COLOURS[experiment], EXPERIMENT_LABELS[experiment])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(titles[name])
        ax.axvline(1.0, color="0.6", lw=0.8, ls=":")
        if column == 0:
            ax.set_ylabel("Ē after training")
        ax = axes[1, column]
        for numerator, denominator, colour, label in (
            ("baseline", "lr_tweak", "k", "recipe / 1.01η"),
            ("unadjusted", "baseline", COLOURS["unadjusted"], "no M, α / recipe"),
        ):
            if not {numerator, denominator} <= set(part.experiment):
                continue
            stats = ratios(part, numerator, denominator).groupby("x")["ratio"].agg(["mean", "min", "max"]).reset_index()
            ax.plot(stats.x / reference[name], stats["mean"], marker="o", color=colour, lw=1.5, ms=4, label=label)
            ax.fill_between(stats.x / reference[name], stats["min"], stats["max"], color=colour, alpha=0.15, lw=0)
        ax.axhline(1.0, color="C3", lw=0.8, ls="--")
        ax.axvline(1.0, color="0.6", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("η / the reference η")
        if column == 0:
            ax.set_ylabel("ratio of Ē")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    ratio_handles, ratio_labels = axes[1, 0].get_legend_handles_labels()
    fig.legend(handles + ratio_handles, labels + ratio_labels, loc="outside lower center", ncol=2, frameon=False)
    return fig


@styled
def momentum(frame: Any, history: dict[str, Any]):
    """Left: Ē(baseline)/Ē(lr-tweak) and Ē(diagnostic)/Ē(lr-tweak) against β, each seed a dot, the
    mean a bar. Right: Ē along training at one β for the recipe, the diagnostic and the lr-tweak
    (mean over seeds). One key for both panels, below them (clear of every data point)."""
    fig, axes = figure(1, 2, height=3.4)
    left, right = axes[0]
    betas = sorted(set(frame.x))
    positions = {beta: index for index, beta in enumerate(betas)}
    for offset, experiment in ((-0.12, "baseline"), (0.12, "diagnostic")):
        ratio = ratios(frame, experiment, "lr_tweak")
        stats = ratio.groupby("x")["ratio"].mean()
        xs = [positions[b] + offset for b in ratio.x]
        left.scatter(xs, ratio.ratio, color=COLOURS[experiment], s=14, alpha=0.7)
        left.plot([positions[b] + offset for b in stats.index], stats.values, color=COLOURS[experiment], marker="_", ms=16, mew=2, ls="none")
    left.axhline(1.0, color="k", lw=0.8, ls="--")
    left.set_yscale("log")
    left.set_xticks(range(len(betas)), [f"{b:g}" for b in betas])
    left.set_xlabel("momentum β")
    left.set_ylabel("Ē / Ē(1.01η)")
    steps = np.asarray(history["steps"])
    for experiment in ("baseline", "diagnostic", "lr_tweak"):
        values = np.asarray(history[experiment]).mean(axis=0)
        right.plot(steps[steps > 0], values[steps > 0], color=COLOURS[experiment], marker=".", label=SHORT_LABELS[experiment])
    right.set_yscale("log")
    right.set_xlabel("step")
    right.set_ylabel(f"Ē(t) at β = {history['x']:g}")
    fig.legend(*right.get_legend_handles_labels(), loc="outside lower center", ncols=3, frameon=False)
    return fig


@styled
def ratio_bars(groups: Sequence[str], values: dict[str, Sequence[float]], errors: dict[str, Sequence[float]], *, ylabel: str,
               xlabel: str = "", floor: float | None = None, height: float = 2.8, colours: dict[str, str] | None = None):
    """Grouped bars (log scale) of ratios with their sd over seeds; a dashed line at 1. ``values``
    maps a series' legend label to one value per group (a key below the axes when there are two or
    more series); ``colours`` maps a label to its colour (else :data:`COLOURS`, else the cycle).
    Values of 0 (identical nets) are drawn at ``floor`` and marked. A group label may hold a line
    break; one too long for its slot overlaps its neighbour (:func:`~qatlib.report.figures.style.overlapping_texts`)."""
    colours = colours or {}
    fig, axes = figure(1, 1, height=height)
    ax = axes[0, 0]
    width = 0.8 / max(len(values), 1)
    for index, (label, series) in enumerate(values.items()):
        xs = np.arange(len(groups)) + (index - (len(values) - 1) / 2) * width
        shown = [floor if (floor is not None and v == 0) else v for v in series]
        ax.bar(xs, shown, width, yerr=errors.get(label), label=label, color=colours.get(label, COLOURS.get(label, f"C{index}")), capsize=2)
        for x, v in zip(xs, series, strict=True):
            if floor is not None and v == 0:
                ax.annotate("0", (x, floor), ha="center", va="bottom")
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    ax.set_yscale("log")
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel(ylabel)
    if xlabel:
        ax.set_xlabel(xlabel)
    if len(values) > 1:
        fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=min(len(values), 2), frameon=False)
    return fig


@styled
def shape(sweep: Any, controls: dict[str, tuple[float, float]]):
    """Left: Ē(baseline)/Ē(lr-tweak) against HTGE sharpness (mean ± sd over seeds). Right, on the
    same ratio axis: the controls, each at its own name (they have no place on the sharpness axis)."""
    fig, axes = figure(1, 2, height=3.0, sharey=True, gridspec_kw={"width_ratios": [2, max(len(controls), 1)]})
    ax, side = axes[0]
    ax.errorbar(sweep.x, sweep["mean"], yerr=sweep["std"], marker="o", color="C0", capsize=2)
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"HTGE sharpness (× $1/w_{\max}$)")
    ax.set_ylabel("Ē(recipe) / Ē(1.01η)")
    ax.set_title("threshold-centred HTGE")
    names = list(controls)
    for index, name in enumerate(names):
        mean, std = controls[name]
        side.errorbar([index], [mean], yerr=[std], marker="s", color=f"C{index + 1}", capsize=2, ls="none")
    side.axhline(1.0, color="k", lw=0.8, ls="--")
    side.set_xlim(-0.5, len(names) - 0.5)
    side.set_xticks(range(len(names)), [name.replace(", ", ",\n", 1) for name in names])
    side.set_title("controls")
    side.tick_params(axis="y", labelleft=False)
    return fig
