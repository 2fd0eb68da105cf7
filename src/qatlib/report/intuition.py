"""The Intuition chapter's report: paper Figure 1 recomputed (:func:`figure1`), the funhouse-mirror
run on MNIST with when its twins first change bins (:func:`mirror`: the numbers the prose glues, the
figure and the table), and the properties the story relies on; the chapter itself is prose with
short calls.

>>> import numpy as np
>>> from qatlib.experiments.twins import CrossingLags
>>> stats = lag_stats(CrossingLags(lags=np.array([0, 0, 1, -2, 3]), only_q=2, only_s=1))
>>> stats["both crossed"], stats["same step (%)"], stats["within 2 steps (%)"], stats["max lag (steps)"]
(5, 40.0, 80.0, 3)
>>> lag_column(stats)
['5', '40.0', '60.0', '80.0', '3', '3']
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np

from qatlib.report import markup
from qatlib.report.seeds import Page

if TYPE_CHECKING:
    from qatlib.experiments.twins import CrossingLags

__all__ = ["LAG_ROWS", "lag_stats", "lag_column", "lag_table", "figure1", "mirror"]

#: The rows of :func:`lag_table`, one per entry of :func:`lag_stats` in its order.
LAG_ROWS = (
    "pairs where both twins changed bins",
    "first change at the same step (%)",
    "within 1 step (%)",
    "within 2 steps (%)",
    "largest lag (steps)",
    "changed bins in one net only",
)


def lag_stats(result: CrossingLags) -> dict[str, int | float]:
    """How far apart the twins first changed bins: the number of weights where both did
    (``'both crossed'``), the percentage of those whose lags are 0, at most 1 and at most 2 steps
    (``'same step (%)'``, ``'within 1 step (%)'``, ``'within 2 steps (%)'``, in percent, not as
    fractions; 0 when no weight crossed), the largest lag (``'max lag (steps)'``) and the weights
    that changed bins in one net only (``'only one twin crossed'``)."""
    lag = np.abs(result.lags)
    n = max(lag.size, 1)
    return {
        "both crossed": int(lag.size),
        "same step (%)": float(100 * np.sum(lag == 0) / n),
        "within 1 step (%)": float(100 * np.sum(lag <= 1) / n),
        "within 2 steps (%)": float(100 * np.sum(lag <= 2) / n),
        "max lag (steps)": int(lag.max()) if lag.size else 0,
        "only one twin crossed": result.only_q + result.only_s,
    }


def lag_column(stats: dict[str, int | float]) -> list[str]:
    """One column of :func:`lag_table`: :func:`lag_stats`'s values as table cells, counts with
    thousands separated (:func:`qatlib.report.markup.integer`), percentages with one decimal and no
    percent sign (the row says "(%)")."""
    return [
        markup.integer(stats["both crossed"]),
        f"{stats['same step (%)']:.1f}",
        f"{stats['within 1 step (%)']:.1f}",
        f"{stats['within 2 steps (%)']:.1f}",
        markup.integer(stats["max lag (steps)"]),
        markup.integer(stats["only one twin crossed"]),
    ]


def lag_table(reinitialised: dict[str, int | float], unadjusted: dict[str, int | float]) -> Any:
    """The table of first bin changes (rows :data:`LAG_ROWS`, index ``first bin change``): one
    column for the pair whose STE-net is re-initialised by M, one for the unadjusted pair, each
    from :func:`lag_stats`; ready for :func:`qatlib.report.markup.table`."""
    import pandas as pd

    return pd.DataFrame(
        {"re-initialised by $M$": lag_column(reinitialised), "unadjusted": lag_column(unadjusted)},
        index=pd.Index(list(LAG_ROWS), name="first bin change"),
    )


_LAG_CAPTION = (
    "When the twins first change bins: steps between the first bin change of each "
    "$\\hat Q$-net weight and that of its STE-net twin, over the weights where both changed bins, "
    "with STE-net re-initialised by $M$ (paper Table 1) and unadjusted (both nets start at $w^{(0)}$)."
)


def figure1(cfg: Any) -> tuple[Page, dict[str, float]]:
    """Paper Figure 1 from :mod:`qatlib.estimators`: STE, PWL, MAD and HTGE on a ``cfg.bits``-bit
    quantizer on [-1, 1], EDE at ``cfg.ede_t`` on the sign quantizer, each with α of Eq. 4. The page
    (figure ``fig_estimators``, ``alpha_htge``, ``ede_t``) and α by estimator."""
    import qatlib
    from qatlib import estimators
    from qatlib.report.figures import estimators as estimator_plots

    q_multi = qatlib.UniformQuantizer.from_bits(bits=cfg.bits, w_max=1.0)
    entries = [
        ("STE", estimators.STE(), q_multi),
        ("PWL", estimators.PWL(), q_multi),
        ("MAD", estimators.MAD(), q_multi),
        ("HTGE", estimators.HTGE(sharpness=cfg.sharpness, scale="range", normalize=True), q_multi),
        ("EDE (binary)", estimators.EDE(t=cfg.ede_t), qatlib.BinaryQuantizer(scale=1.0)),
    ]
    figure = estimator_plots.estimator_panel(entries, grid_points=cfg.grid_points)
    alphas = {label: qatlib.alpha(q, est) for label, est, q in entries}
    return Page({"alpha_htge": alphas["HTGE"], "ede_t": cfg.ede_t}, {}, {"fig_estimators": figure}), alphas


def _pair_config(cfg: Any) -> Any:
    from qatlib.experiments import twins

    return twins.PairConfig(optimizer="sgd", eta=cfg.eta, steps=cfg.steps, batch_size=cfg.batch_size, bits=cfg.bits,
                            sharpness=cfg.sharpness, n_traced=cfg.n_traced, seed=cfg.seed)


def _mirror_figure(run_cfg: Any, problem: Any, first: Any, quantizer: Any, estimator: Any) -> tuple[Any, dict[str, str]]:
    """Figure ``fig_mirror``: the weight that travelled farthest among those whose bin changes the
    STE-net twin matched step for step (:func:`~qatlib.experiments.twins.mirror_candidate`), traced
    by a re-run of the same seed and batches; and the steps at which each twin changed bins."""
    from qatlib.experiments import twins
    from qatlib.report.figures import estimators as estimator_plots

    trace = twins.run_pair(run_cfg, problem, traced=[twins.mirror_candidate(first), *first.traced[1:]])
    if not np.array_equal(trace.final_E, first.final_E):
        raise AssertionError("the re-run must repeat the first run exactly")
    w_q, w_s, m_q = trace.w_q[:, 0], trace.w_s[:, 0], trace.m_q[:, 0]
    figure = estimator_plots.mirror_figure(np.arange(trace.w_q.shape[0]), w_q, w_s, m_q, quantizer, estimator)
    busy = {"busy_q": markup.steps_at(twins.boundary_crossings(w_q, quantizer) + 1),
            "busy_s": markup.steps_at(twins.boundary_crossings(w_s, quantizer) + 1)}
    return figure, busy


def _lag_values(stats: dict[str, int | float], unadjusted: dict[str, int | float]) -> dict[str, str]:
    """The glued phrases of the first-bin-change comparison (:func:`lag_stats` of both pairs)."""
    return {
        "lag_both": markup.integer(stats["both crossed"]),
        "lag_same": markup.percent(stats["same step (%)"] / 100),
        "lag_1": markup.percent(stats["within 1 step (%)"] / 100),
        "lag_2": markup.percent(stats["within 2 steps (%)"] / 100),
        "lag_max": markup.plural(stats["max lag (steps)"], "step"),
        "lag_one_sided": markup.integer(stats["only one twin crossed"]),
        "lag_u_same": markup.percent(unadjusted["same step (%)"] / 100),
        "lag_u_2": markup.percent(unadjusted["within 2 steps (%)"] / 100),
        "lag_u_one_sided": markup.integer(unadjusted["only one twin crossed"]),
    }


def _properties(quantizer: Any, estimator: Any, alphas: dict[str, float]) -> dict[str, bool]:
    """What the story relies on, for any preset: M fixes every boundary point (Eq. 4, in float64),
    α of HTGE is below 1, and α of the STE, PWL and MAD is exactly 1."""
    import jax
    import jax.numpy as jnp

    import qatlib

    with jax.enable_x64(True):
        b = jnp.asarray(quantizer.boundary_points())
        fixed = bool(jnp.allclose(qatlib.weight_map(b, quantizer, estimator), b, rtol=0, atol=1e-12))
    return {
        "$M$ fixes every boundary point of this run's quantizer (to $10^{-12}$, in float64)": fixed,
        "$\\alpha$ of HTGE is below 1": alphas["HTGE"] < 1,
        "$\\alpha$ of the STE, PWL and MAD is exactly 1": alphas["STE"] == alphas["PWL"] == alphas["MAD"] == 1.0,
    }


def mirror(cfg: Any, alphas: dict[str, float]) -> tuple[Page, dict[str, bool]]:
    """The funhouse mirror in a real run: Q̂-net (HTGE, η) and STE-net (α η from M(w⁽⁰⁾), paper
    Table 1) on softmax regression over ``cfg.n_examples`` MNIST images, in float64 (the
    :mod:`~qatlib.experiments.twins` simulator). The page (figure ``fig_mirror``, table
    ``tab-twin-lags``, the run's numbers: crossings, first-change lags against the unadjusted pair,
    Ē and agreement of Section 6.2) and :func:`_properties` (``alphas`` from :func:`figure1`)."""
    from qatlib.experiments import comparison, twins

    problem = twins.mnist_problem(cfg.n_examples, cfg.seed)
    run_cfg = _pair_config(cfg)
    first = twins.run_pair(run_cfg, problem)
    summary = twins.summarize(first, run_cfg, problem)
    quantizer = twins.make_quantizer(cfg.bits, problem.fan_in)
    estimator = comparison.q_hat(cfg.sharpness, normalize=True)
    figure, busy = _mirror_figure(run_cfg, problem, first, quantizer, estimator)
    stats = lag_stats(twins.crossing_lags(first))
    unadjusted = lag_stats(twins.crossing_lags(twins.run_pair(dataclasses.replace(run_cfg, reinit=False), problem)))
    values = {
        "n_examples": markup.integer(cfg.n_examples), "eta": markup.number(cfg.eta, 3), "steps": markup.integer(cfg.steps),
        "alpha_run": summary.alpha, "n_weights": markup.integer(np.prod(problem.weight_shape)), **busy,
        "cross_total": markup.integer(summary.crossings), "cross_same": markup.integer(summary.crossings_same_step),
        "cross_share": markup.percent(summary.crossings_same_step / max(summary.crossings, 1)),
        **_lag_values(stats, unadjusted),
        "E_bar_run": markup.percent(summary.E_bar), "agreement_run": markup.percent(summary.agreement),
        "data_source": problem.source,
    }
    table = markup.table(lag_table(stats, unadjusted), _LAG_CAPTION, "tab-twin-lags")
    return Page(values, {"tab-twin-lags": table}, {"fig_mirror": figure}), _properties(quantizer, estimator, alphas)
