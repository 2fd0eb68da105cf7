"""Tests for qatlib.report.resnet50: what the ResNet50 chapter glues and shows, with and without the
committed artefacts (each test points ``$QATLIB_RESULTS_DIR`` at its own ``tmp_path``, so the
checkout's ``results/`` decides nothing here)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from qatlib import files
from qatlib.experiments.resnet50 import PRESETS
from qatlib.report import artefacts, seeds
from qatlib.report import resnet50 as report
from qatlib.report.paper import paper_tables

ROOT = Path(__file__).resolve().parents[2]
#: A real single-run artefact of the chapter (the committed default preset's), the shape
#: ``measure_resnet50`` returns: the build's ``run_json`` in these tests.
COMMITTED_RUN = ROOT / "results" / "resnet50" / "default" / "metrics.json"
CHAPTER = ROOT / "book" / "resnet50.md"


@pytest.fixture
def run_json():
    if not COMMITTED_RUN.is_file():
        pytest.skip("results/resnet50/default is not in this checkout")
    out = json.loads(COMMITTED_RUN.read_text())
    out["provenance"]["config"]["init_seed"] = 0  # the seed its records carry
    return out


@pytest.fixture
def results(tmp_path, monkeypatch):
    """An empty results root: no committed artefact of any chapter."""
    monkeypatch.setenv(artefacts.RESULTS_ENV, str(tmp_path))
    return tmp_path


def seeded(run: dict, scales=(1.0, 1.1, 0.9)) -> dict:
    """A seeded artefact whose seed 0 is ``run`` and whose other seeds scale every Ē of it."""
    runs = []
    for seed, scale in enumerate(scales):
        for record in artefacts.run_records(run):
            pairs = {name: dataclasses.replace(pair, E_bar=pair.E_bar * scale) for name, pair in record.pairs.items()}
            runs.append(dataclasses.replace(record, seed=seed, pairs=pairs).to_json())
    return {"runs": runs}


def control(sgd_raw: float, adam_raw: float) -> dict:
    """A control run: mapped baseline Ē of 0.1% one log step after the branch for both optimizers."""
    curves = lambda raw: {"baseline": {"E_bar": [0.0, 0.001, 0.002]}, "baseline_raw_state": {"E_bar": [0.0, raw, 0.003]}}  # noqa: E731
    return {"E_t": {"steps": [16, 26, 36], "sgd": curves(sgd_raw), "adam": curves(adam_raw)},
            "model": {"name": "ResNet50"}, "provenance": {"steps": 160}}


def glued_names(text: str) -> set[str]:
    return set(re.findall(r"\{glue:text\}`([^`]+)`", text)) | set(re.findall(r"```\{glue:figure\} (\S+)", text))


def test_invariants_see_a_branch_that_does_not_start_at_zero(run_json):
    found = report.invariants(run_json, ("sgd", "adam"))
    assert found["branches"]["sgd"] == sorted(run_json["sgd"]) and found["E_zero_at_branch"]
    assert found["keys"] == ["E_t", "accuracy", "provenance"]
    run_json["E_t"]["adam"]["baseline"]["E_bar"][0] = 1e-3
    assert not report.invariants(run_json, ("sgd", "adam"))["E_zero_at_branch"]
    assert report.invariants(run_json, ("sgd",))["E_zero_at_branch"]  # only the optimizers asked for


def test_setup_values_name_the_model_and_keep_numbers_numbers(run_json):
    values = report.setup_values(run_json, PRESETS["default"], "default")
    assert values["resnet_model"] == "ResNet50"
    assert values["resnet_parameters"] == "23.5 million" and values["resnet_quantized"] == "23.5 million weights"
    assert values["resnet_alpha"] == "0.6095"  # one α over all layers, rounded before deduplication
    assert values["resnet_data_source"].startswith("Full MNIST") and values["resnet_image_size"] == "32×32"
    assert values["resnet_train_images"] == "60,000" and values["resnet_shared"] == str(run_json["E_t"]["shared_steps"])
    assert values["resnet_devices"].endswith("of a 2-core AMD EPYC machine")
    for name in ("resnet_bits", "resnet_batch", "resnet_log_every"):
        assert isinstance(values[name], int)
    run_json["model"] = {"name": "ResNet(stage_sizes=(1,), filters=4)", "parameters": 12345, "quantized_weights": 999}
    small = report.setup_values(run_json, PRESETS["quick"], "quick")
    assert small["resnet_model"].startswith("A reduced ResNet(") and "the quick preset" in small["resnet_model"]
    assert small["resnet_parameters"] == "12,345" and small["resnet_quantized"] == "999 weights"


def test_state_map_frame_factors_and_verdict():
    frame, factors, after, helped = report.state_map_frame(control(sgd_raw=0.004, adam_raw=0.003))
    assert after == 10 and helped
    assert factors == ["4.0 times (SGD)", "3.0 times (Adam)"]
    assert list(frame.index) == ["SGD", "Adam"] and frame.loc["SGD", "unmapped, step +10"] == "0.400%"
    assert not report.state_map_frame(control(sgd_raw=0.004, adam_raw=0.0015))[3]  # Adam's 1.5 times is not over 2


def test_state_map_reads_the_build_run_then_the_committed_control_then_says_none(results, run_json):
    values, table = report.state_map(run_json, PRESETS["default"])
    assert values["resnet_control_source"] == "no control run is stored in this checkout"
    assert "No control run" in table.data and "tab-resnet-state-map" in table.data
    files.write_json(artefacts.metrics_path("resnet50", report.CONTROL), control(0.004, 0.0015))
    values, table = report.state_map(run_json, PRESETS["default"])
    assert values["resnet_control_source"] == "ResNet50, 160 steps, the same batches as the default preset"
    assert values["resnet_control_after"] == "10 steps" and values["resnet_control_factor"] == "4.0 times (SGD) and 1.5 times (Adam)"
    assert values["resnet_control_verdict"].startswith("here the map does not")
    own = {**run_json, **control(0.01, 0.01)}
    assert report.state_map(own, PRESETS["state_map_control"])[0]["resnet_control_factor"] == "10 times (SGD) and 10 times (Adam)"


def test_largest_run_note_then_the_stored_tables(results, run_json):
    (note,) = report.largest_run("default", paper_tables())
    assert "Not run for this book" in note.data and "this page's `default` run" in note.data
    files.write_json(artefacts.metrics_path("resnet50", "mnist_10_epochs"), run_json)
    assert len(report.largest_run("mnist_10_epochs", paper_tables())) == 1  # the page's own preset is not 'larger'
    paragraph, *shown = report.largest_run("default", paper_tables())
    difference = 100 * (run_json["accuracy"]["sgd"]["q_net"]["val_acc"] - run_json["accuracy"]["sgd"]["ste_net"]["val_acc"])
    assert paragraph.data.startswith("The largest is the `mnist_10_epochs` preset's artefact (ResNet50, 160 steps)")
    assert f"{difference:+.2f} points with SGD" in paragraph.data
    assert [re.search(r":name: (\S+)", t.data).group(1) for t in shown] == [
        "tab-resnet-stored-error", "tab-resnet-stored-agreement", "tab-resnet-stored-accuracy", "tab-resnet-stored-provenance"]


def test_error_curves_mark_the_branch_and_span_the_run(run_json):
    figure = report.error_curves(run_json, PRESETS["default"])
    try:
        assert len(figure.axes) == 2
        for ax in figure.axes:
            assert ax.get_xlim() == (0, PRESETS["default"].total_steps)
            assert any(list(line.get_xdata()) == [run_json["E_t"]["shared_steps"]] * 2 for line in ax.lines)
    finally:
        plt.close(figure)


@pytest.mark.parametrize("present", [False, True])
def test_chapter_gives_every_name_the_page_uses(results, run_json, present):
    if present:
        files.write_json(artefacts.metrics_path("resnet50", report.ARTEFACT), seeded(run_json))
    page = report.chapter(run_json, PRESETS["default"], "default")
    plt.close("all")
    text = CHAPTER.read_text()
    assert glued_names(text) <= set(page.values) | set(page.figures)
    shown = set(re.findall(r'page\.tables\["([^"]+)"\]', text))
    assert shown <= set(page.tables)
    referenced = set(re.findall(r"\{numref\}`(tab-[^`]+)`", text)) - set(re.findall(r":name: (\S+)", text))
    assert referenced <= shown  # every table the prose refers to is one the page displays
    if present:
        assert page.values["resnet_seeds"] == "3"
        assert page.values["resnet_check"].startswith("this build's seed-0 run equals the committed one bit for bit")
        assert seeds.MISSING not in page.values.values()
    else:
        assert page.values["resnet_seeds"] == seeds.MISSING
        assert page.values["resnet_check"] == "no committed artefact to compare with"
        assert "not in this checkout" in page.tables["tab-resnet-glance"].data
