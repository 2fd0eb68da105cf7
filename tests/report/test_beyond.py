"""The chapter "When is the STE enough?"'s numbers from synthetic sweeps with known answers."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from qatlib.experiments.records import SweepRecord
from qatlib.report import beyond


def _runs(series: str, xs, seeds, e_base, e_tweak, acc=lambda x: 0.9):
    return [
        SweepRecord.from_json({
            "section": "learning_rate", "series": series, "x": x, "seed": seed, "spec": {},
            "nets": {"q_net": {"val_acc": acc(x)}},
            "pairs": {"baseline": {"E_bar": e_base(x, seed), "E_bar_conv": e_base(x, seed), "agreement": 1.0},
                      "lr_tweak": {"E_bar": e_tweak(x, seed), "E_bar_conv": e_tweak(x, seed), "agreement": 1.0}}})
        for x in xs for seed in seeds
    ]


def test_slopes_recover_the_powers_with_their_spread():
    xs = [0.01, 0.1, 1.0, 10.0]
    runs = _runs("sgd", xs, (0, 1, 2), lambda x, s: (1 + s) * x ** (2 + 0.1 * s), lambda x, s: x)
    frame = beyond.pairs_frame(runs)
    summary = beyond.slope_summary(frame, ["baseline", "lr_tweak"], x_max=1.0).set_index("experiment")
    assert summary.loc["baseline", "mean"] == pytest.approx(2.1)
    assert summary.loc["baseline", "std"] == pytest.approx(0.1)
    assert summary.loc["lr_tweak", "mean"] == pytest.approx(1.0)
    assert int(summary.loc["baseline", "count"]) == 3


def test_breaking_points_find_the_ratio_crossing_and_the_collapse():
    xs = [0.1, 1.0, 10.0, 100.0]
    runs = _runs("adam", xs, (0,), lambda x, s: x ** 2, lambda x, s: x, acc=lambda x: 0.9 if x < 50 else 0.1)
    runs[-1].pairs["baseline"] = dataclasses.replace(runs[-1].pairs["baseline"], E_bar=None)  # diverged
    frame = beyond.pairs_frame(runs)
    row = beyond.breaking_points(frame, reference={"adam": 1.0}).iloc[0]
    assert row.ratio_above_1 == 10.0  # x^2 / x > 1 from x = 10 on (x = 1 is equal, not above)
    assert row.training_breaks == 100.0
    assert math.isnan(beyond.ratios(frame, "baseline", "lr_tweak").ratio.iloc[-1])


def test_verdicts_read_the_numbers():
    runs = [
        SweepRecord.from_json({
            "section": "momentum", "series": "sgd", "x": 0.9, "seed": seed, "spec": {}, "nets": {"q_net": {"val_acc": 0.9}},
            "pairs": {name: {"E_bar": value, "E_bar_conv": value, "agreement": 1.0}
                      for name, value in (("baseline", 10.0), ("diagnostic", diag), ("lr_tweak", 1.0))}})
        for seed, diag in ((0, 0.5), (1, 0.7))
    ]
    frame = beyond.pairs_frame(runs)
    base, diag = beyond.ratio_stats(frame, "baseline"), beyond.ratio_stats(frame, "diagnostic")
    assert beyond.momentum_verdict(base, diag, 0.9).startswith("yes: at β = 0.9 the diagnostic's ratio is 0.60")
    worse = beyond.ratio_stats(frame.assign(E_bar=np.where(frame.experiment == "diagnostic", 9.0, frame.E_bar)), "diagnostic")
    assert beyond.momentum_verdict(base, worse, 0.9).startswith("no:")
    assert beyond.format_ratio(3.14159, 0.2718) == "3.1 ± 0.27"
    assert beyond.format_ratio(float("nan")) == "diverged"
    assert beyond.format_ratio(2.4e-8, 4.2e-8) == "2.4 × 10⁻⁸ ± 4.2 × 10⁻⁸"
