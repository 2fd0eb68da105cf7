"""The bit-width section's verdict on the paper's "similar" is computed from the ratios."""

import pandas as pd

from qatlib.report import beyond


def stats(values: dict[float, float]) -> pd.DataFrame:
    return pd.DataFrame([{"series": "adam", "x": b, "mean": m, "std": 0.1, "min": m, "max": m, "count": 3} for b, m in values.items()])


def test_similar_within_a_factor_two_of_two_bits():
    assert beyond.bits_finding(stats({1: 1.5, 2: 1.0, 4: 0.6}), "adam", (1, 2, 4)).startswith("similar")


def test_a_bit_width_beyond_the_factor_is_named():
    text = beyond.bits_finding(stats({1: 3.0, 2: 1.0, 4: 0.9}), "adam", (1, 2, 4))
    assert text.startswith("not similar") and "3× the 2-bit ratio at 1 bit" in text and "4 bit" not in text


def test_missing_series_is_not_measured():
    assert beyond.bits_finding(stats({1: 1.0, 2: 1.0}), "momentum", (1, 2)) == "not measured"
    assert beyond.bits_finding(stats({1: 1.0, 2: 1.0}), "adam", (1, 2, 4)) == "not measured"
