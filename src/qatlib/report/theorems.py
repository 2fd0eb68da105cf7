"""The Theorems chapter's report: its tables of bound checks over the twin runs and of the
constants of paper Appendix H, built from :class:`qatlib.experiments.twins.PairSummary` objects
and :func:`qatlib.theory.lipschitz_constants`; the chapter itself is prose with short calls.

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

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from qatlib.report import markup

if TYPE_CHECKING:
    from qatlib.experiments.twins import PairSummary

__all__ = [
    "MISSING",
    "BOUND_CHECK_ROWS",
    "BOUND_RUN_ROWS",
    "APPENDIX_H_HEADERS",
    "percent_cell",
    "significant",
    "constant",
    "run_table",
    "appendix_h_frame",
    "appendix_h_display",
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

    import qatlib
    from qatlib import estimators, theory

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
