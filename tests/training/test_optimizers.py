"""Optimizers of the experiments: the paper's two unchanged, the chapter "When is the STE enough?"'s additions."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from qatlib import estimators
from qatlib.quantizers import UniformQuantizer
from qatlib.training import optimizers


def _first_update(tx: optax.GradientTransformation, grads: dict, params: dict) -> dict:
    updates, _ = tx.update(grads, tx.init(params), params)
    return updates


PARAMS = {"kernel": jnp.array([0.02, -0.07, 0.3]), "bias": jnp.array([0.5])}
GRADS = {"kernel": jnp.array([1.0, -2.0, 0.5]), "bias": jnp.array([3.0])}


def test_paper_optimizers_are_exactly_optax():
    schedule = optimizers.warmup_cosine_schedule(0.1, 10)
    for ours, theirs in (
        (optimizers.make_optimizer("sgd", 0.1, 10), optax.sgd(schedule, momentum=0.9)),
        (optimizers.make_optimizer("adam", 0.1, 10), optax.adam(schedule, b1=0.9, b2=0.95)),
    ):
        state_a, state_b = ours.init(PARAMS), theirs.init(PARAMS)
        for _ in range(3):
            a, state_a = ours.update(GRADS, state_a, PARAMS)
            b, state_b = theirs.update(GRADS, state_b, PARAMS)
            for key in PARAMS:
                np.testing.assert_array_equal(a[key], b[key])


def test_coupled_weight_decay_adds_lambda_w_before_the_step():
    lam = 0.5
    tx = optimizers.make_optimizer("sgd", 1.0, 2, momentum=0.0, weight_decay=lam, warmup_fraction=0.0)
    update = _first_update(tx, GRADS, PARAMS)
    np.testing.assert_allclose(update["kernel"], -(GRADS["kernel"] + lam * PARAMS["kernel"]), rtol=1e-6)


def test_sign_sgd_moves_every_weight_by_eta():
    tx = optimizers.make_optimizer("signsgd", 1.0, 2, warmup_fraction=0.0)
    update = _first_update(tx, GRADS, PARAMS)
    np.testing.assert_array_equal(update["kernel"], -jnp.sign(GRADS["kernel"]))


def test_scale_by_derivative_multiplies_quantized_leaves_by_q_hat_prime():
    q = UniformQuantizer.from_bits(2, 0.1)
    estimator = estimators.HTGE(5.5, scale="range", normalize=True)
    tx = optimizers.scale_by_derivative({"kernel": q, "bias": None}, estimator)
    update = _first_update(tx, GRADS, PARAMS)
    np.testing.assert_allclose(update["kernel"], GRADS["kernel"] * estimator.derivative(PARAMS["kernel"], q), rtol=1e-6)
    np.testing.assert_array_equal(update["bias"], GRADS["bias"])
    assert float(update["kernel"][2]) == 0.0  # 0.3 lies beyond the range: Q-hat' = 0 there
    with pytest.raises(ValueError, match="needs the params"):
        tx.update(GRADS, tx.init(PARAMS))


def test_families_and_bad_names():
    assert {name: optimizers.family(name) for name in optimizers.FAMILIES} == {
        "sgd": "sgd", "adam": "adam", "adamw": "adam", "signsgd": "adam", "lion": "adam"
    }
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        optimizers.make_optimizer("rmsprop", 0.1, 10)
    with pytest.raises(ValueError, match="weight_decay must be >= 0"):
        optimizers.make_optimizer("sgd", 0.1, 10, weight_decay=-1.0)
