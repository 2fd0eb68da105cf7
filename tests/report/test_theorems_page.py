"""The Theorems chapter's pages (qatlib.report.theorems) at the quick preset: every glue name the
chapter cites is produced by a page or by the chapter's own remaining cells, every table it shows
carries the label it is shown under, and the theory's checks pass."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import pytest

from qatlib.experiments import config
from qatlib.experiments.theorems import PRESETS
from qatlib.report import seeds
from qatlib.report import theorems as report

matplotlib.use("Agg")

#: Five twin runs and four η sweeps at the quick preset: 25-40 s on two CPU cores.
pytestmark = pytest.mark.slow

CHAPTER = Path(__file__).resolve().parents[2] / "book" / "theorems.md"
#: Glued by the chapter's own cells (the preset, and the page's provenance), not by a page.
CHAPTER_GLUES = {"preset", "wall", "device", "jax_version"}


@pytest.fixture(scope="module")
def chapter():
    cfg = config.resolve(PRESETS, "quick")
    setting = report.setting(cfg)
    runs = report.bound_runs(cfg, setting.problem)
    sweeps = report.eta_sweeps(cfg, runs.configs, setting.problem)
    page = seeds.Page.merge([
        report.setting_page(cfg, setting),
        report.bounds_page(cfg, runs.summaries),
        report.trace_figures(runs.traces, setting.quantizer),
        report.scaling_page(cfg, sweeps),
        report.appendix_h_page(cfg, setting),
    ])
    yield cfg, setting, runs, sweeps, page
    for figure in page.figures.values():
        matplotlib.pyplot.close(figure)


def test_page_holds_every_name_the_chapter_cites(chapter):
    *_, page = chapter
    text = CHAPTER.read_text()
    cited = set(re.findall(r"\{glue:(?:text|md)\}`([A-Za-z0-9_]+)(?::[^`]*)?`", text))
    cited |= set(re.findall(r"\{glue:figure\} ([A-Za-z0-9_]+)", text))
    assert len(cited) > 50
    names = set(page.values) | set(page.figures) | set(page.markdown)
    assert cited <= names | CHAPTER_GLUES
    assert not names & CHAPTER_GLUES
    assert set(page.figures) == {"fig_bound", "fig_alignment", "fig_scaling"}
    for glued in CHAPTER_GLUES:
        assert f'glue("{glued}"' in text


def test_tables_carry_the_labels_the_chapter_shows_them_under(chapter):
    *_, page = chapter
    shown = set(re.findall(r'\.tables\["([a-z0-9-]+)"\]', CHAPTER.read_text()))
    assert shown == set(page.tables) == {"tab-bound-checks", "tab-bound-runs", "tab-appendix-h"}
    for name, table in page.tables.items():
        assert f":name: {name}\n" in table.data


def test_values_and_checks_at_the_quick_preset(chapter):
    cfg, setting, runs, sweeps, page = chapter
    assert page.values["n_cases"] == len(runs.summaries) == 5
    assert page.values["steps"] == f"{cfg.steps:,}" and page.values["sweep_points"] == len(cfg.sweep_sgd)
    assert page.values["holds_min"] == "100%"
    assert setting.alpha < 1 < setting.alpha_raw
    assert all(report.checks(runs, sweeps, setting).values())
