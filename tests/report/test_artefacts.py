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


def test_differing_values_names_each_differing_leaf_and_skips_run_dependent_keys():
    first = {"sgd": {"baseline": {"E_bar": 0.5, "nets": ["a", "b"]}}, "E_t": {"steps": [0, 5]},
             "train_seconds": 10.0, "provenance": {"seconds": 12.0}, "resumed_from_step": 0}
    second = {"sgd": {"baseline": {"E_bar": 0.5000001, "nets": ["a", "b"]}}, "E_t": {"steps": [0, 5, 10]},
              "train_seconds": 11.0, "provenance": {"seconds": 99.0}, "resumed_from_step": 3}
    differ, compared = artefacts.differing_values(first, second)
    assert differ == ["/E_t/steps[2]", "/sgd/baseline/E_bar"]  # a value only one side has counts as differing
    assert compared == 6
    assert artefacts.differing_values(first, first) == ([], 5)
