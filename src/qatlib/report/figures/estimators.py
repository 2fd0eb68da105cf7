"""Figures of the Intuition and Theorems chapters: estimators, the mirror M, and the bounds.

Every curve is computed from :mod:`qatlib` objects: Q from the quantizer, Q̂' from the estimator,
Q̂ by integrating Q̂', α and M from :mod:`qatlib.mirror`, trajectories from
:mod:`qatlib.experiments.twins`. Functions return a :class:`matplotlib.figure.Figure` and never call
``plt.show``. Each is drawn by :mod:`qatlib.report.figures.style`: at most the page's width, its
text as large as the prose, a row of panels wrapping after three.

>>> import matplotlib
>>> matplotlib.use("Agg")
>>> from qatlib.quantizers import UniformQuantizer
>>> from qatlib import estimators
>>> q = UniformQuantizer.from_bits(2, 1.0)
>>> w, qhat = surrogate(q, estimators.STE(), -1.5, 1.5, 301)
>>> bool(np.allclose(qhat, w))   # the STE's Q̂ is the identity
True
>>> htge = estimators.HTGE(5.5, scale="range", normalize=True)
>>> w, qhat = surrogate(q, htge, -1.0, 1.0, 3001)
>>> round(float(np.interp(2 / 3, w, qhat) - np.interp(0.0, w, qhat)), 4)   # rises by Δ across a bin
0.6667
>>> fig = estimator_panel([("STE", estimators.STE(), q), ("HTGE", htge, q)], grid_points=101)
>>> len(fig.axes), fig.axes[1].get_title().splitlines()
(4, ['HTGE', 'α = 0.61'])
>>> style.readable(fig), fig.get_size_inches().tolist()
(True, [6.5, 3.4])
>>> plt.close(fig)
>>> fig = estimator_panel([(name, estimators.STE(), q) for name in "abcde"], grid_points=11)
>>> len(fig.axes), [ax.get_title().splitlines()[0] for ax in fig.axes[:3]]   # five columns wrap after three
(10, ['a', 'b', 'c'])
>>> plt.close(fig)
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

import qatlib
from qatlib.estimators import Estimator
from qatlib.quantizers import UniformQuantizer
from qatlib.report.figures import style

__all__ = [
    "surrogate",
    "estimator_panel",
    "mirror_figure",
    "bound_figure",
    "scaling_figure",
    "alignment_figure",
    "LABELS",
]

#: Display names (Figure 1's order) for estimator names.
LABELS = {"ste": "STE", "pwl": "PWL", "mad": "MAD", "htge": "HTGE", "dsq": "DSQ", "ede": "EDE"}
_Q_NET, _STE_NET, _MIRROR = "tab:red", "tab:blue", "tab:purple"
#: Panels per row before a row of panels wraps.
_PER_ROW = 3


def _legend_columns(labels: Sequence[str]) -> int:
    """Two legend columns below a page-wide plot when the labels are short enough to sit side by
    side at the prose's text size, else one."""
    return 2 if len(labels) > 2 and max(map(len, labels)) <= 30 else 1


def _derivative(q: UniformQuantizer, est: Estimator, w: np.ndarray) -> np.ndarray:
    with jax.enable_x64(True):
        return np.asarray(est.derivative(jnp.asarray(w, jnp.float64), q), np.float64)


def surrogate(q: UniformQuantizer, est: Estimator, lo: float, hi: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(w, Q̂(w)) on ``n`` points of [lo, hi]: Q̂ = ∫Q̂' (trapezoid rule), pinned so that Q̂(b) = b at
    the boundary point b nearest the middle of the representable range (Q̂ crosses Q there)."""
    if not (lo < hi and n >= 3):
        raise ValueError(f"need lo < hi and n >= 3, got lo={lo!r}, hi={hi!r}, n={n!r}")
    w = np.linspace(lo, hi, int(n))
    d = _derivative(q, est, w)
    qhat = np.concatenate([[0.0], np.cumsum((d[1:] + d[:-1]) / 2 * np.diff(w))])
    points = q.boundary_points()
    middle = sum(q.representable_range) / 2
    b = float(points[np.argmin(np.abs(points - middle))])
    return w, qhat - np.interp(b, w, qhat) + b


@style.styled
def estimator_panel(
    entries: Sequence[tuple[str, Estimator, UniformQuantizer]],
    *,
    grid_points: int = 801,
    margin: float = 0.6,
) -> Figure:
    """Figure 1 recomputed: for each (label, Q̂, Q) one column with Q, Q̂ (top) and Q̂' (below it),
    and α (Eq. 4) in the title; more than three estimators wrap onto a second pair of rows."""
    if not entries:
        raise ValueError("estimator_panel needs at least one (label, estimator, quantizer) entry")
    ncols = min(len(entries), _PER_ROW)
    groups = -(-len(entries) // ncols)
    fig, axes = style.figure(2 * groups, ncols, height=3.4 * groups)
    for index in range(len(entries), groups * ncols):  # empty slots of the last row
        for ax in axes[2 * (index // ncols) : 2 * (index // ncols) + 2, index % ncols]:
            ax.remove()
    for index, (label, est, q) in enumerate(entries):
        group, col = divmod(index, ncols)
        top, bottom = axes[2 * group, col], axes[2 * group + 1, col]
        bottom.sharex(top)
        top.tick_params(labelbottom=False)
        w_lo, w_hi = q.representable_range
        half = (w_hi - w_lo) / 2
        lo, hi = w_lo - margin * half, w_hi + margin * half
        w, qhat = surrogate(q, est, lo, hi, grid_points)
        top.step(w, np.asarray(q(jnp.asarray(w))), where="mid", color="0.55", lw=1.2, label="$Q$")
        top.plot(w, qhat, color=_Q_NET, lw=1.8, label=r"$\hat Q$")
        top.set_title(f"{label}\nα = {qatlib.alpha(q, est):.3g}")
        bottom.plot(w, _derivative(q, est, w), color=_Q_NET, lw=1.8)
        bottom.set_ylim(bottom=0)
        for ax in (top, bottom):
            for b in q.boundary_points():
                ax.axvline(b, color="0.85", lw=0.8, zorder=0)
            ax.axvspan(lo, w_lo, color="0.95", zorder=-1)
            ax.axvspan(w_hi, hi, color="0.95", zorder=-1)
        bottom.set_xlabel("$w$")
        if col == 0:
            top.set_ylabel(r"$Q,\ \hat Q$")
            bottom.set_ylabel(r"$\hat Q'$")
    axes[0, 0].legend(loc="upper left")
    return fig


@style.styled
def mirror_figure(
    steps: np.ndarray,
    w_q: np.ndarray,
    w_s: np.ndarray,
    m_q: np.ndarray,
    q: UniformQuantizer,
    est: Estimator,
) -> Figure:
    """The funhouse mirror (Figure 2) from a real run: (a) a Q̂-net weight w_Q̂⁽ᵗ⁾, its STE-net twin
    w_STE⁽ᵗ⁾ and the mirror image M(w_Q̂⁽ᵗ⁾) against the step, with the bin boundaries; (b) M itself,
    which fixes every boundary point, with the run's (w_Q̂, w_STE) pairs on it. The panels are
    stacked, each at the page's width."""
    fig, axes = style.figure(2, 1, height=7.2, gridspec_kw={"height_ratios": [1, 1.1]})
    left, right = axes[0, 0], axes[1, 0]
    lo, hi = q.representable_range
    boundaries = q.boundary_points()
    for b in boundaries:
        left.axhline(b, color="0.6", lw=0.8, ls="--", zorder=0)
    left.plot(steps, w_q, color=_Q_NET, lw=1.6, label=r"$\hat Q$-net weight $w_{\hat Q}$")
    # STE-net's weight as a broad pale band and the mirror image as a thin dark dashed line on top:
    # the two coincide, so the line must run visibly inside the band rather than hide under it.
    left.plot(steps, w_s, color=_STE_NET, lw=6.0, alpha=0.35, solid_capstyle="butt", label=r"STE-net weight $w_{STE}$")
    left.plot(steps, m_q, color=_MIRROR, lw=1.3, ls=(0, (4, 2)), label=r"mirror image $M(w_{\hat Q})$")
    for trajectory, color in ((w_q, _Q_NET), (w_s, _STE_NET)):
        levels = np.asarray(q(jnp.asarray(trajectory)))
        crossing = np.nonzero(levels[1:] != levels[:-1])[0] + 1
        left.plot(steps[crossing], trajectory[crossing], "o", ms=7, mfc="none", mew=1.5, color=color)
    left.set_xlabel("step $t$")
    left.set_ylabel("weight")
    left.set_title("(a) the two weights cross boundaries together")
    left.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
    w = np.linspace(lo, hi, 801)
    with jax.enable_x64(True):
        m = np.asarray(qatlib.weight_map(jnp.asarray(w, jnp.float64), q, est))
    right.plot(w, w, color="0.7", lw=1.0, label="identity")
    right.plot(w, m, color=_MIRROR, lw=1.8, label="$M(w)$")
    right.plot(boundaries, boundaries, "ks", ms=5, label="boundary points")
    right.plot(w_q, w_s, ".", color=_STE_NET, ms=4, label=r"$(w_{\hat Q}^{(t)}, w_{STE}^{(t)})$")
    right.set_xlabel(r"$\hat Q$-net weight")
    right.set_ylabel("STE-net weight")
    right.set_title(f"(b) the mirror $M$, α = {qatlib.alpha(q, est):.3g}")
    right.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
    return fig


def _symlog_ticks(values: np.ndarray, threshold: float, most: int = 3) -> list[float]:
    """0 and at most ``most`` powers of ten on each side that the values reach, none inside ten times
    the linear threshold (where their labels would sit on top of the 0)."""
    ticks = [0.0]
    for sign in (1.0, -1.0):
        reach = float(np.max(sign * values, initial=0.0))
        if reach <= 10 * threshold:
            continue
        decades = np.arange(np.ceil(np.log10(10 * threshold)), np.floor(np.log10(reach)) + 1)
        step = max(1, int(np.ceil(len(decades) / most)))
        ticks += [sign * 10.0 ** d for d in decades[::-1][::step]]
    return sorted(ticks)


@style.styled
def bound_figure(lhs: np.ndarray, rhs: np.ndarray, *, labels: Sequence[str] | None = None, title: str = "") -> Figure:
    """Per-step E⁽ᵗ⁺¹⁾ − E⁽ᵗ⁾ (dots) against the bound's right-hand side (line) for a few weights,
    one panel each (``labels`` names them; "weight 1", ... by default), with one key for all: the
    bound holds where every dot of a panel stays below that panel's line."""
    lhs, rhs = np.atleast_2d(lhs), np.atleast_2d(rhs)
    if lhs.shape != rhs.shape:
        raise ValueError(f"lhs and rhs must have the same shape, got {lhs.shape} and {rhs.shape}")
    count = lhs.shape[1]
    labels = [f"weight {j + 1}" for j in range(count)] if labels is None else list(labels)
    if len(labels) != count:
        raise ValueError(f"need one label per weight ({count}), got {len(labels)}")
    ncols = min(count, 2)
    nrows = -(-count // ncols)
    fig, axes = style.figure(nrows, ncols, height=2.3 * nrows + 0.6, sharex=True)
    t = np.arange(lhs.shape[0])
    positive = np.abs(rhs[rhs > 0])
    threshold = max(1e-12, float(np.percentile(positive, 5))) if positive.size else 1e-12
    for j, ax in enumerate(axes.flat):
        if j >= count:
            ax.set_visible(False)
            continue
        ax.plot(t, rhs[:, j], color="0.25", lw=1.2, label="bound: right-hand side")
        ax.plot(t, lhs[:, j], ".", color=_Q_NET, ms=5, label=r"growth $E^{(t+1)} - E^{(t)}$")
        ax.set_yscale("symlog", linthresh=threshold)
        ax.set_yticks(_symlog_ticks(np.concatenate([lhs[:, j], rhs[:, j]]), threshold))
        ax.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_title(labels[j])
        if j % ncols == 0:
            ax.set_ylabel("per step")
        if j >= count - ncols:
            ax.set_xlabel("step $t$")
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=2, markerscale=2)
    if title:
        fig.suptitle(title)
    return fig


@style.styled
def scaling_figure(curves: Sequence[tuple[str, np.ndarray, np.ndarray, float | None]]) -> Figure:
    """Ē against η on log-log axes; each curve is (label, etas, E_bar, fitted slope or None)."""
    if not curves:
        raise ValueError("scaling_figure needs at least one curve")
    fig, axes = style.figure(1, 1, height=4.6)
    ax = axes[0, 0]
    for label, etas, values, slope in curves:
        text = label if slope is None else f"{label} (slope {slope:.2f})"
        ax.loglog(etas, values, "o-", ms=5, label=text)
    ax.set_xlabel(r"learning rate $\eta$")
    ax.set_ylabel(r"$\bar E$ (fraction of range)")
    ax.grid(True, which="major", color="0.9")
    fig.legend(loc="outside lower center", ncols=_legend_columns(ax.get_legend_handles_labels()[1]))
    return fig


@style.styled
def alignment_figure(curves: Sequence[tuple[str, np.ndarray]], *, ylabel: str = "mean $E^{(t)}$ / range") -> Figure:
    """Mean alignment error against the step for labelled runs (log y axis)."""
    if not curves:
        raise ValueError("alignment_figure needs at least one curve")
    fig, axes = style.figure(1, 1, height=4.4)
    ax = axes[0, 0]
    top = 0.0
    for label, values in curves:
        values = np.asarray(values, np.float64)
        top = max(top, float(np.nanmax(values)) if values.size else 0.0)
        ax.plot(np.arange(values.size), np.where(values > 0, values, np.nan), lw=1.6, label=label)
    ax.set_yscale("log")
    if top > 0:  # the first steps can be ~1e-20 (rounding); show the last five decades
        ax.set_ylim(bottom=top * 1e-5, top=top * 2)
    ax.set_xlabel("step $t$")
    ax.set_ylabel(ylabel)
    fig.legend(loc="outside lower center", ncols=_legend_columns([label for label, _ in curves]))
    return fig
