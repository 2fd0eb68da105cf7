"""Tests for qatlib.models: quantized layers, per-layer quantizers, im2col == lax, the Chollet convnet."""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qatlib
from qatlib import estimators, models

HTGE = estimators.HTGE(5.5, scale="range", normalize=True)


@pytest.fixture(scope="module")
def net_and_params():
    model = models.CholletConvNet(bits=2, estimator=HTGE)
    params = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))["params"]
    return model, params


def images(n=3, seed=1):
    return jax.random.uniform(jax.random.key(seed), (n, 28, 28, 1))


def test_chollet_architecture(net_and_params):
    model, params = net_and_params
    shapes = jax.tree.map(lambda leaf: leaf.shape, params)
    assert shapes["conv_0"]["kernel"] == (3, 3, 1, 32)
    assert shapes["conv_1"]["kernel"] == (3, 3, 32, 64)
    assert shapes["conv_2"]["kernel"] == (3, 3, 64, 128)
    assert shapes["dense"]["kernel"] == (3 * 3 * 128, 10)
    assert sum(leaf.size for leaf in jax.tree.leaves(params)) == 104_202
    assert model.apply({"params": params}, images()).shape == (3, 10)


def test_he_uniform_init_fills_the_quantizer_range(net_and_params):
    _, params = net_and_params
    quantizers = models.quantizer_tree(params, bits=2)
    for name in ("conv_0", "conv_1", "conv_2", "dense"):
        kernel = params[name]["kernel"]
        q = quantizers[name]["kernel"]
        bound = math.sqrt(6 / math.prod(kernel.shape[:-1]))
        assert q.representable_range == pytest.approx((-bound, bound))
        assert q.delta == pytest.approx(2 * bound / 3)
        assert float(jnp.abs(kernel).max()) <= bound
        assert float(jnp.abs(kernel).max()) > 0.9 * bound
        assert quantizers[name]["bias"] is None


def test_forward_uses_exact_quantized_kernels(net_and_params):
    model, params = net_and_params
    quantizers = models.quantizer_tree(params, bits=2)
    quantized = jax.tree.map(
        lambda w, q: w if q is None else q(w), params, quantizers, is_leaf=lambda leaf: leaf is None
    )
    float_model = model.clone(bits=None)
    x = images()
    np.testing.assert_array_equal(
        np.asarray(model.apply({"params": params}, x)), np.asarray(float_model.apply({"params": quantized}, x))
    )
    levels = np.unique(np.asarray(quantized["conv_1"]["kernel"]))
    assert len(levels) == 4  # 2 bits: four levels +-w_max, +-w_max/3


@pytest.mark.parametrize("use_jit", [False, True])
def test_backward_is_upstream_gradient_times_estimator_derivative(net_and_params, use_jit):
    model, params = net_and_params
    quantizers = models.quantizer_tree(params, bits=2)
    x, y = images(), jnp.array([1, 2, 3])

    def loss(p, m):
        return -jnp.take_along_axis(jax.nn.log_softmax(m.apply({"params": p}, x)), y[:, None], 1).mean()

    grad = jax.jit(jax.grad(loss), static_argnums=1) if use_jit else jax.grad(loss)
    quantized = jax.tree.map(
        lambda w, q: w if q is None else q(w), params, quantizers, is_leaf=lambda leaf: leaf is None
    )
    upstream = grad(quantized, model.clone(bits=None))  # dL/dQ(w)
    ours = grad(params, model)
    for name in ("conv_0", "conv_2", "dense"):
        w, q = params[name]["kernel"], quantizers[name]["kernel"]
        expected = upstream[name]["kernel"] * HTGE.derivative(w, q)
        np.testing.assert_allclose(ours[name]["kernel"], expected, rtol=1e-5, atol=1e-8)
        np.testing.assert_allclose(ours[name]["bias"], upstream[name]["bias"], rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("padding,strides", [("VALID", (1, 1)), ("SAME", (1, 1)), ("SAME", (2, 2)), ("VALID", (2, 1))])
def test_im2col_convolution_equals_lax(padding, strides):
    layer = models.QuantizedConv(5, (3, 3), strides=strides, padding=padding, bits=2, estimator=estimators.STE())
    x = jax.random.normal(jax.random.key(2), (2, 9, 8, 3))
    variables = layer.init(jax.random.key(0), x)
    lax_layer = layer.clone(conv_impl="lax")
    np.testing.assert_allclose(layer.apply(variables, x), lax_layer.apply(variables, x), rtol=1e-5, atol=1e-5)
    g1 = jax.grad(lambda v: (layer.apply(v, x) ** 2).sum())(variables)
    g2 = jax.grad(lambda v: (lax_layer.apply(v, x) ** 2).sum())(variables)
    for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_max_pool_matches_flax_in_value():
    x = jax.random.normal(jax.random.key(4), (2, 11, 10, 3))
    np.testing.assert_array_equal(models.max_pool(x), nn.max_pool(x, (2, 2), (2, 2)))


def test_dense_layer_and_full_precision_option():
    layer = models.QuantizedDense(4, bits=None)
    x = jnp.ones((2, 6))
    variables = layer.init(jax.random.key(0), x)
    kernel = variables["params"]["kernel"]
    np.testing.assert_allclose(layer.apply(variables, x), x @ kernel, rtol=1e-6)
    assert models.quantizer_tree(variables["params"], bits=None)["kernel"] is None


def test_custom_quantize_predicate():
    params = {"conv_0": {"kernel": jnp.zeros((3, 3, 1, 4))}, "dense": {"kernel": jnp.zeros((8, 2))}}
    tree = models.quantizer_tree(params, bits=1, should_quantize=lambda path, leaf: path[0] != "dense")
    assert tree["dense"]["kernel"] is None
    assert tree["conv_0"]["kernel"].representable_range == pytest.approx((-math.sqrt(6 / 9), math.sqrt(6 / 9)))


def test_bad_inputs_fail_before_work():
    with pytest.raises(ValueError, match="bits"):
        models.kernel_quantizer(0, 9)
    with pytest.raises(ValueError, match="fan_in"):
        models.he_uniform_bound(0)
    with pytest.raises(ValueError, match="estimator"):
        models.CholletConvNet(bits=2).init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
    with pytest.raises(ValueError, match="padding"):
        models.QuantizedConv(2, padding="FULL", bits=None).init(jax.random.key(0), jnp.zeros((1, 4, 4, 1)))
    with pytest.raises(ValueError, match="NHWC"):
        models.CholletConvNet(bits=None).init(jax.random.key(0), jnp.zeros((28, 28)))


def test_quantize_is_the_core_custom_vjp():
    kernel = jnp.array([[0.05, 0.9], [2.0, -0.3], [0.0, 0.1], [0.2, 0.4], [-0.9, 0.7], [0.3, -2.0]])
    qk = models.kernel_quantizer(2, 6)
    np.testing.assert_array_equal(models.quantize_kernel(kernel, 2, HTGE), qk(kernel))
    np.testing.assert_array_equal(models.quantize_kernel(kernel, 2, HTGE), qatlib.quantize(kernel, qk, HTGE))


class TextbookOrderConvNet(models.CholletConvNet):
    """The Chollet convnet written as the book draws it: conv -> ReLU -> max-pool."""

    @nn.compact
    def __call__(self, x):
        for index, features in enumerate(self.features):
            x = models.QuantizedConv(features, bits=self.bits, estimator=self.estimator, name=f"conv_{index}")(x)
            x = nn.relu(x)
            if index < len(self.features) - 1:
                x = models.max_pool(x, 2)
        x = x.reshape(x.shape[0], -1)
        return models.QuantizedDense(self.num_classes, bits=self.bits, estimator=self.estimator, name="dense")(x)


def test_pool_before_relu_is_bit_identical_to_the_textbook_order(net_and_params):
    """CholletConvNet pools before its ReLU (faster); value and gradient must equal conv -> ReLU -> pool
    bit for bit, ties included: constant images make whole pooling windows equal and positive, and
    zero images make every ReLU output zero."""
    model, params = net_and_params
    textbook = TextbookOrderConvNet(bits=2, estimator=HTGE)
    batch = jnp.concatenate([images(4), jnp.ones((2, 28, 28, 1)), jnp.zeros((2, 28, 28, 1))])
    labels = jnp.arange(8) % 10
    # a bias that makes the first layer's outputs positive, so positive ties occur on constant images
    params = {**params, "conv_0": {**params["conv_0"], "bias": jnp.full((32,), 0.5)}}

    def loss(module, p):
        logits = module.apply({"params": p}, batch)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=1))

    ours, textbook_value = (jax.jit(jax.value_and_grad(lambda p, m=m: loss(m, p)))(params) for m in (model, textbook))
    np.testing.assert_array_equal(ours[0], textbook_value[0])
    for got, want in zip(jax.tree.leaves(ours[1]), jax.tree.leaves(textbook_value[1]), strict=True):
        np.testing.assert_array_equal(got, want)
