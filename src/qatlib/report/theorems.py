"""The Theorems chapter's report: the twin runs it checks the bounds of paper Section 5 on, the
η sweeps of the scaling claim, and the pages of glued phrases, tables and figures built from them
(:class:`qatlib.experiments.twins.PairSummary` objects and :func:`qatlib.theory.lipschitz_constants`);
the chapter itself is prose with short calls:

* :func:`setting` and :func:`setting_page` -- the problem, quantizer and estimators;
* :func:`bound_runs` and :func:`bounds_page` -- the five runs checked at every step, their tables;
* :func:`trace_figures` -- the bound and the alignment error along those runs;
* :func:`eta_sweeps` and :func:`scaling_page` -- the O(η²) scaling;
* :func:`appendix_h_page` -- the constants of paper Appendix H;
* :func:`checks` -- what the theory guarantees on any preset.

A table cell with no value (a form of the bound that does not apply to a run, a constant the paper
does not print) is :data:`MISSING`, an em dash.

>>> percent_cell(0.98765), percent_cell(1.0), percent_cell(0.5, 1), percent_cell(float("nan"))
('98.77', '100.00', '50.0', '—')
>>> significant(0.012345), significant(1.23456e-7, 2), significant(float("nan"))
('0.0123', '1.2 × 10⁻⁷', '—')
>>> constant(0.1234567), constant(1234.6), constant(float("nan"))
('0.1235', '1,235', '—')
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

import qatlib
from qatlib import theory
from qatlib.experiments import comparison, twins
from qatlib.report import markup
from qatlib.report.seeds import Page

if TYPE_CHECKING:
    from qatlib.experiments.theorems import TheoremsConfig
    from qatlib.experiments.twins import PairSummary

__all__ = [
    "MISSING", "BOUND_CHECK_ROWS", "BOUND_RUN_ROWS", "APPENDIX_H_HEADERS", "percent_cell", "significant",
    "constant", "run_table", "appendix_h_frame", "appendix_h_display", "SGD", "MOMENTUM", "ADAM",
    "STE_PARTNER", "UNNORMALISED", "RUN_HEADERS", "Setting", "setting", "setting_page", "Runs",
    "pair_configs", "bound_runs", "bounds_page", "trace_figures", "eta_sweeps", "scaling_page",
    "appendix_h_page", "checks",
]

#: A table cell with no value.
MISSING = "—"

#: How one row of a run table reads one run's summary.
Cell = Callable[["PairSummary"], str]


def percent_cell(fraction: float, digits: int = 2) -> str:
    """A share in a column headed "(%)": ``100 × fraction`` with exactly ``digits`` decimals and no
    percent sign (``0.98765`` -> ``'98.77'``, ``1.0`` -> ``'100.00'``), :data:`MISSING` for NaN.

    Unlike :func:`qatlib.report.markup.percent` (prose: ``'98.8%'``, ``'100%'``, ``'> 99.99%'``) the
    decimals are fixed, so a column of shares lines up and a bound that held everywhere reads
    ``100.00``.
    """
    return MISSING if math.isnan(fraction) else f"{100 * fraction:.{digits}f}"


def significant(value: float, digits: int = 3) -> str:
    """A real number with ``digits`` significant digits as :func:`qatlib.report.markup.number`
    writes it, :data:`MISSING` (not ``'n/a'``) for NaN."""
    return MISSING if math.isnan(value) else markup.number(value, digits)


def constant(value: float) -> str:
    """A constant of paper Appendix H: a whole number with thousands separated from 1,000 on
    (``'1,235'``), else four significant digits (``'0.1235'``); :data:`MISSING` for NaN."""
    if math.isnan(value):
        return MISSING
    return markup.integer(round(value)) if abs(value) >= 1000 else markup.number(value, 4)


#: The rows of the table of per-step bound checks: row label -> cell of one run.
BOUND_CHECK_ROWS: dict[str, Cell] = {
    "$\\eta$": lambda s: f"{s.eta:g}",
    "$\\alpha$": lambda s: significant(s.alpha, 4),
    "checked pairs": lambda s: markup.integer(s.checked),
    "rigorous (%)": lambda s: percent_cell(s.holds),
    "$\\alpha$ omitted (%)": lambda s: percent_cell(s.holds_printed),
    "paper Eq. 6 (%)": lambda s: percent_cell(s.holds_eq6_printed),
}

#: The rows of the table of the runs outside the representable range and the paper's two metrics.
BOUND_RUN_ROWS: dict[str, Cell] = {
    "pairs outside range": lambda s: markup.integer(s.outside),
    "holds outside (%)": lambda s: percent_cell(s.holds_outside, 1),
    "$\\bar E$ (%)": lambda s: significant(100 * s.E_bar),
    "agreement (%)": lambda s: percent_cell(s.agreement),
}


def run_table(summaries: Mapping[str, PairSummary], rows: Mapping[str, Cell], index_name: str,
              headers: Mapping[str, str]) -> Any:
    """A DataFrame of formatted cells with one column per run (in the order of ``summaries``,
    headed ``headers[run name]``) and one row per entry of ``rows`` (e.g. :data:`BOUND_CHECK_ROWS`),
    its index named ``index_name``; ready for :func:`qatlib.report.markup.table`."""
    import pandas as pd

    return pd.DataFrame(
        {headers[name]: [cell(summary) for cell in rows.values()] for name, summary in summaries.items()},
        index=pd.Index(list(rows), name=index_name),
    )


#: The columns of :func:`appendix_h_frame` as the table heads them.
APPENDIX_H_HEADERS = {
    "L_minus": "$L_-$",
    "L_plus": "$L_+$",
    "L_prime": "$L'$",
    "L'L+/2L-^2 (ours)": "ours",
    "paper": "paper",
}


def _row(label: str, consts: Any, ours: float, paper: float) -> dict[str, Any]:
    return {"estimator": label, "L_minus": consts.L_minus, "L_plus": consts.L_plus, "L_prime": consts.L_prime,
            "L'L+/2L-^2 (ours)": ours, "paper": paper}


def appendix_h_frame(printed: Mapping[str, Any], quantizer: Any, estimator: Any, bits: int) -> Any:
    """Paper Appendix H recomputed: one row per estimator (index ``estimator``) with the constants
    ``L_minus``, ``L_plus``, ``L_prime``, our ``L'L+/2L-^2 (ours)`` and the ``paper``'s printed value
    (NaN where it prints none), as floats.

    ``printed`` is ``paper_tables()["appendix_h"]``. Rows: HTGE (un-normalised, unit-scale
    quantizers, Pei et al.'s sharpness per bit width, widest bit width first); DSQ at the ends of
    Gong et al.'s range of α_DSQ (the paper's bound, beside the 2-bit quantizer's constants); last,
    the chapter's own ``estimator`` on its ``quantizer`` of ``bits`` bits.
    """
    import pandas as pd

    from qatlib import estimators

    htge = printed["htge_pei_2023"]
    rows = []
    for bits_h in sorted(htge["bits_to_k"], key=int, reverse=True):
        k = htge["bits_to_k"][bits_h]
        q_h = qatlib.UniformQuantizer.from_bits(bits=int(bits_h), w_max=1.0)  # Delta = 2 / (2^b - 1)
        htge_h = estimators.HTGE(sharpness=float(k), scale="weight", normalize=False)
        rows.append(_row(f"HTGE, {bits_h} bits, $k$ = {k}", theory.lipschitz_constants(q_h, htge_h),
                         theory.appendix_h_constant(q_h, htge_h), htge["constant_LpL_over_2Lm2"][bits_h]))
    dsq = printed["dsq_gong_2019"]
    q2 = qatlib.UniformQuantizer.from_bits(bits=2, w_max=1.0)
    for dsq_alpha, paper_value in zip(dsq["alpha_range"], dsq["constant_range"][::-1]):
        rows.append(_row(f"DSQ, $\\alpha_{{DSQ}}$ = {dsq_alpha} (bound)",
                         theory.lipschitz_constants(q2, estimators.DSQ(dsq_alpha=dsq_alpha)),
                         theory.dsq_appendix_h_bound(dsq_alpha), paper_value))
    rows.append(_row(f"this chapter's HTGE, {bits} bits", theory.lipschitz_constants(quantizer, estimator),
                     theory.appendix_h_constant(quantizer, estimator), float("nan")))
    return pd.DataFrame(rows).set_index("estimator")


def appendix_h_display(frame: Any) -> Any:
    """:func:`appendix_h_frame`'s floats as the table prints them (:func:`constant`), columns
    renamed by :data:`APPENDIX_H_HEADERS`."""
    return frame.map(constant).rename(columns=APPENDIX_H_HEADERS)


# ------------------------------------------------------------------------------------ the chapter
@dataclasses.dataclass(frozen=True)
class Setting:
    """The chapter's setting: softmax regression on MNIST (``problem``), its ``quantizer``, the
    bin-normalised HTGE ``estimator`` and the un-normalised ``estimator_raw`` (paper Appendix H's
    k/cosh² shape), their ``alpha`` and ``alpha_raw`` (paper Eq. 4), and the ``constants`` L_-,
    L_+, L' of ``estimator`` over the representable range (Assumptions 5.1.1 and 5.1.2)."""

    problem: twins.Problem
    quantizer: qatlib.UniformQuantizer
    estimator: Any
    estimator_raw: Any
    alpha: Any
    alpha_raw: Any
    constants: Any


def setting(cfg: TheoremsConfig) -> Setting:
    """The :class:`Setting` of ``cfg``: ``cfg.n_examples`` training images drawn with ``cfg.seed``,
    ``cfg.bits`` bits, HTGE with k = ``cfg.sharpness`` / w_max."""
    problem = twins.mnist_problem(cfg.n_examples, cfg.seed)
    q = twins.make_quantizer(cfg.bits, problem.fan_in)
    est = comparison.q_hat(cfg.sharpness, normalize=True)
    est_raw = comparison.q_hat(cfg.sharpness, normalize=False)
    return Setting(problem, q, est, est_raw, qatlib.alpha(q, est), qatlib.alpha(q, est_raw),
                   theory.lipschitz_constants(q, est))


def setting_page(cfg: TheoremsConfig, s: Setting) -> Page:
    """The setting's glued values: ``bits``, ``sharpness``, ``w_max``, ``delta``, ``k``, ``alpha``,
    ``alpha_raw``, ``L_minus``, ``L_plus``, ``L_prime`` as numbers; ``lip_M`` (the Lipschitz constant
    αL'/L_-² of M', the chapter's correction of paper Eq. 29), ``n_examples``, ``n_weights`` and
    ``data_source`` as phrases."""
    w_max = s.quantizer.representable_range[1]
    c = s.constants
    return Page({
        "bits": cfg.bits,
        "sharpness": cfg.sharpness,
        "w_max": w_max,
        "delta": s.quantizer.delta,
        "k": cfg.sharpness / w_max,
        "alpha": s.alpha,
        "alpha_raw": s.alpha_raw,
        "L_minus": c.L_minus,
        "L_plus": c.L_plus,
        "L_prime": c.L_prime,
        "lip_M": markup.integer(round(s.alpha * c.L_prime / c.L_minus**2)),
        "n_examples": markup.integer(cfg.n_examples),
        "n_weights": markup.integer(np.prod(s.problem.weight_shape)),
        "data_source": s.problem.source,
    }, {}, {})


#: The five bound-checking runs, by the names the chapter gives them.
SGD = "SGD (Thm 5.1)"
MOMENTUM = "SGD + momentum (Thm D.3)"
ADAM = "Adam (Thm 5.2)"
STE_PARTNER = "SGD, plain STE as partner (App. G)"
UNNORMALISED = "SGD, un-normalised HTGE (alpha > 1)"

#: Column headers of the two run tables (the runs' full names are in the captions).
RUN_HEADERS = {SGD: "SGD", MOMENTUM: "momentum", ADAM: "Adam", STE_PARTNER: "STE partner", UNNORMALISED: "$\\alpha > 1$"}

_RUNS_CAPTION = (
    "Columns: SGD (Theorem 5.1), SGD with momentum (Theorem D.3), Adam (Theorem 5.2), SGD with the "
    "plain STE as partner (paper Appendix G), and SGD with the un-normalised HTGE ($\\alpha > 1$)."
)


def pair_configs(cfg: TheoremsConfig) -> dict[str, twins.PairConfig]:
    """The five runs, by name: SGD (Theorem 5.1), SGD with momentum (Theorem D.3), Adam (Theorem
    5.2), all with the partner of paper Appendix G; SGD with the plain STE as partner (Appendix G's
    failure case); SGD with the un-normalised HTGE (α > 1). ``cfg.steps`` steps each."""
    common = dict(steps=cfg.steps, batch_size=cfg.batch_size, bits=cfg.bits, sharpness=cfg.sharpness, seed=cfg.seed)
    return {
        SGD: twins.PairConfig(optimizer="sgd", eta=cfg.eta_sgd, **common),
        MOMENTUM: twins.PairConfig(optimizer="momentum", eta=cfg.eta_momentum, momentum=cfg.momentum, **common),
        ADAM: twins.PairConfig(optimizer="adam", eta=cfg.eta_adam, b1=cfg.b1, b2=cfg.b2, **common),
        STE_PARTNER: twins.PairConfig(optimizer="sgd", eta=cfg.eta_sgd, partner="ste", **common),
        UNNORMALISED: twins.PairConfig(optimizer="sgd", eta=cfg.eta_unnormalized, normalize=False, **common),
    }


@dataclasses.dataclass(frozen=True)
class Runs:
    """The five runs of :func:`pair_configs`: their ``configs``, ``traces`` (every bound term per
    weight per step) and ``summaries``, each by run name."""

    configs: dict[str, twins.PairConfig]
    traces: dict[str, twins.PairTrace]
    summaries: dict[str, PairSummary]


def bound_runs(cfg: TheoremsConfig, problem: twins.Problem) -> Runs:
    """Train the twins of each of :func:`pair_configs` on ``problem`` and summarise each run."""
    configs = pair_configs(cfg)
    traces, summaries = {}, {}
    for name, run_cfg in configs.items():
        traces[name] = twins.run_pair(run_cfg, problem)
        summaries[name] = twins.summarize(traces[name], run_cfg, problem)
    return Runs(configs, traces, summaries)


def _bounds_values(cfg: TheoremsConfig, summaries: Mapping[str, PairSummary]) -> dict[str, Any]:
    """The glued values of :func:`bounds_page`."""
    sgd, mom, adam, ste, raw = (summaries[name] for name in (SGD, MOMENTUM, ADAM, STE_PARTNER, UNNORMALISED))
    return {
        "tolerance": markup.number(twins.BOUND_TOLERANCE, 1),
        "steps": markup.integer(cfg.steps),
        "n_cases": len(summaries),
        "beta": cfg.momentum,
        "eta_sgd": cfg.eta_sgd,
        "eta_momentum": cfg.eta_momentum,
        "eta_adam": cfg.eta_adam,
        "eta_raw": cfg.eta_unnormalized,
        "checked_total": markup.integer(sum(s.checked for s in summaries.values())),
        "holds_min": markup.percent(min(s.holds for s in summaries.values())),
        "raw_printed_fail": markup.percent(1 - raw.holds_printed),
        "printed_min": markup.percent(min(s.holds_printed for name, s in summaries.items() if name != UNNORMALISED)),
        "raw_eq6_holds": markup.percent(raw.holds_eq6_printed),
        "mirror_outside_holds": markup.percent(sgd.holds_outside),
        "ste_outside": markup.integer(ste.outside),
        "mirror_outside": markup.integer(sgd.outside),
        "ste_outside_holds": markup.percent(ste.holds_outside),
        "ebar_sgd": markup.percent(sgd.E_bar),
        "ebar_ste": markup.percent(ste.E_bar),
        "ebar_ratio": markup.number(ste.E_bar / sgd.E_bar),
        "mom_c13": markup.number(mom.mean_c13, 3),
        "mom_grad": markup.number(mom.mean_grad_err, 3),
        "adam_conv": markup.number(adam.mean_conv, 3),
        "adam_grad": markup.number(adam.mean_grad_err, 3),
    }


def bounds_page(cfg: TheoremsConfig, summaries: Mapping[str, PairSummary]) -> Page:
    """What the five runs (``summaries`` by the names of :func:`pair_configs`) say about the per-step
    bound (paper Eq. 6, Theorems 5.1, 5.2 and D.3).

    Values: the tolerance of a check, the runs' settings, the share of checked (weight, step) pairs
    where the rigorous bound held (``holds_min``), where the α-free form held (``printed_min``, the
    un-normalised run left out) and failed (``raw_printed_fail``), paper Eq. 6 as printed
    (``raw_eq6_holds``), the moving pairs outside the range (paper Appendix G), Ē (paper Section
    6.2) and the mean measured O(η²) terms. Tables: ``tab-bound-checks`` and ``tab-bound-runs``.
    """
    checks_table = markup.table(
        run_table(summaries, BOUND_CHECK_ROWS, "bound", RUN_HEADERS),
        "The per-step bound, checked at every (weight, step) pair where the assumptions hold: the share "
        "of pairs where $E^{(t+1)} - E^{(t)}$ stays below the bound with the rigorous convexity term "
        "($\\alpha L'/2L_-^2 \\cdot \\delta^2$), with $\\alpha$ omitted, and in the form printed as paper "
        "Eq. 6 ($L_+$ in place of $\\hat Q'$; SGD only). " + _RUNS_CAPTION,
        "tab-bound-checks",
    )
    runs_table = markup.table(
        run_table(summaries, BOUND_RUN_ROWS, "run", RUN_HEADERS),
        "The same runs outside the representable range, where the theorems promise nothing: moving "
        "(weight, step) pairs and the share where the per-step inequality still held; and the paper's "
        "metrics (paper Section 6.2) after the last step, $\\bar E$ as a percentage of the range. "
        + _RUNS_CAPTION,
        "tab-bound-runs",
    )
    return Page(_bounds_values(cfg, summaries), {"tab-bound-checks": checks_table, "tab-bound-runs": runs_table}, {})


def trace_figures(traces: Mapping[str, twins.PairTrace], quantizer: qatlib.UniformQuantizer) -> Page:
    """The figures along the runs (``traces`` by the names of :func:`pair_configs`): ``fig_bound``,
    the growth E⁽ᵗ⁺¹⁾ − E⁽ᵗ⁾ against the rigorous right-hand side of paper Eq. 6 (α-corrected
    convexity term) at every step of the SGD run, for the four traced weights with the largest summed
    right-hand side; ``fig_alignment``, the mean alignment error E⁽ᵗ⁾ (paper Eq. 5) over all weights
    divided by the length of the representable range, for all runs but the un-normalised one."""
    from qatlib.report.figures import estimators as estimator_plots

    sgd = traces[SGD]
    busiest = np.argsort(-np.abs(sgd.rhs).sum(axis=0), kind="stable")[:4]
    bound = estimator_plots.bound_figure(sgd.lhs[:, busiest], sgd.rhs[:, busiest])
    lo, hi = quantizer.representable_range
    alignment = estimator_plots.alignment_figure([
        ("SGD, App. G partner", traces[SGD].E_mean / (hi - lo)),
        ("SGD, plain STE partner", traces[STE_PARTNER].E_mean / (hi - lo)),
        ("SGD + momentum", traces[MOMENTUM].E_mean / (hi - lo)),
        ("Adam", traces[ADAM].E_mean / (hi - lo)),
    ])
    return Page({}, {}, {"fig_bound": bound, "fig_alignment": alignment})


#: The η sweeps, by name; the unadjusted one trains STE-net from w⁽⁰⁾ at η (the paper's Point B).
_UNADJUSTED = "SGD, unadjusted (no M, no alpha)"


def eta_sweeps(cfg: TheoremsConfig, configs: Mapping[str, twins.PairConfig], problem: twins.Problem) -> dict[str, twins.Sweep]:
    """The η sweeps of the scaling claim, ``cfg.sweep_steps`` steps per run, everything but η fixed:
    SGD, SGD without the re-initialisation by M and with η for αη (``reinit=False``), SGD with
    momentum and Adam, over ``cfg.sweep_sgd``, ``cfg.sweep_momentum`` and ``cfg.sweep_adam``; each
    from the run of ``configs`` (:func:`pair_configs`) of its optimizer."""
    steps = cfg.sweep_steps
    sweeps = {
        "SGD": (dataclasses.replace(configs[SGD], steps=steps), cfg.sweep_sgd),
        _UNADJUSTED: (dataclasses.replace(configs[SGD], steps=steps, reinit=False), cfg.sweep_sgd),
        "SGD + momentum": (dataclasses.replace(configs[MOMENTUM], steps=steps), cfg.sweep_momentum),
        "Adam": (dataclasses.replace(configs[ADAM], steps=steps), cfg.sweep_adam),
    }
    return {name: twins.eta_sweep(run_cfg, etas, problem) for name, (run_cfg, etas) in sweeps.items()}


def _ebar(summary: PairSummary) -> float:
    """Ē of one η's twins (Section 6.2)."""
    return summary.E_bar


def _slope(sweep: twins.Sweep, measure: Callable[[PairSummary], float]) -> float:
    return twins.fit_loglog_slope(sweep.etas, sweep.column(measure))[0]


def scaling_page(cfg: TheoremsConfig, sweeps: Mapping[str, twins.Sweep]) -> Page:
    """The O(η²) scaling (paper Theorems 5.1, 5.2, D.3) over the ``sweeps`` of :func:`eta_sweeps`.

    Values: the sweeps' span in decades and points (the fewest of any sweep), the least-squares
    log–log slopes of Ē against η (``slope_sgd``, ``slope_momentum``, ``slope_adam``,
    ``slope_unadjusted``) and of the measured O(η²) terms (``slope_c13``, momentum's Assumption
    C.1.3 term; ``slope_adam_conv``, Adam's convexity error), the least share of checked pairs where
    the rigorous bound held, and Ē of the unadjusted and adjusted SGD sweeps. Figure: ``fig_scaling``.
    """
    from qatlib.report.figures import estimators as estimator_plots

    slopes = {name: _slope(sweep, _ebar) for name, sweep in sweeps.items()}
    legend = {_UNADJUSTED: "SGD, unadjusted"}
    figure = estimator_plots.scaling_figure(
        [(legend.get(name, name), r.etas, r.column(_ebar), slopes[name]) for name, r in sweeps.items()]
    )
    return Page({
        "sweep_decades": float(min(np.log10(r.etas.max() / r.etas.min()) for r in sweeps.values())),
        "sweep_points": min(len(r.etas) for r in sweeps.values()),
        "sweep_steps": markup.integer(cfg.sweep_steps),
        "slope_sgd": slopes["SGD"],
        "slope_momentum": slopes["SGD + momentum"],
        "slope_adam": slopes["Adam"],
        "slope_unadjusted": slopes[_UNADJUSTED],
        "slope_c13": _slope(sweeps["SGD + momentum"], lambda s: s.mean_c13),
        "slope_adam_conv": _slope(sweeps["Adam"], lambda s: s.mean_conv),
        "sweep_holds_min": markup.percent(min(s.holds for r in sweeps.values() for s in r.summaries if s.checked)),
        "ebar_unadjusted_min": markup.percent(float(sweeps[_UNADJUSTED].column(_ebar).min())),
        "ebar_sgd_smallest": markup.percent(float(sweeps["SGD"].column(_ebar)[0])),
    }, {}, {"fig_scaling": figure})


def appendix_h_page(cfg: TheoremsConfig, s: Setting) -> Page:
    """Paper Appendix H recomputed (:func:`appendix_h_frame` on the printed values of
    ``paper_tables()["appendix_h"]``, table ``tab-appendix-h``), with the largest difference from
    the printed HTGE constants (``appendix_h_maxdiff``), and L'L_+/2L_-² of the chapter's own
    setting (``own_constant``) and times ``cfg.eta_sgd`` (``own_constant_eta``)."""
    from qatlib.report.paper import paper_tables

    frame = appendix_h_frame(paper_tables()["appendix_h"], s.quantizer, s.estimator, cfg.bits)
    ours = frame["L'L+/2L-^2 (ours)"].iloc[:4].to_numpy()
    theirs = frame["paper"].iloc[:4].to_numpy()
    table = markup.table(
        appendix_h_display(frame),
        "Paper Appendix H recomputed with `qatlib.theory.lipschitz_constants`, beside the paper's printed "
        "values of $L' L_+ / 2L_-^2$ (last two columns). HTGE rows: unit-scale quantizers with Pei et al.'s sharpness $k$ per bit "
        "width. DSQ rows: the paper's own bound $(1 - a)/(2a - a^2)$ at the ends of Gong et al.'s range of "
        "$\\alpha_{DSQ}$, next to the constants of the 2-bit quantizer. Last row: the bin-normalised HTGE of "
        "this chapter ($k$ = sharpness $/\\, w_{max}$), which the paper does not tabulate.",
        "tab-appendix-h",
    )
    own = theory.appendix_h_constant(s.quantizer, s.estimator)
    return Page({
        "appendix_h_maxdiff": float(np.max(np.abs(ours - theirs))),
        "own_constant": markup.integer(round(own)),
        "own_constant_eta": own * cfg.eta_sgd,
    }, {"tab-appendix-h": table}, {})


def checks(runs: Runs, sweeps: Mapping[str, twins.Sweep], s: Setting) -> dict[str, bool]:
    """What the theory guarantees on any preset, for :func:`qatlib.report.markup.checks`: the
    rigorous bound holds at every checked (weight, step) pair of the five runs and of every sweep
    run; α < 1 for the bin-normalised HTGE and α > 1 for the un-normalised one."""
    return {
        "The rigorous bound held at every checked (weight, step) pair of the five runs": all(
            r.holds == 1.0 for r in runs.summaries.values() if r.checked),
        "The rigorous bound also held at every checked pair of every run of the η sweeps": all(
            r.holds == 1.0 for sweep in sweeps.values() for r in sweep.summaries if r.checked),
        "$\\alpha < 1$ for the bin-normalised HTGE": s.alpha < 1,
        "$\\alpha > 1$ for the un-normalised HTGE": s.alpha_raw > 1,
    }
