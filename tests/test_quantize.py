"""Tests for qatlib.quantize: exact forward, ∇·Q̂' backward, with and without jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import qatlib
from qatlib import estimators as E
from qatlib.quantizers import BinaryQuantizer, UniformQuantizer

Q = UniformQuantizer.from_bits(2, 0.1)
ESTS = [E.STE(), E.PWL(), E.MAD(), E.HTGE(5.5, scale="range", normalize=True), E.DSQ(0.3)]


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("est", ESTS, ids=repr)
def test_gradient_is_upstream_times_qhat_prime(est, jit):
    w = jnp.linspace(-0.15, 0.15, 37)
    upstream = jnp.cos(40 * w)

    def loss(x):
        return jnp.sum(upstream * qatlib.quantize(x, Q, est))

    grad = (jax.jit(jax.grad(loss)) if jit else jax.grad(loss))(w)
    np.testing.assert_allclose(grad, upstream * est.derivative(w, Q), rtol=1e-6, atol=1e-7)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-1, 1, width=32), min_size=1, max_size=32))
def test_forward_is_exactly_q(xs):
    w = jnp.asarray(xs, jnp.float32)
    for est in ESTS:
        np.testing.assert_array_equal(qatlib.quantize(w, Q, est), Q(w))


def test_vmap_over_quantize():
    w = jnp.linspace(-0.2, 0.2, 12).reshape(3, 4)
    est = ESTS[3]
    out = jax.vmap(lambda row: qatlib.quantize(row, Q, est))(w)
    np.testing.assert_array_equal(out, Q(w))


@pytest.mark.parametrize("jit", [False, True])
def test_quantize_tree_gradients(jit):
    params = {"k": jnp.array([0.02, -0.05]), "b": jnp.array([0.3])}
    est = ESTS[3]

    def loss(p):
        return sum(jnp.sum(jnp.sin(x)) for x in jax.tree.leaves(qatlib.quantize_tree(p, {"k": Q, "b": None}, est)))

    grads = (jax.jit(jax.grad(loss)) if jit else jax.grad(loss))(params)
    np.testing.assert_allclose(grads["k"], jnp.cos(Q(params["k"])) * est.derivative(params["k"], Q), rtol=1e-6)
    np.testing.assert_allclose(grads["b"], jnp.cos(params["b"]), rtol=1e-6)  # not quantized: plain sin'


@pytest.mark.parametrize("jit", [False, True])
def test_gradient_on_binary_and_custom_estimators(jit):
    q = BinaryQuantizer(0.5)
    w = jnp.linspace(-1.0, 1.0, 21)
    for est in (E.EDE(2.0), E.Custom(lambda w: 1.0 + 0.5 * jnp.cos(w))):
        grad = jax.grad(lambda x: jnp.sum(jnp.exp(w) * qatlib.quantize(x, q, est)))
        np.testing.assert_allclose((jax.jit(grad) if jit else grad)(w), jnp.exp(w) * est.derivative(w, q), rtol=1e-6)
