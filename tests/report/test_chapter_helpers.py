"""Tests for qatlib.report.theorems and qatlib.report.intuition: the cells and tables the Theorems
and Intuition chapters show, exactly as they print them."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

import qatlib
from qatlib import estimators, theory
from qatlib.experiments.twins import CrossingLags, PairSummary
from qatlib.report import intuition, markup, theorems
from qatlib.report.paper import paper_tables

NAN = float("nan")


def _summary(**changes) -> PairSummary:
    base = dict(
        optimizer="sgd", eta=0.05, steps=100, alpha=0.92811234, L_minus=0.1, L_plus=3.0, L_prime=40.0,
        E_bar=0.0012345, agreement=0.987654, checked=123456, holds=1.0, holds_printed=0.99995,
        holds_eq6=1.0, holds_eq6_printed=0.5, outside=1518, holds_outside=0.96666, crossings=10,
        crossings_same_step=9, mean_grad_err=1e-6, mean_conv=1e-8, mean_c13=0.0, mean_step=1e-3,
    )
    return PairSummary(**{**base, **changes})


# ------------------------------------------------------------------------------------ theorems
def test_percent_cell_fixed_decimals_no_sign():
    assert theorems.percent_cell(1.0) == "100.00"
    assert theorems.percent_cell(0.99995) == "100.00"  # a table cell rounds; the prose says '> 99.99%'
    assert markup.percent(0.99995) == "> 99.99%"
    assert theorems.percent_cell(0.123456) == "12.35"
    assert theorems.percent_cell(0.96666, 1) == "96.7"
    assert theorems.percent_cell(0.0) == "0.00"
    assert theorems.percent_cell(NAN) == theorems.MISSING == "—"


def test_significant_and_constant():
    assert theorems.significant(0.92811234, 4) == "0.9281"
    assert theorems.significant(100 * 0.0012345) == "0.123"
    assert theorems.significant(2.5e-9) == "2.50 × 10⁻⁹"
    assert theorems.significant(NAN) == "—"
    assert theorems.constant(1234.6) == "1,235"
    assert theorems.constant(999.96) == "1,000"  # four significant digits of a number just below 1,000
    assert theorems.constant(0.1234567) == "0.1235"
    assert theorems.constant(-2500.4) == "-2,500"
    assert theorems.constant(NAN) == "—"


def test_run_table_columns_rows_and_cells():
    summaries = {
        "SGD (Thm 5.1)": _summary(),
        "Adam (Thm 5.2)": _summary(optimizer="adam", eta=0.001, holds_eq6_printed=NAN, checked=7),
    }
    headers = {"SGD (Thm 5.1)": "SGD", "Adam (Thm 5.2)": "Adam", "unused": "x"}
    frame = theorems.run_table(summaries, theorems.BOUND_CHECK_ROWS, "bound", headers)
    assert list(frame.columns) == ["SGD", "Adam"]
    assert frame.index.name == "bound"
    assert list(frame.index) == ["$\\eta$", "$\\alpha$", "checked pairs", "rigorous (%)", "$\\alpha$ omitted (%)",
                                 "paper Eq. 6 (%)"]
    assert frame["SGD"].tolist() == ["0.05", "0.9281", "123,456", "100.00", "100.00", "50.00"]
    assert frame["Adam"].tolist() == ["0.001", "0.9281", "7", "100.00", "100.00", "—"]

    runs = theorems.run_table(summaries, theorems.BOUND_RUN_ROWS, "run", headers)
    assert runs.index.name == "run"
    assert list(runs.index) == ["pairs outside range", "holds outside (%)", "$\\bar E$ (%)", "agreement (%)"]
    assert runs["SGD"].tolist() == ["1,518", "96.7", "0.123", "98.77"]
    # it lays out as a numbered table with the numbers right-aligned
    text = markup.table(runs, "Runs.", "tab-runs").data
    assert "| run " in text and "|:---" in text and "--:|" in text


def test_run_table_needs_a_header_for_every_run():
    with pytest.raises(KeyError):
        theorems.run_table({"SGD (Thm 5.1)": _summary()}, theorems.BOUND_RUN_ROWS, "run", {})


def test_appendix_h_frame_matches_the_paper_and_formats():
    printed = paper_tables()["appendix_h"]
    q = qatlib.UniformQuantizer.from_bits(bits=4, w_max=0.0874)
    est = estimators.HTGE(sharpness=5.5, scale="weight", normalize=True)
    frame = theorems.appendix_h_frame(printed, q, est, 4)
    bits_to_k = printed["htge_pei_2023"]["bits_to_k"]
    n_htge, n_dsq = len(bits_to_k), len(printed["dsq_gong_2019"]["alpha_range"])
    assert len(frame) == n_htge + n_dsq + 1
    assert frame.index.name == "estimator"
    assert list(frame.columns) == ["L_minus", "L_plus", "L_prime", "L'L+/2L-^2 (ours)", "paper"]
    widest = max(bits_to_k, key=int)
    assert frame.index[0] == f"HTGE, {widest} bits, $k$ = {bits_to_k[widest]}"  # widest bit width first
    assert frame.index[-1] == "this chapter's HTGE, 4 bits"
    assert math.isnan(frame["paper"].iloc[-1])
    assert float(frame["L'L+/2L-^2 (ours)"].iloc[-1]) == pytest.approx(float(theory.appendix_h_constant(q, est)))
    ours = frame["L'L+/2L-^2 (ours)"].iloc[:n_htge].to_numpy(dtype=float)
    theirs = frame["paper"].iloc[:n_htge].to_numpy(dtype=float)
    np.testing.assert_allclose(ours, theirs, rtol=0.05)  # the paper's HTGE constants, recomputed

    shown = theorems.appendix_h_display(frame)
    assert list(shown.columns) == ["$L_-$", "$L_+$", "$L'$", "ours", "paper"]
    assert shown["paper"].iloc[-1] == "—"
    assert all(isinstance(cell, str) for cell in shown.to_numpy().ravel())
    assert shown["ours"].iloc[-1] == theorems.constant(float(frame["L'L+/2L-^2 (ours)"].iloc[-1]))


# ------------------------------------------------------------------------------------ intuition
def test_lag_stats_counts_and_shares():
    stats = intuition.lag_stats(CrossingLags(lags=np.array([0, 0, 1, -2, 3, 0]), only_q=2, only_s=5))
    assert stats == {
        "both crossed": 6,
        "same step (%)": 50.0,
        "within 1 step (%)": pytest.approx(100 * 4 / 6),
        "within 2 steps (%)": pytest.approx(100 * 5 / 6),
        "max lag (steps)": 3,
        "only one twin crossed": 7,
    }
    assert isinstance(stats["both crossed"], int) and isinstance(stats["max lag (steps)"], int)


def test_lag_stats_when_no_twin_crossed():
    stats = intuition.lag_stats(CrossingLags(lags=np.array([], dtype=int), only_q=0, only_s=3))
    assert stats["both crossed"] == 0 and stats["max lag (steps)"] == 0
    assert stats["same step (%)"] == stats["within 2 steps (%)"] == 0.0
    assert stats["only one twin crossed"] == 3


def test_lag_table_layout():
    big = intuition.lag_stats(CrossingLags(lags=np.array([0] * 1200 + [1] * 34), only_q=1000, only_s=1))
    small = intuition.lag_stats(CrossingLags(lags=np.array([0, 2, -2]), only_q=0, only_s=0))
    assert intuition.lag_column(big) == ["1,234", "97.2", "100.0", "100.0", "1", "1,001"]
    assert intuition.lag_column(small) == ["3", "33.3", "33.3", "100.0", "2", "0"]
    frame = intuition.lag_table(big, small)
    assert list(frame.columns) == ["re-initialised by $M$", "unadjusted"]
    assert frame.index.name == "first bin change"
    assert list(frame.index) == list(intuition.LAG_ROWS)
    assert frame["unadjusted"].tolist() == intuition.lag_column(small)


def test_summary_fields_the_rows_read_exist():
    # the row functions read these fields; a renamed field of PairSummary must fail here, not on the page
    names = {field.name for field in dataclasses.fields(PairSummary)}
    assert {"eta", "alpha", "checked", "holds", "holds_printed", "holds_eq6_printed", "outside", "holds_outside",
            "E_bar", "agreement"} <= names
