"""Tests for qatlib.report.measure's multi-process hand-over: the notebook that process 0 renders after
a multi-process run reads that run's artefact instead of training again in its one-process kernel."""

from __future__ import annotations

import pytest

from qatlib.experiments.resnet50 import PRESETS
from qatlib.report import artefacts, measure


def test_the_notebook_of_a_measured_run_reuses_its_artefact(monkeypatch, tmp_path):
    config = PRESETS["quick"]
    written = artefacts.write_json(tmp_path / "metrics.json", {"E_t": {}, "provenance": {"config": artefacts.to_jsonable(config)}})
    monkeypatch.setenv(measure.MEASURED_ENV, str(written))
    monkeypatch.setattr(measure, "run_experiment", lambda *a, **k: pytest.fail("must not train again"))
    out, path = measure.measure_resnet50(config, "quick")
    assert path == written and out["E_t"] == {}
    assert measure.measured_artefact(config.replace(total_steps=13)) is None  # another config: not this artefact
    monkeypatch.setenv(measure.MEASURED_ENV, str(tmp_path / "missing.json"))
    assert measure.measured_artefact(config) is None
