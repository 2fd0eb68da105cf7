"""Tests for qatlib.training.branch (and the branch plans of qatlib.experiments.resnet50): the optimizer-state maps at the branch point, branch plans, alignment."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import qatlib
from qatlib import estimators
from qatlib.experiments import resnet50
from qatlib.training import branch
from qatlib.quantizers import UniformQuantizer

Q = UniformQuantizer.from_bits(2, 0.3)
HTGE = estimators.HTGE(5.5, scale="range", normalize=True)

weights_in_range = st.lists(st.floats(-0.2999, 0.2999, allow_nan=False), min_size=1, max_size=8)


@settings(max_examples=30, deadline=None)
@given(weights_in_range)
def test_momentum_map_divides_by_the_estimator_slope_inside_the_range(ws):
    w = jnp.asarray(ws, jnp.float32)
    m = jnp.linspace(-1.0, 1.0, w.size, dtype=jnp.float32)
    mapped = branch.map_momentum(m, w, Q, HTGE)
    np.testing.assert_allclose(mapped * HTGE.derivative(w, Q), m, rtol=1e-5, atol=1e-7)


def test_momentum_map_uses_alpha_where_the_estimator_clips():
    w = jnp.array([-0.5, 0.31, 1.0])  # beyond the range [-0.3, 0.3]: Q-hat' = 0, M' = 1
    m = jnp.array([1.0, -2.0, 3.0])
    mapped = branch.map_momentum(m, w, Q, HTGE)
    assert np.all(np.isfinite(mapped))
    np.testing.assert_allclose(mapped, m / qatlib.alpha(Q, HTGE), rtol=1e-6)


@settings(max_examples=30, deadline=None)
@given(weights_in_range, st.floats(0.01, 10.0))
def test_adam_map_keeps_the_step_direction_and_size(ws, scale):
    w = jnp.asarray(ws, jnp.float32)
    mu = scale * jnp.sin(jnp.arange(w.size, dtype=jnp.float32) + 1.0)
    nu = mu**2 + 0.1 * scale**2
    mu2, nu2 = branch.map_adam_moments(mu, nu, w, Q, HTGE)
    np.testing.assert_allclose(mu2 / jnp.sqrt(nu2), mu / jnp.sqrt(nu), rtol=1e-4)
    np.testing.assert_allclose(mu2 * HTGE.derivative(w, Q), mu, rtol=1e-5, atol=1e-7)


def _loss_grad(estimator, g):
    """Gradient of f(Q(w)) = <g, Q(w)> through the custom VJP: g * Q-hat'(w)."""
    return jax.grad(lambda w: jnp.sum(g * qatlib.quantize(w, Q, estimator)))


def _first_step_errors(eta, map_state, optimizer):
    """Q-hat-net trains a few steps, branches; returns the alignment error after one more step."""
    rng = np.random.default_rng(0)
    w = jnp.asarray(rng.uniform(-0.25, 0.25, size=64))
    gradients = [jnp.asarray(rng.normal(size=64)) for _ in range(6)]
    if optimizer == "sgd":
        tx = optax.sgd(eta, momentum=0.9)
    else:
        tx = optax.adam(eta, b1=0.9, b2=0.95, eps=0.0)
    state = tx.init(w)
    for g in gradients[:5]:
        updates, state = tx.update(_loss_grad(HTGE, g)(w), state, w)
        w = optax.apply_updates(w, updates)
    plan = resnet50.branch_plan("baseline", optimizer, HTGE, Q)
    w_ste, state_ste = resnet50.branch_start(plan, w, state, Q, HTGE)
    if not map_state:
        state_ste = state
    scale = qatlib.alpha(Q, HTGE) if plan.lr_factor == "alpha" else 1.0
    g = gradients[5]
    updates, _ = tx.update(_loss_grad(HTGE, g)(w), state, w)
    w_next = optax.apply_updates(w, updates)
    updates_ste, _ = tx.update(_loss_grad(plan.estimator, g)(w_ste), state_ste, w_ste)
    w_ste_next = w_ste + scale * updates_ste
    reference = qatlib.weight_map(w_next, Q, HTGE) if plan.compare_mapped else w_next
    return float(jnp.max(jnp.abs(reference - w_ste_next)))


def test_sgd_momentum_map_makes_the_first_step_second_order():
    """With the mapped trace the first STE-net step is M'(w) times Q-hat-net's: error O(eta^2)."""
    with jax.enable_x64(True):
        mapped = [_first_step_errors(eta, True, "sgd") for eta in (1e-3, 5e-4)]
        unmapped = [_first_step_errors(eta, False, "sgd") for eta in (1e-3, 5e-4)]
    assert mapped[0] / mapped[1] == pytest.approx(4.0, rel=0.15)  # second order in eta
    assert unmapped[0] / unmapped[1] == pytest.approx(2.0, rel=0.15)  # first order without the map
    assert mapped[0] < 0.2 * unmapped[0]


def test_adam_moment_map_makes_the_first_step_identical():
    with jax.enable_x64(True):
        mapped = _first_step_errors(1e-3, True, "adam")
        unmapped = _first_step_errors(1e-3, False, "adam")
    assert mapped < 1e-12
    assert unmapped > 1e-6


def test_map_optimizer_state_walks_chains_and_injected_hyperparameters():
    params = {"kernel": jnp.array([0.1, -0.2]), "bias": jnp.array([1.0])}
    quantizers = {"kernel": Q, "bias": None}
    tx = optax.chain(optax.inject_hyperparams(optax.sgd)(learning_rate=0.1, momentum=0.9), optax.identity())
    state = tx.init(params)
    trace = {"kernel": jnp.array([1.0, 1.0]), "bias": jnp.array([5.0])}
    inner = state[0].inner_state
    state = (state[0]._replace(inner_state=(inner[0]._replace(trace=trace), *inner[1:])), state[1])
    mapped = branch.map_optimizer_state(state, params, quantizers, HTGE)
    new_trace = mapped[0].inner_state[0].trace
    np.testing.assert_allclose(new_trace["kernel"], 1.0 / HTGE.derivative(params["kernel"], Q), rtol=1e-6)
    np.testing.assert_array_equal(new_trace["bias"], trace["bias"])  # not quantized: unchanged
    assert jax.tree_util.tree_structure(mapped) == jax.tree_util.tree_structure(state)


def test_map_optimizer_state_refuses_an_unknown_params_shaped_state():
    params = {"kernel": jnp.array([0.1, -0.2])}
    state = optax.lion(1e-3).init(params)
    with pytest.raises(ValueError, match="don't know how to map"):
        branch.map_optimizer_state(state, params, {"kernel": Q}, HTGE)


def test_branch_plans_follow_tables_1_and_2():
    sgd = {name: resnet50.branch_plan(name, "sgd", HTGE, {"k": Q}) for name in resnet50.BRANCHES["sgd"]}
    assert sgd["baseline"].estimator == estimators.PWL()  # Appendix G partner spans each layer's range
    assert sgd["baseline"].map_weights and sgd["baseline"].map_state and sgd["baseline"].lr_factor == "alpha"
    assert sgd["lr_tweak"].estimator == HTGE and sgd["lr_tweak"].lr_factor == pytest.approx(1.01)
    assert not sgd["unadjusted"].map_weights and sgd["unadjusted"].lr_factor == 1.0
    adam = resnet50.branch_plan("baseline", "adam", HTGE, {"k": Q})
    assert not adam.map_weights and adam.map_state and adam.lr_factor == 1.0 and not adam.compare_mapped
    assert resnet50.branch_plan("baseline", "sgd", estimators.MAD(), {"k": Q}).estimator == estimators.STE()
    control = resnet50.branch_plan("baseline_raw_state", "sgd", HTGE, {"k": Q})
    assert control.map_weights and not control.map_state and control.lr_factor == "alpha"
    with pytest.raises(ValueError, match="unknown branch"):
        resnet50.branch_plan("unadjusted", "adam", HTGE, {"k": Q})
    with pytest.raises(ValueError, match="unknown optimizer"):
        resnet50.branch_plan("baseline", "rmsprop", HTGE, {"k": Q})


def test_shared_steps_is_ten_percent_and_validated():
    assert branch.shared_steps(100) == 10
    assert branch.shared_steps(12) == 1
    with pytest.raises(ValueError):
        branch.shared_steps(1)
    with pytest.raises(ValueError):
        branch.shared_steps(100, fraction=1.0)


class Crash(RuntimeError):
    pass


@pytest.mark.slow
def test_experiment_branches_and_resumes_exactly(tmp_path):
    """The real experiment path on a tiny ResNet: E = 0 at the branch, and a run killed after the
    branch resumes from its checkpoints to the uninterrupted run's final params."""
    from qatlib import models
    from qatlib.models import ResNet

    model = ResNet(stage_sizes=(1,), num_filters=4, num_classes=3, estimator=HTGE)
    initial = model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)), train=False)
    variables = {"params": initial["params"], "batch_stats": initial["batch_stats"]}
    quantizers = models.quantizer_tree(variables["params"], 2)

    def batch_fn(step):
        rng = np.random.default_rng(step)
        return {"image": rng.normal(size=(4, 16, 16, 3)).astype(np.float32),
                "label": rng.integers(0, 3, size=4).astype(np.int32)}

    def run(batches, directory):
        return resnet50.run_optimizer(
            optimizer="sgd", model=model, variables=variables, quantizers=quantizers, estimator=HTGE,
            learning_rate=0.05, total_steps=6, batch_fn=batches, shared_fraction=0.34, log_every=2,
            checkpoint_dir=str(directory), checkpoint_every=1,
        )

    reference = run(batch_fn, tmp_path / "a")
    assert reference.shared_steps == 2 and reference.curve_steps == [2, 4, 6]
    assert set(reference.states) == {"q_net", "ste_net", "q_net_lr_tweak", "ste_net_unadjusted"}
    for name in ("baseline", "lr_tweak", "unadjusted"):
        assert reference.curves[name]["E_bar"][0] < 1e-6  # every pair starts aligned
        assert reference.curves[name]["agreement"][0] == 1.0
    assert reference.metrics["unadjusted"]["E_bar"] > 0  # and the nets do move apart

    def crashing(step):
        if step == 4:
            raise Crash
        return batch_fn(step)

    with pytest.raises(Crash):
        run(crashing, tmp_path / "b")
    resumed = run(batch_fn, tmp_path / "b")
    for name, state in reference.states.items():
        for a, b in zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(resumed.states[name]), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert resumed.curves == reference.curves and resumed.losses == reference.losses
