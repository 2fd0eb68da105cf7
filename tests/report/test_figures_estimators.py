"""Tests for qatlib.report.figures.estimators: every figure is readable at the page's width."""

from __future__ import annotations

import inspect

import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import qatlib  # noqa: E402
from qatlib import estimators  # noqa: E402
from qatlib.report.figures import estimators as estimator_plots  # noqa: E402
from qatlib.report.figures import style  # noqa: E402

Q = qatlib.UniformQuantizer.from_bits(bits=2, w_max=1.0)
HTGE = estimators.HTGE(sharpness=5.5, scale="range", normalize=True)


def _mirror_inputs():
    steps = np.arange(30)
    w_q = np.linspace(-0.9, 0.9, steps.size)
    m_q = np.asarray(qatlib.weight_map(jnp.asarray(w_q), Q, HTGE))
    return steps, w_q, m_q + 0.01, m_q, Q, HTGE


def _curves(n: int = 4):
    etas = np.logspace(-4, -1, 5)
    return [(f"run {i}", etas, etas**2 * (i + 1), 2.0 - 0.1 * i) for i in range(n)]


#: Every figure function of the module, called on small inputs.
FIGURES = {
    "estimator_panel": lambda: estimator_plots.estimator_panel(
        [
            ("STE", estimators.STE(), Q),
            ("PWL", estimators.PWL(), Q),
            ("MAD", estimators.MAD(), Q),
            ("HTGE", HTGE, Q),
            ("EDE (binary)", estimators.EDE(t=1.0), qatlib.BinaryQuantizer(scale=1.0)),
        ],
        grid_points=41,
    ),
    "mirror_figure": lambda: estimator_plots.mirror_figure(*_mirror_inputs()),
    "bound_figure": lambda: estimator_plots.bound_figure(
        np.linspace(-1e-4, 1e-4, 60).reshape(20, 3), np.full((20, 3), 2e-4), title="SGD"
    ),
    "scaling_figure": lambda: estimator_plots.scaling_figure(_curves()),
    "alignment_figure": lambda: estimator_plots.alignment_figure(
        [(label, np.geomspace(1e-6, 1e-3, 50)) for label, *_ in _curves()]
    ),
}


def test_every_figure_function_is_covered():
    functions = {
        name
        for name, obj in vars(estimator_plots).items()
        if inspect.isfunction(obj) and obj.__module__ == estimator_plots.__name__ and name.endswith(("_figure", "_panel"))
    }
    assert functions == set(FIGURES)


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_figure_is_readable_at_page_width(name):
    fig = FIGURES[name]()
    try:
        assert fig.get_size_inches()[0] <= style.PAGE_WIDTH
        assert style.readable(fig), f"{name} has text smaller than the prose at the column's width"
    finally:
        plt.close(fig)


def test_estimator_panel_wraps_after_three_columns():
    fig = FIGURES["estimator_panel"]()
    try:
        tops = [ax for ax in fig.axes if ax.get_title()]
        assert [ax.get_title().splitlines()[0] for ax in tops] == ["STE", "PWL", "MAD", "HTGE", "EDE (binary)"]
        columns = {round(ax.get_position().x0, 3) for ax in fig.axes}
        assert len(columns) == 3 and len(fig.axes) == 10
    finally:
        plt.close(fig)
