"""Tests for qatlib.models.resnet: the Flax-example ResNet50 structure with every kernel quantized."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qatlib
from qatlib import estimators, models
from qatlib.models.resnet import BottleneckResNetBlock, ResNet, ResNet50, count_quantized_kernels

HTGE = estimators.HTGE(5.5, scale="range", normalize=True)


@functools.cache
def resnet50_shapes():
    """Parameter shapes of ResNet50 (traced only: no weights are materialised)."""
    model = ResNet50(num_classes=1000, estimator=HTGE)
    return jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 224, 224, 3)), train=False))


def test_resnet50_has_the_bottleneck_3_4_6_3_structure():
    variables = resnet50_shapes()
    params = variables["params"]
    blocks = sorted(name for name in params if name.startswith("BottleneckResNetBlock"))
    assert len(blocks) == 3 + 4 + 6 + 3
    sizes = jax.tree_util.tree_leaves(jax.tree.map(lambda x: int(np.prod(x.shape)), params))
    assert sum(sizes) == pytest.approx(25.56e6, rel=0.01)  # torchvision/Flax ResNet50: 25,557,032
    assert count_quantized_kernels(params) == 1 + 16 * 3 + 4 + 1
    assert params["conv_init"]["kernel"].shape == (7, 7, 3, 64)
    assert params["head"]["kernel"].shape == (2048, 1000)
    assert "bias" not in params["conv_init"]  # convolutions have no bias; BatchNorm follows
    projections = [name for name in blocks if "conv_proj" in params[name]]
    assert len(projections) == 4  # the first block of each stage
    assert set(variables["batch_stats"]) == {name for name in params if "bn" in name or "Block" in name}


def test_quantizers_cover_every_kernel_with_its_he_uniform_range():
    params = resnet50_shapes()["params"]
    quantizers = models.quantizer_tree(params, bits=2)
    flat = jax.tree_util.tree_flatten_with_path(quantizers, is_leaf=lambda x: x is None or isinstance(x, qatlib.UniformQuantizer))[0]
    kernels = [(path, q) for path, q in flat if str(path[-1].key) == "kernel"]
    assert all(q is not None for _, q in kernels)
    assert all(q is None for path, q in flat if str(path[-1].key) != "kernel")
    stem = quantizers["conv_init"]["kernel"]
    assert stem.representable_range[1] == pytest.approx(np.sqrt(6 / (7 * 7 * 3)))


@pytest.fixture(scope="module")
def tiny():
    model = ResNet(stage_sizes=(1, 1), num_filters=4, num_classes=3, estimator=HTGE)
    variables = model.init(jax.random.key(0), jnp.zeros((2, 32, 32, 3)), train=False)
    return model, variables


def test_forward_uses_quantized_kernels_exactly(tiny):
    """Replacing every kernel by Q(kernel) changes nothing: the forward pass already sees Q(w)."""
    model, variables = tiny
    x = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
    quantizers = models.quantizer_tree(variables["params"], bits=2)
    snapped = jax.tree.map(
        lambda q, w: w if q is None else q(w), quantizers, variables["params"],
        is_leaf=lambda v: v is None or isinstance(v, qatlib.UniformQuantizer),
    )
    out = model.apply(variables, x, train=False)
    out_snapped = model.apply({**variables, "params": snapped}, x, train=False)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(out_snapped))


def test_train_mode_updates_batch_stats_and_eval_mode_does_not(tiny):
    model, variables = tiny
    x = jax.random.normal(jax.random.key(2), (4, 32, 32, 3)) + 3.0
    _, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
    before = jax.tree_util.tree_leaves(variables["batch_stats"])
    after = jax.tree_util.tree_leaves(updates["batch_stats"])
    assert any(not np.allclose(a, b) for a, b in zip(before, after, strict=True))
    logits = model.apply(variables, x, train=False)  # no mutable collections needed
    assert logits.shape == (4, 3) and logits.dtype == jnp.float32


def test_last_batchnorm_of_each_block_starts_at_zero_scale(tiny):
    _, variables = tiny
    for name, block in variables["params"].items():
        if name.startswith("BottleneckResNetBlock"):
            assert np.all(np.asarray(block["BatchNorm_2"]["scale"]) == 0.0)
            assert np.all(np.asarray(block["BatchNorm_0"]["scale"]) == 1.0)


def test_stem_padding_matches_the_flax_example(tiny):
    """pad 3 + VALID is the example's explicit padding [(3, 3), (3, 3)] (SAME would pad (2, 3))."""
    model, variables = tiny
    x = jax.random.normal(jax.random.key(3), (1, 32, 32, 3))
    kernel = variables["params"]["conv_init"]["kernel"]
    q = models.kernel_quantizer(2, 7 * 7 * 3)
    expected = jax.lax.conv_general_dilated(
        x, q(kernel), (2, 2), [(3, 3), (3, 3)], dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    _, inter = model.apply(variables, x, train=False, capture_intermediates=lambda m, _: m.name == "conv_init",
                           mutable=["intermediates"])
    got = inter["intermediates"]["conv_init"]["__call__"][0]
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-4, atol=1e-4)


def test_kernel_gradients_pass_through_the_estimator(tiny):
    model, variables = tiny
    x = jax.random.normal(jax.random.key(4), (2, 32, 32, 3))

    def loss(params, estimator):
        logits, _ = model.clone(estimator=estimator).apply(
            {**variables, "params": params}, x, train=True, mutable=["batch_stats"])
        return jnp.sum(logits**2)

    g_htge = jax.grad(loss)(variables["params"], HTGE)["head"]["kernel"]
    g_ste = jax.grad(loss)(variables["params"], estimators.STE())["head"]["kernel"]
    q = models.kernel_quantizer(2, variables["params"]["head"]["kernel"].shape[0])
    slope = HTGE.derivative(variables["params"]["head"]["kernel"], q)
    np.testing.assert_allclose(np.asarray(g_htge), np.asarray(g_ste * slope), rtol=1e-4, atol=1e-7)


def test_bad_inputs_raise():
    model = ResNet(stage_sizes=(1,), num_filters=4, num_classes=3, estimator=HTGE)
    with pytest.raises(ValueError, match="NHWC RGB"):
        model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 1)))
    with pytest.raises(ValueError, match="stage_sizes"):
        ResNet(stage_sizes=(), estimator=HTGE).init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))


def test_block_is_the_flax_example_bottleneck():
    block = BottleneckResNetBlock(
        4, conv=functools.partial(models.QuantizedConv, use_bias=False, padding="SAME", bits=None),
        norm=functools.partial(nn.BatchNorm, use_running_average=True), act=nn.relu, strides=(2, 2))
    variables = block.init(jax.random.key(0), jnp.zeros((1, 8, 8, 4)))
    y = block.apply(variables, jnp.ones((1, 8, 8, 4)))
    assert y.shape == (1, 4, 4, 16)  # 4x expansion, stride 2 in the 3x3 conv and the projection
