"""Tests for qatlib.experiments.records: the typed results of a comparison run and their JSON."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import pytest

from qatlib import models
from qatlib.experiments import comparison
from qatlib.experiments import records
from qatlib.experiments.records import METRICS, NetId, NetRecord, PairMetrics, PairRecord, RunRecord, SweepPair, SweepRecord
from qatlib.report import artefacts


def committed_runs():
    """Every record of the committed seeded MNIST and ResNet50 artefacts, as JSON."""
    root = artefacts.results_root()
    paths = sorted([*root.glob("mnist/*/metrics.json"), *root.glob("resnet50/*/metrics.json")])
    return [(path, run) for path in paths for run in artefacts.read_json(path).get("runs", [])]


def test_every_committed_record_reads_and_writes_back_unchanged():
    runs = committed_runs()
    assert len({path for path, _ in runs}) >= 7  # the seeded presets are committed
    for path, run in runs:
        record = RunRecord.from_json(run)
        assert record.to_json() == run, path
        assert all(isinstance(pair, PairRecord) for pair in record.pairs.values())
        assert all(pair.nets is None or all(isinstance(net, NetId) for net in pair.nets) for pair in record.pairs.values())


def test_single_run_artefacts_read_as_one_record_per_optimizer():
    root = artefacts.results_root()
    singles = [artefacts.read_json(path) for path in sorted([*root.glob("mnist/*/metrics.json"), *root.glob("resnet50/*/metrics.json")])]
    singles = [artefact for artefact in singles if "runs" not in artefact]
    assert len(singles) >= 6
    for artefact in singles:
        records = artefacts.run_records(artefact)
        assert [r.optimizer for r in records] == [o for o in ("sgd", "adam") if o in artefact]
        for record in records:
            assert {name: pair.to_json() for name, pair in record.pairs.items()} == artefact[record.optimizer]
            assert {role: net.to_json() for role, net in record.nets.items()} == artefact["accuracy"][record.optimizer]


def test_none_is_left_out_and_an_unknown_field_is_refused():
    record = RunRecord(seed=1, spec={"optimizer": "adam", "steps": 10}, pairs={"baseline": PairRecord(E_bar=0.1)},
                       nets={"q_net": NetRecord(val_acc=0.9)})
    assert record.to_json() == {"seed": 1, "spec": {"optimizer": "adam", "steps": 10}, "pairs": {"baseline": {"E_bar": 0.1}},
                                "nets": {"q_net": {"val_acc": 0.9}}}
    assert (record.optimizer, record.steps, record.net("ste_net"), record.pair("unadjusted")) == ("adam", 10, NetRecord(), PairRecord())
    with pytest.raises(ValueError, match="RunRecord: unknown field 'sede'"):
        RunRecord.from_json({**record.to_json(), "sede": 2})
    with pytest.raises(ValueError, match="NetRecord: unknown field 'val_accuracy'"):
        RunRecord.from_json({**record.to_json(), "nets": {"q_net": {"val_accuracy": 0.9}}})


def test_a_net_is_a_label_and_a_role():
    net = NetId("sgd", "q_net_lr_tweak_0.1pct")
    assert NetId.parse(net.name) == net and net.name == "sgd/q_net_lr_tweak_0.1pct"
    for bad in ("q_net", "sgd/", ""):
        with pytest.raises(ValueError, match="label/role"):
            NetId.parse(bad)


def test_history_holds_the_logged_metrics_in_their_order():
    history = PairMetrics(E_bar=[0.0, 0.1], E_bar_conv=[0.0, 0.2], agreement=[1.0, 0.9], agreement_conv=[1.0, 0.8])
    assert [name for name, _ in history.items()] == list(METRICS) == ["E_bar", "E_bar_conv", "agreement", "agreement_conv"]
    pair = PairRecord(E_t=history, nets=(NetId("sgd", "q_net"), NetId("sgd", "ste_net")))
    assert PairRecord.from_json(pair.to_json()) == pair
    assert pair.to_json()["E_t"]["agreement"] == [1.0, 0.9]


def test_each_metric_name_is_the_name_of_the_field_it_keys():
    """The report keys JSON, logs and frames by these names: each must be the field it stands for."""
    pair = SweepPair(E_bar=0.1, E_bar_conv=0.2, agreement=0.9, agreement_conv=0.8, E_bar_mapped_scale=0.3)
    names = (records.E_BAR, records.E_BAR_CONV, records.AGREEMENT, records.AGREEMENT_CONV, records.E_BAR_MAPPED_SCALE)
    assert [pair.to_json()[name] for name in names] == [0.1, 0.2, 0.9, 0.8, 0.3]
    assert names[:4] == METRICS


def test_has_trained_reads_the_verdict_else_the_accuracy():
    assert not NetRecord(val_acc=0.99, trained=False).has_trained()
    assert NetRecord(val_acc=0.97).has_trained()
    assert not NetRecord(val_acc=0.10).has_trained()  # chance on 10 classes
    assert not NetRecord(val_acc=0.97, finite=False).has_trained()


def test_comparison_pairs_name_their_nets_by_id():
    model = models.CholletConvNet(bits=2, estimator=comparison.q_hat())
    params0 = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))["params"]
    nets, _, pairs = comparison.comparison("sgd", model, params0, model.quantizers(params0), comparison.q_hat(), 0.01, 10,
                                           extra_lr_tweaks=(1.1,), rounding_chunks=8)
    names = [net.name for net in nets]
    assert [(p.experiment, p.a.role, p.b.role) for p in pairs] == [
        ("baseline", "q_net", "ste_net"), ("lr_tweak", "q_net", "q_net_lr_tweak"), ("unadjusted", "q_net", "ste_net_unadjusted"),
        ("lr_tweak_10pct", "q_net", "q_net_lr_tweak_10pct"), ("rounding", "q_net", "q_net_rounding"),
    ]
    assert all(p.net_a in names and p.net_b in names and p.a.label == "sgd" for p in pairs)


def test_a_resnet50_result_gives_the_same_records_seeded_or_single():
    from qatlib.experiments.resnet50 import ResNet50Result

    pair = PairRecord(E_bar=0.01, E_bar_conv=0.02, agreement=0.9, agreement_conv=0.8, prediction_agreement=0.95,
                      nets=(NetId("sgd", "q_net"), NetId("sgd", "ste_net")))
    nets = {"q_net": NetRecord(train_acc=0.9, train_loss=0.3, val_acc=0.88, val_loss=0.35), "ste_net": NetRecord(val_acc=0.87)}
    result = ResNet50Result(
        pairs={"adam": {"baseline": pair}, "sgd": {"baseline": pair}}, nets={"adam": nets, "sgd": nets},
        history={"steps": [10, 20], "shared_steps": 10}, losses={}, description={"alpha": {"k": 0.6}},
        train_seconds=5.0, seconds=6.0, data_parallel_devices=1, parallel={},
    )
    seeded = result.records(seed=3, steps=20)
    assert [r.optimizer for r in seeded] == ["sgd", "adam"] and all(r.train_seconds == 5.0 for r in seeded)
    single = artefacts.run_records({**result.to_json(), "provenance": {"steps": 20, "config": {"seed": 3}}})
    assert [dataclasses.replace(r, train_seconds=5.0) for r in single] == seeded
    assert result.to_json()["sgd"]["baseline"]["nets"] == ["sgd/q_net", "sgd/ste_net"]


def _without_none(value):
    if isinstance(value, dict):
        return {key: _without_none(v) for key, v in value.items() if v is not None}
    return value


def test_every_committed_sweep_run_reads_back_with_its_values():
    paths = sorted(artefacts.results_root().glob("beyond/*/metrics.json"))
    assert len(paths) >= 9
    for path in paths:
        artefact = artefacts.read_json(path)
        for run, record in zip(artefact["runs"], artefacts.sweep_records(artefact), strict=True):
            assert record.to_json() == _without_none(run), path  # an explicit null reads as a field not measured
            assert SweepRecord.from_json(record.to_json()) == record
