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
from qatlib.report.figures import training  # noqa: E402


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


def test_error_curves_and_derivative_panels(params_and_quantizers):
    _, quantizers = params_and_quantizers
    history = {"steps": [0, 5, 10], "sgd": {"baseline": {"E_bar": [0.0, 0.001, 0.002]}}}
    paper = {"sgd": {"baseline": {"E_bar": 0.00515}}}
    figure = training.error_curves(history, paper)
    lines = figure.axes[0].lines
    np.testing.assert_allclose(lines[0].get_ydata(), [0.0, 0.1, 0.2])
    np.testing.assert_allclose(lines[1].get_ydata(), [0.515])
    with pytest.raises(ValueError):
        training.error_curves({"steps": []})
    layers = {"conv": quantizers["conv"]["kernel"], "dense": quantizers["dense"]["kernel"]}
    figure = training.derivative_per_layer(layers, comparison.q_hat(), qatlib.estimators.PWL())
    assert len(figure.axes) == 2 and "α = 0.6" in figure.axes[0].get_title()
