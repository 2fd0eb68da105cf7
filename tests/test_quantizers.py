"""Tests for qatlib.quantizers: Eq. 1, the paper's level layout, and the walk over quantizer trees."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qatlib import metrics
from qatlib.quantizers import BinaryQuantizer, UniformQuantizer, is_quantizer_or_none, map_quantized, quantized_leaves

bits = st.integers(min_value=1, max_value=8)
w_maxes = st.floats(min_value=1e-3, max_value=10.0)


@given(bits, w_maxes)
def test_from_bits_layout(b, w_max):
    q = UniformQuantizer.from_bits(b, w_max)
    levels = q.levels()
    assert len(levels) == 2**b
    np.testing.assert_allclose(levels[[0, -1]], [-w_max, w_max], rtol=1e-12)
    np.testing.assert_allclose(np.diff(levels), 2 * w_max / (2**b - 1), rtol=1e-9)
    assert q.representable_range == pytest.approx((-w_max, w_max))
    if b > 1:
        # An even number of levels has no zero level.
        assert np.min(np.abs(levels)) > 0


@given(bits, w_maxes, st.lists(st.floats(-50, 50), min_size=1, max_size=20))
def test_output_is_a_level_and_idempotent(b, w_max, xs):
    q = UniformQuantizer.from_bits(b, w_max)
    x = jnp.asarray(xs, jnp.float32)
    y = q(x)
    levels = jnp.asarray(q.levels(), jnp.float32)
    assert bool(jnp.all(jnp.min(jnp.abs(y[:, None] - levels[None, :]), axis=1) <= 1e-6 * max(w_max, 1)))
    np.testing.assert_array_equal(q(y), y)


@given(bits, w_maxes, st.floats(-20, 20))
def test_boundaries_bracket_the_weight(b, w_max, x):
    q = UniformQuantizer.from_bits(b, w_max)
    w = np.float32(x)
    lo, hi = (float(v) for v in q.boundaries(jnp.float32(w)))
    slack = 4 * float(np.finfo(np.float32).eps) * max(abs(float(w)), w_max)  # float32 boundaries
    assert lo <= float(w) + slack and float(w) <= hi + slack
    if np.isfinite(lo) and np.isfinite(hi):
        assert hi - lo == pytest.approx(q.delta, abs=2 * slack)
    # A bin is infinite exactly at the ends of the level range.
    assert (lo == -np.inf) == (float(q(jnp.float32(w))) == q.levels()[0].astype(np.float32))


def test_edge_bins_are_infinite():
    q = UniformQuantizer.from_bits(2, 1.0)
    lo, hi = q.boundaries(jnp.array([-5.0, 5.0]))
    assert float(lo[0]) == -np.inf and float(hi[1]) == np.inf
    assert q.num_finite_bins == 2


def test_eq1_without_offset():
    q = UniformQuantizer(delta=0.5, lower=-2, upper=1)
    x = jnp.array([-3.0, -0.74, -0.2, 0.3, 0.9])
    np.testing.assert_allclose(q(x), [-1.0, -0.5, 0.0, 0.5, 0.5])


def test_jit_and_vmap_agree():
    q = UniformQuantizer.from_bits(3, 0.7)
    x = jnp.linspace(-1, 1, 101)
    np.testing.assert_array_equal(jax.jit(q.__call__)(x), q(x))
    np.testing.assert_array_equal(jax.vmap(q.__call__)(x), q(x))


def test_binary_is_sign():
    q = BinaryQuantizer(scale=0.5)
    np.testing.assert_array_equal(q(jnp.array([-2.0, -1e-9, 0.0, 3.0])), [-0.5, -0.5, 0.5, 0.5])
    assert q.num_levels == 2 and q.num_finite_bins == 0
    assert float(q.boundary_points()[0]) == 0.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(delta=0.0, lower=0, upper=3), "delta"),
        (dict(delta=-1.0, lower=0, upper=3), "delta"),
        (dict(delta=1.0, lower=3, upper=3), "lower must be < upper"),
        (dict(delta=1.0, lower=4, upper=1), "lower must be < upper"),
    ],
)
def test_bad_quantizer_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        UniformQuantizer(**kwargs)


@pytest.mark.parametrize("b", [0, -1, 1.5])
def test_bad_bits(b):
    with pytest.raises(ValueError, match="bits"):
        UniformQuantizer.from_bits(b, 1.0)


def test_bad_w_max_and_scale():
    with pytest.raises(ValueError, match="w_max"):
        UniformQuantizer.from_bits(2, 0.0)
    with pytest.raises(ValueError, match="scale"):
        BinaryQuantizer(scale=-1.0)


# ------------------------------------------------------------------- trees of per-layer quantizers
Q1, Q2 = UniformQuantizer.from_bits(2, 0.5), UniformQuantizer.from_bits(3, 1.0)
PARAMS = {"conv": {"kernel": jnp.array([[0.1, -0.3], [0.2, 0.6]]), "bias": jnp.array([0.33])}, "dense": {"kernel": jnp.array([0.9, -0.05])}}
QUANTIZERS = {"conv": {"kernel": Q1, "bias": None}, "dense": {"kernel": Q2}}


def test_is_quantizer_or_none():
    assert is_quantizer_or_none(None) and is_quantizer_or_none(Q1) and is_quantizer_or_none(BinaryQuantizer())
    assert not is_quantizer_or_none(jnp.zeros(2)) and not is_quantizer_or_none({"kernel": Q1}) and not is_quantizer_or_none(0.0)


@pytest.mark.parametrize("jit", [False, True])
def test_map_quantized_applies_fn_per_quantizer_and_leaves_none_subtrees(jit):
    def quantize_all(params):
        return map_quantized(lambda q, w: q(w), QUANTIZERS, params)

    out = (jax.jit(quantize_all) if jit else quantize_all)(PARAMS)
    np.testing.assert_array_equal(out["conv"]["kernel"], Q1(PARAMS["conv"]["kernel"]))
    np.testing.assert_array_equal(out["dense"]["kernel"], Q2(PARAMS["dense"]["kernel"]))
    np.testing.assert_array_equal(out["conv"]["bias"], PARAMS["conv"]["bias"])  # None: unchanged
    # A None over a whole subtree leaves all of it unchanged.
    partial = map_quantized(lambda q, w: q(w), {"conv": None, "dense": {"kernel": Q2}}, PARAMS)
    assert all(a is b for a, b in zip(jax.tree.leaves(partial["conv"]), jax.tree.leaves(PARAMS["conv"]), strict=True))


def test_map_quantized_with_one_quantizer_and_several_trees():
    shifted = jax.tree.map(lambda w: w + 0.01, PARAMS)
    out = map_quantized(lambda q, a, b: q(a) - q(b), Q2, PARAMS, shifted)  # one quantizer: every leaf
    for leaf_out, leaf_a, leaf_b in zip(jax.tree.leaves(out), jax.tree.leaves(PARAMS), jax.tree.leaves(shifted), strict=True):
        np.testing.assert_array_equal(leaf_out, Q2(leaf_a) - Q2(leaf_b))
    seen = []
    out = map_quantized(lambda q, a, b: seen.append(q) or a + b, QUANTIZERS, PARAMS, shifted)
    assert seen == [Q1, Q2]  # fn is called on quantized leaves only, in tree order
    np.testing.assert_array_equal(out["conv"]["bias"], PARAMS["conv"]["bias"])  # the first tree's leaf
    np.testing.assert_allclose(out["dense"]["kernel"], 2 * PARAMS["dense"]["kernel"] + 0.01)
    with pytest.raises(ValueError):
        map_quantized(lambda q, w: w, QUANTIZERS)


def test_quantized_leaves_paths_and_errors():
    leaves = list(quantized_leaves(PARAMS, QUANTIZERS))
    assert [(path, q) for path, _, q in leaves] == [("conv/kernel", Q1), ("dense/kernel", Q2)]
    np.testing.assert_array_equal(leaves[0][1], PARAMS["conv"]["kernel"])
    with pytest.raises(ValueError, match="params tree does not"):
        list(quantized_leaves({"conv": PARAMS["conv"]}, QUANTIZERS))
    assert metrics.quantized_leaves is quantized_leaves  # still importable from metrics, the same object
