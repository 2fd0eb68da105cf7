"""Tests for qatlib.report.figures.beyond: every figure of "When is the STE enough?" is readable at the
page's width, has no text drawn on top of other text, and puts each value where its axis says."""

from __future__ import annotations

import inspect

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from qatlib.experiments.records import SweepRecord  # noqa: E402
from qatlib.report import beyond as analysis  # noqa: E402
from qatlib.report.figures import beyond as figures  # noqa: E402
from qatlib.report.figures import style  # noqa: E402

REFERENCE = {"sgd": 1e-2, "momentum": 1e-3, "adam": 1e-4}


def _runs(section, series, xs, experiments, seeds=(0, 1, 2)):
    """Synthetic runs: Ē of each experiment a power of x (index + 1), a little noise per seed."""
    rng = np.random.default_rng(0)
    return [
        SweepRecord.from_json({
            "section": section, "series": name, "x": x, "seed": seed, "spec": {}, "nets": {"q_net": {"val_acc": 0.9}},
            "log_steps": [0, 10, 20, 30],
            "pairs": {experiment: {"E_bar": float(x ** (index + 1) * (1 + 0.1 * rng.random())), "E_bar_conv": 1e-3,
                                   "agreement": 0.99, "E_t": [0.0, 1e-4, 2e-4, 3e-4]}
                      for index, experiment in enumerate(experiments)}})
        for name in series for x in xs for seed in seeds
    ]


def _learning_rate():
    runs = _runs("learning_rate", ("sgd", "momentum", "adam"), (1e-5, 1e-4, 1e-3, 1e-2), ("baseline", "lr_tweak", "unadjusted"))
    frame = analysis.pairs_frame(runs)
    return figures.learning_rate(frame, ["sgd", "momentum", "adam"], {"sgd": "SGD", "momentum": "SGD + momentum 0.9", "adam": "Adam"}, REFERENCE)


def _momentum():
    runs = _runs("momentum", ("sgd",), (0.0, 0.5, 0.9, 0.99), ("baseline", "diagnostic", "lr_tweak"))
    frame = analysis.pairs_frame(runs)
    return figures.momentum(frame, analysis.pair_history(runs, "momentum", 0.9, ["baseline", "diagnostic", "lr_tweak"]))


def _kernels():
    groups = [f"{optimizer}\ndense {kind}" for optimizer in ("Adam", "SGD, β = 0.9") for kind in ("float", "quantized")]
    values = {"all quantized kernels": [1.0, 2.0, 3.0, 4.0], "convolutions": [1.5, 2.5, 3.5, 4.5]}
    return figures.ratio_bars(groups, values, {k: [0.1] * 4 for k in values}, ylabel="Ē(recipe) / Ē(1.01η)")


def _optimizers():
    return figures.ratio_bars(["Nesterov", "AdamW", "signSGD", "Lion"], {"baseline": [3.0, 1.0, 0.0, 0.8]},
                              {"baseline": [0.3, 0.1, 0.0, 0.1]}, ylabel="Ē(recipe) / Ē(1.01η)", floor=1e-4)


def _shape():
    sweep = pd.DataFrame({"x": [1.0, 5.5, 20.0, 80.0], "mean": [0.5, 1.0, 2.0, 4.0], "std": [0.1, 0.1, 0.2, 0.4]})
    controls = {"HTGE, level-centred": (3.0, 0.3), "HTGE, 1 bit": (1.5, 0.2), "EDE, 1 bit (convolutions)": (8.0, 1.0)}
    return figures.shape(sweep, controls)


FIGURES = {"learning_rate": _learning_rate, "momentum": _momentum, "ratio_bars": _kernels, "shape": _shape}


def test_every_figure_function_is_covered():
    functions = {name for name, obj in vars(figures).items()
                 if inspect.isfunction(obj) and obj.__module__ == figures.__name__ and not name.startswith("_")}
    assert functions == set(FIGURES)


@pytest.mark.parametrize("make", [_learning_rate, _momentum, _kernels, _optimizers, _shape],
                         ids=["learning_rate", "momentum", "kernels", "optimizers", "shape"])
def test_figure_is_readable_and_no_text_overlaps(make):
    fig = make()
    assert fig.get_size_inches()[0] <= style.PAGE_WIDTH
    assert style.readable(fig), "text smaller than the prose at the column's width"
    overlaps = [(a.text, b.text) for a, b in style.overlapping_texts(fig)]
    assert overlaps == []


def test_one_line_group_labels_of_the_kernels_figure_would_overlap():
    """The check above can fail: the kernels figure's labels on one line collide (the bug it guards)."""
    groups = [f"{optimizer}, dense {kind}" for optimizer in ("Adam", "SGD + momentum") for kind in ("float", "quantized")]
    fig = figures.ratio_bars(groups, {"a": [1.0] * 4, "b": [2.0] * 4}, {}, ylabel="ratio")
    assert {kind for pair in style.overlapping_texts(fig) for kind in (pair[0].kind, pair[1].kind)} == {"xtick"}


def test_shape_controls_sit_on_their_own_axis_not_on_the_sharpness_axis():
    fig = _shape()
    sweep_axes, control_axes = fig.axes[:2]
    assert sweep_axes.get_xscale() == "log" and control_axes.get_xscale() == "linear"
    labels = [label.get_text() for label in control_axes.get_xticklabels()]
    assert labels == ["HTGE,\nlevel-centred", "HTGE,\n1 bit", "EDE,\n1 bit (convolutions)"]
    assert control_axes.get_shared_y_axes().joined(sweep_axes, control_axes)


def test_momentum_key_is_outside_both_panels():
    fig = _momentum()
    assert all(ax.get_legend() is None for ax in fig.axes) and len(fig.legends) == 1
    fig.canvas.draw()
    key = fig.legends[0].get_window_extent()
    assert all(key.y1 <= ax.get_window_extent().y0 for ax in fig.axes)
