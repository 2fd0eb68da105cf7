"""Tests for qatlib.report.artefacts: what a results file records about the run that made it."""

from __future__ import annotations

from qatlib.report import artefacts


def test_provenance_records_the_xla_flags(monkeypatch):
    """A GPU artefact's determinism flag (scripts/gpu_artefacts.sh) travels with it; none is ''."""
    monkeypatch.setenv("XLA_FLAGS", "--xla_gpu_deterministic_ops=true")
    record = artefacts.provenance(data={"source": "idx"}, steps=3, seconds=1.5, config={"steps": 3}, preset="quick")
    assert record["xla_flags"] == "--xla_gpu_deterministic_ops=true"
    assert (record["steps"], record["seconds"], record["preset"], record["config"]) == (3, 1.5, "quick", {"steps": 3})
    monkeypatch.delenv("XLA_FLAGS")
    assert artefacts.provenance(data=None, steps=0, seconds=0.0, config={})["xla_flags"] == ""
