"""Figures of the training chapters (Section 6, Appendix J): weight alignment, E^(t), Q-hat' per layer.

* :func:`alignment_scatter` -- Figure 3: each quantized weight of Q-hat-net against the same weight
  of STE-net at the end of training, in units of its layer's w_max (so all layers share one plot),
  with the curve the theory predicts (M for the SGD baseline, the identity otherwise) and the bin
  boundaries.
* :func:`error_curves` -- E_bar^(t) along training for every experiment, beside the paper's end
  values (the paper reports only t = T).
* :func:`derivative_per_layer` -- Q-hat'(w) of every layer in weight units, with STE-net's estimator.

All functions return a matplotlib ``Figure`` and never read files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

import qatlib
from qatlib.quantizers import is_quantizer_or_none

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


def alignment_scatter(
    panels: Sequence[tuple[str, PyTree, PyTree, Any]],
    quantizers: PyTree,
    *,
    max_points: int = 20_000,
) -> Figure:
    """Figure 3: one panel per ``(title, q_net_params, ste_net_params, estimator_or_None)``.

    With an estimator the predicted relation is w_STE = M(w_Q-hat) (Eq. 4, SGD baseline), drawn as
    a curve; without one it is the identity. Axes are in units of each layer's w_max; dotted lines
    are the bin boundaries of the (shared, scale-free) quantizer.
    """
    if not panels:
        raise ValueError("need at least one panel")
    reference = _reference_quantizer(quantizers)
    w_max = reference.representable_range[1]
    boundaries = np.asarray(reference.boundary_points()) / w_max
    figure, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.4), squeeze=False)
    grid = np.linspace(-1.0, 1.0, 801)
    for ax, (title, params_a, params_b, estimator) in zip(axes[0], panels, strict=True):
        x, y = normalized_weights(params_a, params_b, quantizers, max_points)
        ax.scatter(x, y, s=1.5, alpha=0.25, color="tab:blue", rasterized=True, label="weights")
        if estimator is None:
            ax.plot(grid, grid, color="tab:red", lw=1.0, label="identity")
        else:
            mapped = np.asarray(qatlib.weight_map(jnp.asarray(grid * w_max, jnp.float32), reference, estimator)) / w_max
            ax.plot(grid, mapped, color="tab:red", lw=1.0, label="M(w)")
        for b in boundaries:
            ax.axvline(b, color="0.6", lw=0.6, ls=":")
            ax.axhline(b, color="0.6", lw=0.6, ls=":")
        ax.set_xlabel("Q̂-net weight / w_max")
        ax.set_ylabel("STE-net weight / w_max")
        ax.set_title(title, fontsize=10)
        ax.set_xlim(-1.25, 1.25)
        ax.set_ylim(-1.25, 1.25)
        ax.set_aspect("equal")
        ax.legend(loc="upper left", fontsize=8, markerscale=6)
    figure.tight_layout()
    return figure


def error_curves(
    history: Mapping[str, Any],
    paper: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None,
) -> Figure:
    """E_bar^(t) (percent of the range) along training, one panel per optimizer.

    ``history`` is ``{"steps": [...], optimizer: {experiment: {"E_bar": [...]}}}`` (as logged by
    :func:`qatlib.experiments.mnist.run_mnist`); ``paper`` is the paper's Table 4 for the same model, whose
    end values are drawn as markers at the last step.
    """
    steps = np.asarray(history["steps"])
    optimizers = [key for key in ("sgd", "adam") if key in history]
    if not optimizers:
        raise ValueError("history holds no optimizer")
    figure, axes = plt.subplots(1, len(optimizers), figsize=(5.2 * len(optimizers), 3.6), squeeze=False)
    colors = {"baseline": "tab:blue", "lr_tweak": "tab:green", "unadjusted": "tab:red"}
    for ax, optimizer in zip(axes[0], optimizers, strict=True):
        for experiment, values in history[optimizer].items():
            color = colors.get(experiment)
            ax.plot(steps, 100 * np.asarray(values["E_bar"]), color=color, label=f"{experiment} (ours)")
            if paper and experiment in paper.get(optimizer, {}):
                ax.plot(
                    [steps[-1]], [100 * paper[optimizer][experiment]["E_bar"]], marker="*", ms=11, ls="none",
                    color=color, markeredgecolor="k", label=f"{experiment} (paper, at its T = 1,000)",
                )
        ax.set_title({"sgd": "SGD + momentum", "adam": "Adam"}[optimizer], fontsize=10)
        ax.set_xlabel("step t")
        ax.set_ylabel("Ē⁽ᵗ⁾ (% of the representable range)")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def derivative_per_layer(
    quantizers: Mapping[str, Any],
    estimator: Any,
    partner: Any = None,
    *,
    points: int = 1201,
) -> Figure:
    """Q-hat'(w) of each layer's quantizer over 1.2x its representable range, in weight units.

    ``quantizers`` maps a layer name to its quantizer; ``partner`` (STE-net's estimator) is drawn
    dashed. The title of each panel gives w_max, the sharpness k in weight units and alpha.
    """
    if not quantizers:
        raise ValueError("need at least one layer")
    figure, axes = plt.subplots(1, len(quantizers), figsize=(3.3 * len(quantizers), 3.0), squeeze=False)
    for ax, (name, quantizer) in zip(axes[0], quantizers.items(), strict=True):
        w_max = quantizer.representable_range[1]
        w = np.linspace(-1.2 * w_max, 1.2 * w_max, points)
        slope = np.asarray(estimator.derivative(jnp.asarray(w, jnp.float32), quantizer))
        ax.plot(w, slope, color="tab:blue", label="Q̂′")
        if partner is not None:
            ax.plot(
                w, np.asarray(partner.derivative(jnp.asarray(w, jnp.float32), quantizer)), color="tab:orange", ls="--",
                label="STE-net",
            )
        for b in quantizer.boundary_points():
            ax.axvline(b, color="0.6", lw=0.6, ls=":")
        sharpness = getattr(estimator, "sharpness_in_weight_units", None)
        k_text = f", k = {sharpness(quantizer):.3g}" if callable(sharpness) else ""
        ax.set_title(f"{name}\nw_max = {w_max:.3g}{k_text}, α = {qatlib.alpha(quantizer, estimator):.3f}", fontsize=8)
        ax.set_xlabel("w")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("Q̂′(w)")
    axes[0][0].legend(fontsize=7)
    figure.tight_layout()
    return figure
