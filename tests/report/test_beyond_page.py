"""The chapter "When is the STE enough?"'s page (qatlib.report.beyond.page and its section
functions) on the committed sweeps: every name the chapter cites exists, and the section values
are the numbers computed directly from ``results/beyond/<section>/metrics.json``."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from qatlib.experiments.beyond import PRESETS, REFERENCE_LR
from qatlib.report import artefacts, beyond, markup

CHAPTER = Path(__file__).resolve().parents[2] / "book" / "beyond.md"


def _stored(section: str) -> dict:
    return artefacts.read_json(artefacts.metrics_path("beyond", section))


def _quick_sweep() -> dict:
    """A stand-in for the page's own quick sweep: three runs of the committed learning-rate sweep."""
    stored = _stored("learning_rate")
    return {"runs": stored["runs"][:3], "provenance": stored["provenance"]}


def _ratio(runs, series: str, x: float, top: str, bottom: str = "lr_tweak", column: str = "E_bar") -> list[float]:
    """Per seed, ``column`` of pair ``top`` over that of ``bottom`` at one (series, x), straight from the runs."""
    return [r["pairs"][top][column] / r["pairs"][bottom][column]
            for r in runs if r["series"] == series and math.isclose(float(r["x"]), x)]


def _mean_sd(values: list[float]) -> str:
    return beyond.format_ratio(float(np.mean(values)), float(np.std(values, ddof=1)))


@pytest.fixture(scope="module")
def page():
    return beyond.page(PRESETS["quick"], "quick", _quick_sweep())


def test_page_holds_every_name_the_chapter_cites(page):
    text = CHAPTER.read_text()
    glued = set(re.findall(r"\{glue:(?:text|md)\}`([a-z0-9_]+)`", text)) | set(re.findall(r"\{glue:figure\} ([a-z0-9_]+)", text))
    tables = set(re.findall(r'page\.tables\["([a-z0-9-]+)"\]', text))
    assert len(glued) > 80 and len(tables) == 9
    names = set(page.values) | set(page.figures) | set(page.markdown)
    assert glued <= names
    assert names - glued == {"beyond_lr_low_sgd", "beyond_lr_high_sgd"}  # glued for a reader's own prose, cited nowhere yet
    assert tables == set(page.tables)
    assert all(isinstance(v, (str, int)) for v in page.values.values())
    assert all(":::{table}" in str(table.data) for table in page.tables.values())
    for name in tables:  # every table is cited by the label it carries
        assert f":name: {name}\n" in page.tables[name].data


def test_run_values_describe_the_pages_own_sweep(page):
    sweep = _quick_sweep()
    assert page.values["beyond_preset"] == "quick"
    assert page.values["beyond_fresh_runs"] == 3
    assert page.values["beyond_fresh_steps"] == PRESETS["quick"].steps
    assert page.values["beyond_fresh_wall"] == artefacts.duration(sweep["provenance"]["seconds"])


def test_glance_has_one_row_per_section_in_the_chapters_order(page):
    glance = page.tables["tab-beyond-glance"].data
    rows = [line for line in glance.splitlines() if line.startswith("|")][2:]
    assert len(rows) == len(beyond.SECTION_PAGES) == 7
    for row, figure in zip(rows, ("lr", "momentum", "bits", "shape", "wd", "optimizers", "kernels")):
        assert row.rstrip(" |").endswith(f"{{numref}}`fig-beyond-{figure}`")


def test_learning_rate_slopes_are_fitted_seed_by_seed_on_both_committed_sweeps():
    values = beyond.learning_rate(_quick_sweep(), "quick")[0].values
    runs = _stored("learning_rate")["runs"] + _stored("learning_rate_large")["runs"]
    for series in ("sgd", "momentum", "adam"):
        slopes = []
        for seed in sorted({r["seed"] for r in runs}):
            points = [(r["x"], r["pairs"]["baseline"]["E_bar"]) for r in runs if r["series"] == series and r["seed"] == seed
                      and r["x"] <= REFERENCE_LR[series] * (1 + 1e-9) and (r["pairs"]["baseline"]["E_bar"] or 0) > 0]
            x, e = np.log10(np.array(points)).T
            slopes.append(np.polyfit(x, e, 1)[0])
        assert values[f"beyond_lr_slope_{series}"] == f"{np.mean(slopes):.2f} ± {np.std(slopes, ddof=1):.2f}"
        assert values[f"beyond_lr_ratio_{series}"] == _mean_sd(_ratio(runs, series, REFERENCE_LR[series], "baseline"))
    for series in ("sgd", "momentum"):  # the sweep's ends: the smallest η, and the largest, from learning_rate_large
        xs = [r["x"] for r in runs if r["series"] == series]
        assert values[f"beyond_lr_low_{series}"] == markup.short(min(xs) / REFERENCE_LR[series])
        assert values[f"beyond_lr_high_{series}"] == markup.short(max(xs) / REFERENCE_LR[series])
        assert max(xs) > max(r["x"] for r in _stored("learning_rate")["runs"] if r["series"] == series)


def test_momentum_ratios_at_beta_0_9():
    part, answer = beyond.momentum(_quick_sweep(), "quick")
    runs = [r for r in _stored("momentum")["runs"] if r["section"] == "momentum"]
    assert part.values["beyond_momentum_beta"] == "0.9"
    assert part.values["beyond_momentum_base"] == _mean_sd(_ratio(runs, "sgd", 0.9, "baseline"))
    assert part.values["beyond_momentum_diag"] == _mean_sd(_ratio(runs, "sgd", 0.9, "diagnostic"))
    assert part.values["beyond_momentum_quick"] == "none (no quick run of this section)"  # the stand-in sweep has none
    assert answer.answer[0].isupper() and "fig-beyond-momentum" in answer.figure


def test_bits_ratios_and_agreements_per_width():
    values = beyond.bits(_quick_sweep(), "quick")[0].values
    runs = _stored("bits")["runs"]
    widths = sorted({float(r["x"]) for r in runs})
    assert values["beyond_bits_widths"] == markup.listing([f"{int(b)}" for b in widths])
    assert values["beyond_bits_ratio_adam"] == markup.listing([_mean_sd(_ratio(runs, "adam", b, "baseline")) for b in widths])
    agreement = [np.mean([r["pairs"]["baseline"]["agreement"] for r in runs if r["series"] == "momentum" and r["x"] == b]) for b in widths]
    assert values["beyond_bits_agreement_momentum"] == markup.listing([markup.percent(float(a), 4) for a in agreement])


def test_shape_ends_of_the_sharpness_sweep():
    values = beyond.shape(_quick_sweep(), "quick")[0].values
    runs = [r for r in _stored("shape")["runs"] if r["series"].endswith("/htge")]
    sharpness = sorted({float(r["x"]) for r in runs})
    series = runs[0]["series"]
    assert values["beyond_shape_soft"] == markup.short(sharpness[0])
    assert values["beyond_shape_sharp"] == markup.short(sharpness[-1])
    assert values["beyond_shape_sharp_ratio"] == _mean_sd(_ratio(runs, series, sharpness[-1], "baseline"))


def test_weight_decay_ratios_at_both_ends_of_lambda():
    values = beyond.weight_decay(_quick_sweep(), "quick")[0].values
    runs = _stored("weight_decay")["runs"]
    lam = sorted({float(r["x"]) for r in runs})
    assert values["beyond_wd_on_lr_high"] == _mean_sd(_ratio(runs, "momentum", lam[-1], "baseline"))
    assert values["beyond_wd_on_slope_high"] == _mean_sd(_ratio(runs, "momentum", lam[-1], "slope_alpha"))
    growth = np.mean(_ratio(runs, "momentum", lam[-1], "baseline")) / np.mean(_ratio(runs, "momentum", lam[0], "baseline"))
    assert values["beyond_wd_growth"] == beyond.format_ratio(float(growth))


def test_optimizers_sign_sgd_check_and_lion():
    values = beyond.optimizers(_quick_sweep(), "quick")[0].values
    runs = _stored("optimizers")["runs"]
    sign = [r["pairs"]["baseline"]["E_bar"] for r in runs if r["series"] == "signsgd"]
    assert values["beyond_sign_identical"] == f"{sum(e == 0 for e in sign)} of {markup.plural(len(sign), 'seed')}"
    assert values["beyond_sign_max"] == markup.number(max(sign))
    assert values["beyond_lion_ratio"] == beyond.format_ratio(float(np.mean(_ratio(runs, "lion", REFERENCE_LR["lion"], "baseline"))))


def test_kernels_ratios_with_the_dense_kernel_quantized_or_not():
    values = beyond.kernels(_quick_sweep(), "quick")[0].values
    runs = _stored("kernels")["runs"]
    mean = lambda dense, column: beyond.format_ratio(float(np.mean(_ratio(runs, "momentum", dense, "baseline", column=column))))
    assert values["beyond_ke_momentum_dense"] == mean(1.0, "E_bar")
    assert values["beyond_ke_momentum_convs"] == mean(1.0, "E_bar_conv")
    assert values["beyond_ke_momentum_float"] == mean(0.0, "E_bar")


def test_momentum_eta_slopes_from_the_committed_sweep():
    part = beyond.momentum_eta(_quick_sweep(), "quick")
    runs = [r for r in _stored("momentum_lr")["runs"] if r["series"] == "eta"]
    slopes = []
    for seed in sorted({r["seed"] for r in runs}):
        points = [(r["x"], r["pairs"]["diagnostic"]["E_bar"]) for r in runs if r["seed"] == seed and r["x"] <= REFERENCE_LR["momentum"] * (1 + 1e-9)]
        slopes.append(np.polyfit(*np.log10(np.array(points)).T, 1)[0])
    assert part.values["beyond_eta_diag_slope"] == f"{np.mean(slopes):.2f} ± {np.std(slopes, ddof=1):.2f}"
    assert part.markdown["beyond_eta_provenance"].startswith("Source: the committed artefact `results/beyond/momentum_lr/")


def test_sections_read_the_pages_own_run_of_their_preset():
    stored = _stored("weight_decay")
    part, _ = beyond.weight_decay(stored, "weight_decay")
    assert part.markdown["beyond_wd_provenance"].startswith("Source: this page's run `results/beyond/weight_decay/")
    half = {"runs": [r for r in stored["runs"] if r["seed"] == 0], "provenance": stored["provenance"]}
    assert beyond.weight_decay(half, "weight_decay")[0].values["beyond_wd_on_lr_high"] != part.values["beyond_wd_on_lr_high"]


def test_missing_momentum_lr_says_not_measured(monkeypatch, tmp_path):
    sweep = _quick_sweep()
    monkeypatch.setattr(artefacts, "metrics_path", lambda chapter, preset: tmp_path / chapter / preset / "metrics.json")
    part = beyond.momentum_eta(sweep, "quick")
    assert set(part.values.values()) == {"not measured"} and len(part.values) == 5
    assert part.markdown["beyond_eta_provenance"].startswith("Not measured")
    assert "not measured" in part.tables["tab-beyond-momentum-eta"].data
