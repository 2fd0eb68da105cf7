"""The Intuition chapter's report gives every name its page cites, and the properties its story needs."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from qatlib.experiments.intuition import PRESETS
from qatlib.report import intuition as report

pytestmark = pytest.mark.slow  # the twins' quick run: about 30 s

CHAPTER = Path(__file__).resolve().parents[2] / "book" / "intuition.md"
#: Glued by the chapter's own cells (its preset, the wall time and the device), not by the report.
CHAPTER_OWN = {"preset", "bits", "sharpness", "wall", "device", "jax_version"}


@pytest.fixture(scope="module")
def pages():
    cfg = PRESETS["quick"]
    figure1, alphas = report.figure1(cfg)
    mirror, properties = report.mirror(cfg, alphas)
    yield figure1, alphas, mirror, properties
    plt.close("all")


def test_pages_hold_every_name_the_chapter_cites(pages):
    figure1, _, mirror, _ = pages
    text = CHAPTER.read_text()
    cited = set(re.findall(r"\{glue:(?:text|md)\}`([A-Za-z0-9_]+)(?::[^`]*)?`", text)) | set(re.findall(r"\{glue:figure\} (\S+)", text))
    produced = set(figure1.values) | set(figure1.figures) | set(mirror.values) | set(mirror.figures)
    assert cited - CHAPTER_OWN == produced
    assert set(mirror.tables) == {"tab-twin-lags"} and ":name: tab-twin-lags\n" in mirror.tables["tab-twin-lags"].data


def test_alpha_and_the_properties_of_the_story(pages):
    figure1, alphas, mirror, properties = pages
    assert alphas["STE"] == alphas["PWL"] == alphas["MAD"] == 1.0
    assert 0 < figure1.values["alpha_htge"] == alphas["HTGE"] < 1
    assert mirror.values["alpha_run"] == pytest.approx(alphas["HTGE"], rel=1e-6)  # the same HTGE, per layer on another range
    assert len(properties) == 3 and all(properties.values())
    assert "MNIST" in mirror.values["data_source"]
