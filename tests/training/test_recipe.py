"""Tests for qatlib.training.recipe: the one place that decides STE-net's start, learning rate and
estimator (the paper's Tables 1-2 and Appendix G), and that every caller uses it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import qatlib
from qatlib import estimators as E
from qatlib import models
from qatlib.experiments import comparison, resnet50, twins
from qatlib.quantizers import UniformQuantizer
from qatlib.training.recipe import recipe_plan, ste_partner, ste_recipe

HTGE = E.HTGE(5.5, scale="range", normalize=True)


def _frozen_where_q_net_is(partner: E.Estimator, q_hat: E.Estimator, q: UniformQuantizer, w: jax.Array) -> None:
    """STE-net (not mapped: Adam) gets a zero gradient exactly where Q̂-net does."""
    np.testing.assert_array_equal(np.asarray(partner.derivative(w, q)) > 0, np.asarray(q_hat.derivative(w, q)) > 0)


@pytest.mark.parametrize("bits", [1, 2, 4])
def test_adam_partner_freezes_where_q_net_freezes(bits):
    # With Adam STE-net starts at w0, not M(w0): its partner is PWL on Q̂-net's own range. At 1 bit
    # the SGD partner (PWL on [M(w_min), M(w_max)]) has Q̂' = 1 at 1.5 w_max, where Q̂-net is frozen.
    q = UniformQuantizer.from_bits(bits, 0.1)
    recipe = ste_recipe({"kernel": jnp.zeros(3)}, {"kernel": q}, HTGE, "adam")
    assert float(recipe.estimator.derivative(jnp.array(0.15), q)) == 0.0
    _frozen_where_q_net_is(recipe.estimator, HTGE, q, jnp.linspace(-0.3, 0.3, 600))


def test_sgd_partner_at_one_bit_is_the_mapped_range():
    q = UniformQuantizer.from_bits(1, 0.1)
    recipe = ste_recipe({"kernel": jnp.array([0.15, -0.05])}, {"kernel": q}, HTGE, "sgd")
    assert float(recipe.estimator.derivative(jnp.array(0.15), q)) == 1.0  # M(0.1) lies far beyond 0.15
    w = jnp.linspace(-0.3, 0.3, 600)  # not on the range's edges, where float32 rounding decides
    # frozen in M's coordinates exactly where Q̂-net is frozen in its own
    np.testing.assert_array_equal(
        np.asarray(recipe.estimator.derivative(qatlib.weight_map(w, q, HTGE), q)) > 0, np.asarray(HTGE.derivative(w, q)) > 0
    )


def test_user_given_estimator_with_positive_tails_gets_the_ste():
    # mirror_partner asks the question M asks (clips), so a Custom Q̂' with MAD's positive tails,
    # probed numerically, gets MAD's own partner.
    q = UniformQuantizer.from_bits(2, 0.1)
    custom = E.Custom(lambda w: E.MAD().derivative(w, q))
    assert qatlib.mirror_partner(E.MAD(), q) == E.STE()
    assert qatlib.mirror_partner(custom, q) == E.STE()
    assert ste_partner(custom, {"k": q}, "adam") == E.STE()


def test_recipe_plan_by_family():
    q = {"k": UniformQuantizer.from_bits(2, 0.1)}
    assert recipe_plan(HTGE, q, "sgd")[2:] == (True, True)
    for name in ("adam", "adamw", "lion", "signsgd"):
        assert recipe_plan(HTGE, q, name)[2:] == (False, False)
    with pytest.raises(ValueError, match="optimizer must be"):
        recipe_plan(HTGE, q, "rmsprop")


@pytest.mark.parametrize("bits", [1, 2, 4])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_every_caller_uses_the_same_recipe(bits, optimizer):
    """comparison (MNIST, beyond), the ResNet50 branch plan and the float64 twins agree."""
    model = models.CholletConvNet(bits=bits, estimator=HTGE)
    params = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))["params"]
    quantizers = model.quantizers(params)
    recipe = ste_recipe(params, quantizers, HTGE, optimizer)

    nets, states, pairs = comparison.comparison(optimizer, model, params, quantizers, HTGE, 1e-3, 10)
    ste_net = next(n for n in nets if n.name.endswith("/ste_net"))
    ste_state = states[nets.index(ste_net)]
    assert ste_net.model.estimator == recipe.estimator
    jax.tree.map(np.testing.assert_array_equal, ste_state.params, recipe.params)
    assert pairs[0].mapped == (optimizer == "sgd")

    plan = resnet50.branch_plan("baseline", optimizer, HTGE, quantizers)
    assert plan.estimator == recipe.estimator
    assert plan.map_weights == (optimizer == "sgd") == plan.compare_mapped
    assert plan.lr_factor == ("alpha" if optimizer == "sgd" else 1.0)

    q = twins.make_quantizer(bits, 784)
    s_est, alpha = twins.ste_side(twins.PairConfig(optimizer=optimizer, bits=bits), q)
    layer = ste_recipe({"w": jnp.zeros(2)}, {"w": q}, HTGE, optimizer)
    assert s_est == layer.estimator
    assert alpha == pytest.approx(qatlib.alpha(q, HTGE) if optimizer == "sgd" else 1.0)
    if optimizer == "sgd":
        assert recipe.lr_factors["conv_0"]["kernel"] == pytest.approx(qatlib.alpha(q, HTGE))  # α is scale-free
        assert recipe.lr_factors["conv_0"]["bias"] == 1.0
    else:
        assert recipe.lr_factors is None


def test_sgd_recipe_trains_the_first_step_like_table_1():
    """One SGD step of STE-net from M(w0) at lr α·η moves each in-range weight by α·η·g (Table 1)."""
    q = UniformQuantizer.from_bits(2, 0.1)
    params = {"kernel": jnp.array([0.02, -0.07])}
    recipe = ste_recipe(params, {"kernel": q}, HTGE, "sgd")
    tx = optax.chain(optax.sgd(0.1), recipe.lr_scale)
    updates, _ = tx.update({"kernel": jnp.ones(2)}, tx.init(recipe.params))
    np.testing.assert_allclose(np.asarray(updates["kernel"]), -0.1 * qatlib.alpha(q, HTGE), rtol=1e-6)
