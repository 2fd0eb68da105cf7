"""Figures of the training chapters (Section 6, Appendix J): weight alignment, E^(t), Q-hat' per layer.

* :func:`alignment_scatter` -- Figure 3: each quantized weight of Q-hat-net against the same weight
  of STE-net at the end of training, in units of its layer's w_max (so all layers share one plot),
  with the curve the theory predicts (M for the SGD baseline, the identity otherwise) and the bin
  boundaries.
* :func:`error_curves` -- E_bar^(t) along training for every experiment, beside the paper's end
  values (the paper reports only t = T = 1,000), drawn as horizontal reference lines rather than
  at a step where the paper measured nothing.
* :func:`derivative_per_layer` -- Q-hat'(w) of every layer in weight units, with STE-net's estimator.

All functions return a matplotlib ``Figure`` at most :data:`~qatlib.report.figures.style.PAGE_WIDTH`
wide, drawn under :func:`~qatlib.report.figures.style.styled` so that every text is as large as the
prose, and never read files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

import qatlib
from qatlib.experiments.records import E_BAR
from qatlib.quantizers import is_quantizer_or_none
from qatlib.report.figures import style

__all__ = ["normalized_weights", "alignment_scatter", "error_curves", "derivative_per_layer"]

PyTree = Any


def normalized_weights(
    params_a: PyTree, params_b: PyTree, quantizers: PyTree, max_points: int = 20_000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """All quantized weights of two nets divided by their layer's w_max, subsampled to ``max_points``."""
    from qatlib.quantizers import quantized_leaves

    flat_b = {path: leaf for path, leaf, _ in quantized_leaves(params_b, quantizers)}
    xs, ys = [], []
    for path, leaf, quantizer in quantized_leaves(params_a, quantizers):
        w_max = quantizer.representable_range[1]
        xs.append(np.asarray(leaf).ravel() / w_max)
        ys.append(np.asarray(flat_b[path]).ravel() / w_max)
    x, y = np.concatenate(xs), np.concatenate(ys)
    if len(x) > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(len(x), max_points, replace=False))
        x, y = x[keep], y[keep]
    return x, y


def _reference_quantizer(quantizers: PyTree) -> Any:
    """The first layer's quantizer: with a scale-free Q-hat every layer is the same in units of w_max."""
    leaves = [q for q in _leaves(quantizers) if q is not None]
    if not leaves:
        raise ValueError("no quantized layers")
    return leaves[0]


def _leaves(tree: PyTree) -> list[Any]:
    import jax

    return jax.tree.leaves(tree, is_leaf=is_quantizer_or_none)


@style.styled
def alignment_scatter(
    panels: Sequence[tuple[str, PyTree, PyTree, Any]],
    quantizers: PyTree,
    *,
    max_points: int = 20_000,
) -> Figure:
    """Figure 3: one panel per ``(title, q_net_params, ste_net_params, estimator_or_None)``, at most two a row.

    With an estimator the predicted relation is w_STE = M(w_Q-hat) (Eq. 4, SGD baseline), drawn as
    a curve; without one it is the identity. Axes are in units of each layer's w_max; dotted lines
    are the bin boundaries of the (shared, scale-free) quantizer. Titles should be short (a panel is
    about 3 inches wide).
    """
    if not panels:
        raise ValueError("need at least one panel")
    reference = _reference_quantizer(quantizers)
    w_max = reference.representable_range[1]
    boundaries = np.asarray(reference.boundary_points()) / w_max
    ncols = min(2, len(panels))
    nrows = -(-len(panels) // ncols)
    width = style.PAGE_WIDTH if ncols == 2 else 3.8
    figure, axes = style.figure(nrows, ncols, height=3.5 * nrows, width=width)
    grid = np.linspace(-1.0, 1.0, 801)
    for ax, (title, params_a, params_b, estimator) in zip(axes.flat, panels, strict=False):
        x, y = normalized_weights(params_a, params_b, quantizers, max_points)
        ax.scatter(x, y, s=1.5, alpha=0.25, color="tab:blue", rasterized=True, label="weights")
        if estimator is None:
            ax.plot(grid, grid, color="tab:red", lw=1.2, label="identity")
        else:
            mapped = np.asarray(qatlib.weight_map(jnp.asarray(grid * w_max, jnp.float32), reference, estimator)) / w_max
            ax.plot(grid, mapped, color="tab:red", lw=1.2, label="$M(w)$")
        for b in boundaries:
            ax.axvline(b, color="0.6", lw=0.6, ls=":")
            ax.axhline(b, color="0.6", lw=0.6, ls=":")
        ax.set_xlabel(r"$\hat Q$-net weight / $w_{\max}$")
        ax.set_ylabel(r"STE-net weight / $w_{\max}$")
        ax.set_title(title)
        ax.set_xlim(-1.25, 1.25)
        ax.set_ylim(-1.25, 1.25)
        ax.set_aspect("equal")
        ax.legend(loc="upper left", markerscale=6, handlelength=1.2, borderaxespad=0.2)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    return figure


#: Colour of each experiment in :func:`error_curves`.
COLORS = {"baseline": "tab:blue", "lr_tweak": "tab:green", "unadjusted": "tab:red",
          "baseline_raw_state": "tab:purple"}
_NAMES = {"baseline": "baseline", "lr_tweak": "lr-tweak", "unadjusted": "unadjusted",
          "baseline_raw_state": "baseline, unmapped state"}


@style.styled
def error_curves(
    history: Mapping[str, Any],
    paper: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None,
    *,
    paper_label: str = "paper, T = 1,000",
    log_scale: bool = True,
) -> Figure:
    """E_bar^(t) (percent of the range) along training, one panel per optimizer, side by side.

    ``history`` is ``{"steps": [...], optimizer: {experiment: {E_BAR: [...]}}}`` (as logged by
    :func:`qatlib.experiments.mnist.run_mnist`); ``paper`` is the paper's Table 4 for the same model.
    The paper measured Ē only at its last step T (1,000 for MNIST), which a shorter run never
    reaches, so its values are horizontal dashed lines in the experiment's colour (``paper_label``
    in the legend), not points at our last step. With ``log_scale`` the y-axis is logarithmic (the
    errors span decades) and the zero at the branch point or at step 0 is left out.
    """
    steps = np.asarray(history["steps"])
    optimizers = [key for key in ("sgd", "adam") if key in history]
    if not optimizers:
        raise ValueError("history holds no optimizer")
    figure, axes = style.figure(1, len(optimizers), height=3.4, sharey=len(optimizers) > 1)
    shown: dict[str, str] = {}
    for ax, optimizer in zip(axes[0], optimizers, strict=True):
        for experiment, values in history[optimizer].items():
            color = COLORS.get(experiment)
            y = 100 * np.asarray(values[E_BAR], dtype=float)
            if log_scale:
                y = np.where(y > 0, y, np.nan)
            ax.plot(steps, y, color=color, lw=1.6)
            shown[experiment] = color
            if paper and experiment in paper.get(optimizer, {}):
                ax.axhline(100 * paper[optimizer][experiment][E_BAR], color=color, lw=1.2, ls="--")
        ax.set_title({"sgd": "SGD + momentum", "adam": "Adam"}[optimizer])
        ax.set_xlabel("step $t$")
        if log_scale:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(r"$\bar E^{(t)}$ (% of range)")
    handles = [Line2D([], [], color=color, lw=1.6, label=_NAMES.get(name, name)) for name, color in shown.items()]
    if paper:
        handles.append(Line2D([], [], color="0.3", lw=1.2, ls="--", label=paper_label))
    figure.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 3))
    return figure


@style.styled
def derivative_per_layer(
    quantizers: Mapping[str, Any],
    estimator: Any,
    partner: Any = None,
    *,
    points: int = 1201,
) -> Figure:
    """Q-hat'(w) of each layer's quantizer over 1.2x its representable range, in weight units.

    ``quantizers`` maps a layer name to its quantizer; ``partner`` (STE-net's estimator) is drawn
    dashed. Panels wrap onto rows of two; each title gives the layer, w_max and alpha.
    """
    if not quantizers:
        raise ValueError("need at least one layer")
    ncols = min(2, len(quantizers))
    nrows = -(-len(quantizers) // ncols)
    figure, axes = style.figure(nrows, ncols, height=2.6 * nrows, width=style.PAGE_WIDTH if ncols == 2 else 3.8)
    for ax, (name, quantizer) in zip(axes.flat, quantizers.items(), strict=False):
        w_max = quantizer.representable_range[1]
        w = np.linspace(-1.2 * w_max, 1.2 * w_max, points)
        slope = np.asarray(estimator.derivative(jnp.asarray(w, jnp.float32), quantizer))
        ax.plot(w, slope, color="tab:blue", label=r"$\hat Q'$")
        if partner is not None:
            ax.plot(
                w, np.asarray(partner.derivative(jnp.asarray(w, jnp.float32), quantizer)), color="tab:orange", ls="--",
                label="STE-net",
            )
        for b in quantizer.boundary_points():
            ax.axvline(b, color="0.6", lw=0.6, ls=":")
        ax.set_title(f"{name}: $w_{{\\max}}$ = {w_max:.3g}, $\\alpha$ = {qatlib.alpha(quantizer, estimator):.3f}")
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("$w$")
    for ax in axes[:, 0]:
        ax.set_ylabel(r"$\hat Q'(w)$")
    for ax in list(axes.flat)[len(quantizers):]:
        ax.set_visible(False)
    figure.legend(handles=axes[0][0].get_lines()[: 2 if partner is not None else 1], loc="outside lower center",
                  ncols=2)
    return figure
