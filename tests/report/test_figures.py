"""Tests for qatlib.report.figures.training: the figures are drawn from the given objects."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import qatlib  # noqa: E402
from qatlib import models  # noqa: E402
from qatlib.experiments import comparison  # noqa: E402
from qatlib.report.figures import style, training  # noqa: E402


@pytest.fixture(scope="module")
def params_and_quantizers():
    params = {
        "conv": {"kernel": jax.random.uniform(jax.random.key(0), (3, 3, 1, 8), minval=-0.8, maxval=0.8)},
        "dense": {"kernel": jax.random.uniform(jax.random.key(1), (24, 4), minval=-0.5, maxval=0.5)},
    }
    return params, models.quantizer_tree(params, bits=2)


def test_normalized_weights_divide_by_each_layers_w_max(params_and_quantizers):
    params, quantizers = params_and_quantizers
    x, y = training.normalized_weights(params, params, quantizers)
    assert len(x) == 72 + 96 and np.array_equal(x, y)
    assert np.abs(x).max() <= 1.0
    x_small, _ = training.normalized_weights(params, params, quantizers, max_points=10)
    assert len(x_small) == 10


def test_alignment_scatter_draws_M_for_the_baseline_panel(params_and_quantizers):
    params, quantizers = params_and_quantizers
    q_hat = comparison.q_hat()
    mapped = qatlib.weight_map(params, quantizers, q_hat)
    figure = training.alignment_scatter([("a", params, mapped, q_hat), ("b", params, params, None)], quantizers)
    axes = figure.axes
    assert len(axes) == 2
    curve = axes[0].lines[0]
    q = quantizers["conv"]["kernel"]
    w_max = q.representable_range[1]
    expected = np.asarray(qatlib.weight_map(jnp.asarray(curve.get_xdata() * w_max, jnp.float32), q, q_hat)) / w_max
    np.testing.assert_allclose(curve.get_ydata(), expected, atol=1e-6)
    np.testing.assert_allclose(axes[1].lines[0].get_ydata(), axes[1].lines[0].get_xdata())
    with pytest.raises(ValueError):
        training.alignment_scatter([], quantizers)


def _history():
    return {
        "steps": [0, 100, 200, 300, 400],
        "sgd": {name: {"E_bar": [0.0, 0.001, 0.002, 0.003, 0.004]} for name in ("baseline", "lr_tweak", "unadjusted")},
        "adam": {name: {"E_bar": [0.0, 0.002, 0.004, 0.006, 0.008]} for name in ("baseline", "lr_tweak")},
    }


PAPER = {"sgd": {"baseline": {"E_bar": 0.00515}, "lr_tweak": {"E_bar": 0.00572}}, "adam": {"baseline": {"E_bar": 0.0281}}}


def test_error_curves_draw_ours_and_the_papers_value_as_a_horizontal_line():
    history = {"steps": [0, 5, 10], "sgd": {"baseline": {"E_bar": [0.0, 0.001, 0.002]}}}
    figure = training.error_curves(history, {"sgd": {"baseline": {"E_bar": 0.00515}}})
    ours, theirs = figure.axes[0].lines
    np.testing.assert_allclose(ours.get_ydata(), [np.nan, 0.1, 0.2])  # the zero is left out of the log axis
    np.testing.assert_allclose(ours.get_xdata(), [0, 5, 10])
    with pytest.raises(ValueError):
        training.error_curves({"steps": []})


def test_the_papers_value_is_never_drawn_at_one_of_our_steps():
    """The paper measured at T = 1,000; a run of 400 steps must not show that value at step 400."""
    figure = training.error_curves(_history(), PAPER)
    paper_lines = [line for ax in figure.axes for line in ax.lines if line.get_linestyle() == "--"]
    assert len(paper_lines) == 3
    for line in paper_lines:
        # a horizontal reference line spans the axes (x in axes coordinates 0..1), at the paper's value
        assert list(line.get_xdata()) == [0, 1] and line.get_ydata()[0] == line.get_ydata()[1]
    values = sorted(line.get_ydata()[0] for line in paper_lines)
    np.testing.assert_allclose(values, [0.515, 0.572, 2.81])
    markers = [line for ax in figure.axes for line in ax.lines if line.get_marker() not in (None, "None", "")]
    assert markers == []
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert "paper, T = 1,000" in legend


def test_derivative_panels_wrap_and_name_alpha(params_and_quantizers):
    _, quantizers = params_and_quantizers
    layers = {f"layer {i}": quantizers["conv"]["kernel"] for i in range(4)}
    figure = training.derivative_per_layer(layers, comparison.q_hat(), qatlib.estimators.PWL())
    visible = [ax for ax in figure.axes if ax.get_visible()]
    assert len(visible) == 4 and "= 0.6" in visible[0].get_title() and r"\alpha" in visible[0].get_title()
    assert len({round(ax.get_position().y0, 3) for ax in visible}) == 2  # two rows of two


def _every_figure(params_and_quantizers):
    params, quantizers = params_and_quantizers
    q_hat = comparison.q_hat()
    mapped = qatlib.weight_map(params, quantizers, q_hat)
    layers = {"conv_0/kernel": quantizers["conv"]["kernel"], "dense/kernel": quantizers["dense"]["kernel"],
              "conv_1/kernel": quantizers["conv"]["kernel"], "conv_2/kernel": quantizers["conv"]["kernel"]}
    return {
        "alignment_scatter": training.alignment_scatter(
            [("(a) baseline (SGD)", params, mapped, q_hat), ("(b) unadjusted (SGD)", params, params, None)], quantizers
        ),
        "alignment_scatter, one panel": training.alignment_scatter([("baseline (Adam)", params, params, None)], quantizers),
        "error_curves": training.error_curves(_history(), PAPER),
        "error_curves, no paper": training.error_curves({"steps": [0, 1], "adam": {"baseline": {"E_bar": [0, 1e-4]}}}),
        "derivative_per_layer": training.derivative_per_layer(layers, q_hat, qatlib.estimators.PWL()),
    }


def test_every_figure_is_readable_at_page_width(params_and_quantizers):
    for name, figure in _every_figure(params_and_quantizers).items():
        assert figure.get_size_inches()[0] <= style.PAGE_WIDTH, name
        assert style.readable(figure), name
