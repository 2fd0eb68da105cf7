"""Tests for qatlib.experiments.comparison and .mnist (and the MNIST presets), and the claims and tables of qatlib.report: the experiments exactly as the paper defines them."""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qatlib
from qatlib import data, estimators, files, metrics, models
from qatlib.experiments import comparison, mnist
from qatlib.experiments import config as config_lib
from qatlib.experiments.mnist import PRESETS, MNISTConfig
from qatlib.experiments.records import NetId, RunRecord
from qatlib.report import artefacts, claims, measure, tables
from qatlib.report.paper import paper_tables

Q_HAT = comparison.q_hat()


@pytest.fixture(scope="module")
def setup():
    model = models.CholletConvNet(bits=2, estimator=Q_HAT)
    params0 = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))["params"]
    return model, params0, models.quantizer_tree(params0, 2)


@pytest.fixture(scope="module")
def small_data():
    full = data.load_mnist()
    return dataclasses.replace(
        full, train_images=full.train_images[:256], train_labels=full.train_labels[:256],
        val_images=full.val_images[:128], val_labels=full.val_labels[:128],
    )


def test_q_hat_is_the_scale_free_bin_normalised_htge(setup):
    _, _, quantizers = setup
    assert Q_HAT == estimators.HTGE(5.5, scale="range", normalize=True)
    alphas = {round(qatlib.alpha(q, Q_HAT), 6) for q in jax.tree.leaves(quantizers)}
    assert len(alphas) == 1  # the same shape in bin units for every layer
    assert 0 < alphas.pop() < 1
    assert comparison.ste_partner(Q_HAT, quantizers) == estimators.PWL()
    assert comparison.ste_partner(estimators.MAD(), quantizers) == estimators.STE()


def test_sgd_comparison_follows_table_1(setup):
    model, params0, quantizers = setup
    nets, states, pairs = comparison.comparison("sgd", model, params0, quantizers, Q_HAT, 1e-3, 100)
    assert [n.name for n in nets] == ["sgd/q_net", "sgd/ste_net", "sgd/q_net_lr_tweak", "sgd/ste_net_unadjusted"]
    assert nets[0].model.estimator == Q_HAT and nets[2].model.estimator == Q_HAT
    assert nets[1].model.estimator == estimators.PWL() and nets[3].model.estimator == estimators.PWL()
    mapped = qatlib.weight_map(params0, quantizers, Q_HAT)
    for a, b in zip(jax.tree.leaves(states[1].params), jax.tree.leaves(mapped), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-7)
    for i in (0, 2, 3):
        for a, b in zip(jax.tree.leaves(states[i].params), jax.tree.leaves(params0), strict=True):
            np.testing.assert_array_equal(a, b)
    assert [(p.experiment, p.mapped) for p in pairs] == [("baseline", True), ("lr_tweak", False), ("unadjusted", False)]

    # Learning rates: one step from the same gradient after the warm-up step.
    grads = jax.tree.map(jnp.ones_like, params0)
    alpha = qatlib.alpha(quantizers["conv_1"]["kernel"], Q_HAT)
    updates = {}
    for net, state in zip(nets, states, strict=True):
        opt_state = net.optimizer.init(params0)
        for _ in range(3):
            update, opt_state = net.optimizer.update(grads, opt_state, params0)
        updates[net.name] = update
    q, ste, tweak, unadj = (updates[n.name] for n in nets)
    np.testing.assert_allclose(ste["conv_1"]["kernel"], alpha * q["conv_1"]["kernel"], rtol=1e-5)
    np.testing.assert_allclose(ste["conv_1"]["bias"], q["conv_1"]["bias"], rtol=1e-6)  # biases: eta
    np.testing.assert_allclose(tweak["dense"]["kernel"], 1.01 * q["dense"]["kernel"], rtol=1e-5)
    np.testing.assert_allclose(unadj["dense"]["kernel"], q["dense"]["kernel"], rtol=1e-6)


def test_adam_comparison_follows_table_2(setup):
    model, params0, quantizers = setup
    nets, states, pairs = comparison.comparison("adam", model, params0, quantizers, Q_HAT, 1e-4, 100)
    assert [n.name for n in nets] == ["adam/q_net", "adam/ste_net", "adam/q_net_lr_tweak"]
    for a, b in zip(jax.tree.leaves(states[1].params), jax.tree.leaves(params0), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not any(p.mapped for p in pairs)
    with pytest.raises(ValueError, match="unknown optimizer .rmsprop."):
        comparison.comparison("rmsprop", model, params0, quantizers, Q_HAT, 1e-4, 100)


def test_run_mnist_writes_one_record_per_optimizer(small_data):
    config = MNISTConfig(
        steps=4, batch_size=16, log_every=2, tracked_weights=64, eval_batch_size=128, progress=False,
        extra_lr_tweaks=(1.1,), rounding_twin=True,
    )
    run = mnist.run_mnist(config, small_data)
    by_optimizer = {record.optimizer: record for record in run.records}
    assert list(by_optimizer) == ["sgd", "adam"]
    for optimizer, names in comparison.EXPERIMENTS.items():
        record = by_optimizer[optimizer]
        assert record.seed == 0 and record.steps == 4 and record.spec["lr"] == config.learning_rate(optimizer)
        assert list(record.pairs) == [*names, "lr_tweak_10pct", "rounding"]
        for name, entry in record.pairs.items():
            assert None not in (entry.E_bar, entry.E_bar_conv, entry.agreement, entry.agreement_conv, entry.authors_measure,
                                entry.prediction_agreement, entry.mirror_room, entry.E_t, entry.trained)
            assert 0.0 <= entry.E_bar < 0.05 and 0.0 <= entry.E_bar_conv < 0.05
            assert entry.path_length_conv > 0 and entry.authors_measure >= 0
            assert 0.9 <= entry.agreement <= 1.0
            assert entry.E_t.E_bar[0] == pytest.approx(0.0, abs=1e-6)  # E^(0) = 0
            assert entry.nets[0] == NetId(optimizer, "q_net")
        assert [net.role for net in record.pairs["rounding"].nets] == ["q_net", "q_net_rounding"]
        for role in ("q_net", "ste_net", "q_net_lr_tweak", "q_net_rounding"):
            assert set(record.nets[role].to_json()) == {"train_acc", "train_loss", "val_acc", "val_loss", "finite", "final_train_loss", "trained"}
        assert record.log_steps == [0, 2, 4]
        assert RunRecord.from_json(json.loads(json.dumps(files.to_jsonable(record.to_json())))) == record  # JSON round trip
    assert run.levels["sgd/q_net"].shape == (5, 64)
    out = {name: pair.to_json() for name, pair in by_optimizer["sgd"].pairs.items()}
    # E_bar with M: recomputed from the returned params.
    direct = metrics.E_bar(run.params["sgd/q_net"], run.params["sgd/ste_net"], run.quantizers, Q_HAT)
    assert out["baseline"]["E_bar"] == pytest.approx(direct)
    convs = metrics.select_layers(run.quantizers, lambda path: path.startswith("conv"))
    assert jax.tree.leaves(convs) == [run.quantizers[f"conv_{i}"]["kernel"] for i in range(3)]  # no dense
    conv_only = metrics.E_bar(run.params["sgd/q_net"], run.params["sgd/ste_net"], convs, Q_HAT)
    assert out["baseline"]["E_bar_conv"] == pytest.approx(conv_only)
    assert out["baseline"]["E_bar_conv"] != pytest.approx(out["baseline"]["E_bar"])
    # The authors' measure: summed conv error over w_max, over net b's summed conv path length.
    # Net b's path over the steps is at least the straight line from its start to its end.
    start, end = run.initial_params["sgd/ste_net"], run.params["sgd/ste_net"]
    straight = float(metrics.path_length(start, end, convs))
    assert out["baseline"]["path_length_conv"] >= straight * (1 - 1e-5) > 0
    summed = metrics.summed_alignment_error(run.params["sgd/q_net"], run.params["sgd/ste_net"], convs, Q_HAT)
    assert out["baseline"]["authors_measure"] == pytest.approx(summed / out["baseline"]["path_length_conv"])
    # The rounding twin sums the same gradients over other chunks: it is Q-hat-net to float32 rounding.
    assert 0 <= out["rounding"]["E_bar"] < 1e-4
    payload = measure.mnist_artefact(run.records, config, "test", small_data, 1.0)
    assert set(payload["provenance"]) >= {"data", "steps", "seconds", "device", "versions", "config", "workers"}
    assert payload["provenance"]["device"]["isa"] in ("AVX-512", "AVX2", "AVX", "SSE4.2", "unknown")
    assert payload["provenance"]["data"]["source"] == "idx"
    decisions = {(d.optimizer, d.claim): d for d in claims.decide_all(artefacts.run_records(payload))}
    assert set(decisions) == {("sgd", "A"), ("adam", "A"), ("sgd", "B"), ("sgd", "accuracy"), ("adam", "accuracy")}
    # 4 steps on 256 images: the nets are still near chance, so no verdict is given
    assert decisions["sgd", "A"].verdict == "not trained" and decisions["sgd", "A"].untrained_seeds == (0,)


def test_units_match_the_joint_run_bit_for_bit(small_data, tmp_path):
    """A preset's runs (seed x optimizer) in 2 worker processes give the numbers of one process
    training every optimizer's nets together: the artefact does not depend on how it was scheduled."""
    config = MNISTConfig(steps=3, batch_size=16, log_every=3, tracked_weights=16, eval_batch_size=500,
                         train_eval_examples=200, progress=False, seeds=(0, 1), workers=2, extra_lr_tweaks=(1.1,))
    units = mnist.unit_configs(config)
    assert [(u.seeds, u.optimizers) for u in units] == [((0,), ("sgd",)), ((0,), ("adam",)), ((1,), ("sgd",)), ((1,), ("adam",))]
    assert len({mnist.unit_key(u) for u in units}) == 4
    records = mnist.run_seeds(config, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.json"))) == 4  # each cached as it finished
    joint = mnist.run_mnist(config.replace(seeds=(1,), workers=1))
    volatile = artefacts.RUN_DEPENDENT_KEYS
    for record in joint.records:
        unit = next(r for r in records if r.seed == 1 and r.optimizer == record.optimizer)
        fresh = artefacts.read_json(artefacts.write_json(tmp_path / "joint.json", record.to_json()))
        differing, compared = artefacts.differing_values(
            {k: v for k, v in fresh.items() if k not in volatile}, {k: v for k, v in unit.to_json().items() if k not in volatile}
        )
        assert compared > 100 and differing == []
    # a second call reads the cache: nothing is trained again
    again = mnist.run_seeds(config.replace(workers=1), cache_dir=tmp_path)
    assert [r.train_seconds for r in again] == [r.train_seconds for r in records]


def test_a_net_that_does_not_train_is_flagged(small_data):
    config = MNISTConfig(steps=3, batch_size=16, log_every=3, tracked_weights=0, eval_batch_size=500,
                         train_eval_examples=100, progress=False, optimizers=("sgd",), sgd_lr=1e6)
    with pytest.warns(RuntimeWarning, match="did not train"):
        run = mnist.run_mnist(config, small_data)
    record = run.records[0]
    assert not record.nets["q_net"].trained
    assert not record.pairs["baseline"].trained
    decision = claims.decide(run.records, "sgd", "A")
    assert decision.verdict == "not trained" and decision.untrained_seeds == (0,)


def test_claims_follow_the_stated_thresholds():
    def fake(base, tweak, unadjusted, q_acc, ste_acc):
        acc = {"q_net": {"val_acc": q_acc}, "ste_net": {"val_acc": ste_acc}}
        return {
            "sgd": {"baseline": {"E_bar": base}, "lr_tweak": {"E_bar": tweak}, "unadjusted": {"E_bar": unadjusted}},
            "accuracy": {"sgd": acc},
        }

    good = claims.claims(fake(0.005, 0.0057, 0.025, 0.971, 0.970))["sgd"]
    assert good["A"] and good["B"] and good["accuracy"]
    bad = claims.claims(fake(0.02, 0.005, 0.03, 0.90, 0.95))["sgd"]
    assert not bad["A"] and not bad["B"] and not bad["accuracy"]


def test_presets_resolve_and_validate():
    assert set(PRESETS) == {
        "quick", "default", "paper", "paper_gpu", "sgd_no_momentum", "level_centred_control", "quick_seeds",
        "default_seeds", "sgd_no_momentum_seeds", "paper_seeds", "paper_lengths", "paper_no_momentum", "authors_setup",
    }
    seeded = config_lib.resolve(PRESETS, "paper_seeds")
    assert seeded.seeds == (0, 1, 2, 3, 4) and seeded.extra_lr_tweaks == (1.001, 1.1) and seeded.rounding_twin
    assert {k for k, v in seeded.model_dump().items() if v != PRESETS["paper"].model_dump()[k]} == {
        "seeds", "extra_lr_tweaks", "rounding_twin"
    }
    assert PRESETS["paper"].workers == 2  # its SGD and Adam runs side by side (benchmarks/: 1.2x sooner on 2 cores)
    lengths = config_lib.resolve(PRESETS, "paper_lengths")
    assert lengths.lengths == (100, 300, 1000) and lengths.seeds == (0, 1, 2)
    # the 1,000-step runs of paper_lengths are those of paper_seeds (one cache entry each)
    assert {mnist.unit_key(u) for u in mnist.unit_configs(lengths) if u.steps == 1000} <= {
        mnist.unit_key(u) for u in mnist.unit_configs(seeded)
    }
    authors = config_lib.resolve(PRESETS, "authors_setup")
    assert (authors.model, authors.quantize_dense, authors.sharpness, authors.alpha_on) == ("flax_example", False, 6.5, "slope")
    assert (authors.sgd_lr, authors.sgd_momentum, authors.adam_lr, authors.batch_size) == (1e-3, 0.9, 1e-4, 600)
    with pytest.raises(ValueError, match="flax_example.*quantize_dense=False"):
        config_lib.resolve(PRESETS, "authors_setup", {"quantize_dense": "true"})
    with pytest.raises(ValueError, match="seeds must not repeat"):
        config_lib.resolve(PRESETS, "quick", {"seeds": "1,1"})
    with pytest.raises(ValueError, match="extra_lr_tweaks"):
        config_lib.resolve(PRESETS, "quick", {"extra_lr_tweaks": "1.01"})
    with pytest.raises(ValueError, match="workers"):
        config_lib.resolve(PRESETS, "quick", {"workers": "0"})
    differ = {k for k, v in PRESETS["paper_gpu"].model_dump().items() if v != PRESETS["paper"].model_dump()[k]}
    assert differ == {"microbatch", "conv_impl", "checkpoint_every", "workers"}  # the same schedule, run as a GPU runs it (one process)
    assert config_lib.resolve(PRESETS, "level_centred_control").centre == "level"
    assert config_lib.resolve(PRESETS, "quick", {"estimator": "MAD"}).estimator == "mad"  # any registered one
    with pytest.raises(ValueError, match=r"estimator = 'nope': Value error, estimator must be one of"):
        config_lib.resolve(PRESETS, "quick", {"estimator": "nope"})
    with pytest.raises(ValueError, match="centre = 'middle': Input should be 'threshold' or 'level'"):
        config_lib.resolve(PRESETS, "quick", {"centre": "middle"})
    control = config_lib.resolve(PRESETS, "sgd_no_momentum")
    assert control.sgd_momentum == 0.0 and control.sgd_lr == 1e-2 and control.optimizers == ("sgd",)
    paper = config_lib.resolve(PRESETS, "paper")
    assert (paper.steps, paper.batch_size, paper.source, paper.bits) == (1000, 600, "idx", 2)
    assert paper.checkpoint_every == 100  # one epoch of 60,000 images
    assert (paper.sgd_lr, paper.adam_lr) == (1e-3, 1e-4)
    assert config_lib.resolve(PRESETS, "quick", {"steps": "7"}).steps == 7
    with pytest.raises(ValueError, match="unknown parameter"):
        config_lib.resolve(PRESETS, "quick", {"step": 7})
    with pytest.raises(ValueError, match="source"):
        config_lib.resolve(PRESETS, "quick", {"source": "internet"})
    with pytest.raises(ValueError, match="optimizers"):
        config_lib.resolve(PRESETS, "quick", {"optimizers": "sgd,rmsprop"})
    with pytest.raises(ValueError, match="steps"):
        config_lib.resolve(PRESETS, "quick", {"steps": "0"})


def test_one_bit_kernels_get_a_per_layer_mirror_partner_that_works_under_jit():
    model = models.CholletConvNet(bits=1, estimator=Q_HAT)
    x = jnp.asarray(data.load_mnist().train_images[:4])
    params0 = jax.jit(model.init)(jax.random.key(0), x[:1])["params"]
    quantizers = models.quantizer_tree(params0, 1)
    partner = comparison.ste_partner(Q_HAT, quantizers)
    assert isinstance(partner, comparison.LayerwisePartner)
    for q in jax.tree.leaves(quantizers):
        expected = qatlib.mirror_partner(Q_HAT, q)
        w = jnp.linspace(-3 * q.representable_range[1], 3 * q.representable_range[1], 101)
        np.testing.assert_array_equal(partner.derivative(w, q), expected.derivative(w, q))
    ste_model = model.clone(estimator=partner)
    grads = jax.jit(jax.grad(lambda p: ste_model.apply({"params": p}, x).sum()))(params0)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


def test_claims_frame_has_one_row_per_run():
    stored = {
        "sgd": {"baseline": {"E_bar": 0.01}, "lr_tweak": {"E_bar": 0.001}, "unadjusted": {"E_bar": 0.03}},
        "adam": {"baseline": {"E_bar": 0.002}, "lr_tweak": {"E_bar": 0.002}},
        "accuracy": {
            "sgd": {"q_net": {"val_acc": 0.9}, "ste_net": {"val_acc": 0.9}},
            "adam": {"q_net": {"val_acc": 0.95}, "ste_net": {"val_acc": 0.97}},
        },
    }
    frame = tables.claims_frame({"run": stored})
    row = frame.loc["run"]
    assert row["A (SGD)"] == "fails (10.00)"
    assert row["A (Adam)"] == "holds (1.00)"
    assert row["B (SGD)"] == "holds (3.00)"
    assert row["accuracy (Adam)"] == "fails (-2.00)"


RESUME_SCRIPT = """
import sys
from qatlib.experiments import mnist
from qatlib.experiments.mnist import MNISTConfig
config = MNISTConfig(**{config!r})
mnist.run_mnist(config, checkpoint_dir=sys.argv[1])
"""


def _resume_config():
    return dict(
        steps=12, batch_size=32, log_every=4, tracked_weights=32, eval_batch_size=2000, train_eval_examples=500,
        checkpoint_every=3, progress=False, optimizers=("sgd", "adam"),
    )


@pytest.mark.slow
def test_a_killed_run_resumes_and_ends_bit_identical(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    config = MNISTConfig(**_resume_config())
    straight = mnist.run_mnist(config)  # uninterrupted, no checkpoints

    # Kill a real process (SIGKILL: no clean-up) once it has written its second checkpoint.
    directory = tmp_path / "ckpt"
    script = tmp_path / "run.py"
    script.write_text(RESUME_SCRIPT.format(config=_resume_config()))
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1")
    process = subprocess.Popen([sys.executable, str(script), str(directory)], env=env)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if (directory / "6").is_dir():
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    process.wait()
    steps_on_disk = sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert steps_on_disk and max(steps_on_disk) < 12

    resumed = mnist.run_mnist(config, checkpoint_dir=directory)
    assert resumed.records[0].resumed_from_step == max(steps_on_disk)
    for name in straight.params:
        for a, b in zip(jax.tree.leaves(straight.params[name]), jax.tree.leaves(resumed.params[name]), strict=True):
            np.testing.assert_array_equal(a, b)
    volatile = artefacts.RUN_DEPENDENT_KEYS
    for one, other in zip(straight.records, resumed.records, strict=True):
        assert {k: v for k, v in one.to_json().items() if k not in volatile} == {k: v for k, v in other.to_json().items() if k not in volatile}
    np.testing.assert_array_equal(straight.levels["sgd/q_net"], resumed.levels["sgd/q_net"])


def test_bad_mnist_data_is_refused_before_training(tmp_path):
    import gzip
    import shutil

    for name, _, _ in data.MNIST_FILES.values():
        shutil.copy(data.mnist_dir() / name, tmp_path / name)
    target = tmp_path / "train-images-idx3-ubyte.gz"
    raw = bytearray(gzip.decompress(target.read_bytes()))
    raw[123456] ^= 0xFF
    target.write_bytes(gzip.compress(bytes(raw)))
    config = config_lib.resolve(PRESETS, "quick", {"data_dir": str(tmp_path)})
    with pytest.raises(data.CorruptDataError, match="train-images-idx3-ubyte.gz is corrupt"):
        config.preflight()


def test_microbatch_must_divide_the_batch_and_the_error_says_so():
    from qatlib.experiments import config as presets

    assert mnist.PRESETS["paper"].microbatch == 25 and 600 % 25 == 0
    chunked = {name for name, p in mnist.PRESETS.items() if p.microbatch}
    assert chunked == {"paper", "paper_seeds", "paper_lengths", "paper_no_momentum", "authors_setup"}  # committed artefacts
    with pytest.raises(ValueError, match="microbatch must divide batch_size.*7 does not divide 600"):
        presets.resolve(mnist.PRESETS, "paper", {"microbatch": 7})
