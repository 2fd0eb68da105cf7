"""Tests for qatlib.metrics: E_bar (Eq. 5, normalised), agreement, accuracy, crossings."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import qatlib
from qatlib import estimators, metrics

HTGE = estimators.HTGE(5.5, scale="range", normalize=True)


def two_layer_tree(seed=0):
    keys = jax.random.split(jax.random.key(seed), 2)
    params = {
        "conv": {"kernel": jax.random.uniform(keys[0], (3, 3, 1, 4), minval=-0.8, maxval=0.8), "bias": jnp.ones(4)},
        "dense": {"kernel": jax.random.uniform(keys[1], (6, 2), minval=-1.0, maxval=1.0), "bias": jnp.zeros(2)},
    }
    # The tree qatlib.models.quantizer_tree(params, bits=2) builds: 2 bits on [−w_max, w_max] with
    # w_max = √(6/fan_in) (He-uniform) for the kernels, None for the biases.
    quantizers = {
        "conv": {"kernel": qatlib.UniformQuantizer.from_bits(2, math.sqrt(6 / 9)), "bias": None},
        "dense": {"kernel": qatlib.UniformQuantizer.from_bits(2, math.sqrt(6 / 6)), "bias": None},
    }
    return params, quantizers


def test_E_bar_is_the_range_normalised_mean_absolute_difference():
    params, quantizers = two_layer_tree()
    shifted = jax.tree.map(lambda w: w + 0.01, params)
    ranges = {"conv": 2 * np.sqrt(6 / 9), "dense": 2 * 1.0}
    expected = (36 * 0.01 / ranges["conv"] + 12 * 0.01 / ranges["dense"]) / 48  # biases ignored
    assert metrics.E_bar(params, shifted, quantizers) == pytest.approx(expected, rel=1e-4)
    per_layer = metrics.E_bar_per_layer(params, shifted, quantizers)
    assert per_layer["conv/kernel"] == pytest.approx(0.01 / ranges["conv"], rel=1e-4)
    assert metrics.E_bar(params, params, quantizers) == 0.0


def test_E_bar_with_M_is_zero_for_the_M_initialised_partner():
    params, quantizers = two_layer_tree(1)
    mapped = qatlib.weight_map(params, quantizers, HTGE)
    assert metrics.E_bar(params, mapped, quantizers, HTGE) == pytest.approx(0.0, abs=1e-7)
    assert metrics.E_bar(params, mapped, quantizers) > 1e-3  # the unmapped variant is not zero
    assert metrics.agreement(params, mapped, quantizers) == 1.0  # M preserves bins


def test_agreement_counts_equal_levels():
    q = qatlib.UniformQuantizer.from_bits(2, 1.5)
    a = {"k": jnp.array([0.1, 0.9, -1.2, 0.4])}
    b = {"k": jnp.array([0.4, 1.1, -1.4, -0.4])}
    assert metrics.agreement(a, b, {"k": q}) == pytest.approx(0.5)
    assert metrics.agreement_per_layer(a, b, {"k": q}) == {"k": pytest.approx(0.5)}


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-2, 2, allow_nan=False, width=32), min_size=1, max_size=30), st.floats(-0.25, 0.25, width=32))
def test_small_E_means_agreement_away_from_boundaries(values, shift):
    q = qatlib.UniformQuantizer.from_bits(2, 1.5)
    a = {"k": jnp.asarray(values, jnp.float32)}
    b = {"k": a["k"] + shift}
    assert metrics.E_bar(a, b, {"k": q}) == pytest.approx(abs(shift) / 3.0, rel=1e-3, abs=1e-6)
    distance = np.min(np.abs(np.asarray(values)[:, None] - q.boundary_points()[None, :]), axis=1)
    if np.all(distance > abs(shift) + 1e-5):
        assert metrics.agreement(a, b, {"k": q}) == 1.0


def test_accuracy_loss_and_prediction_agreement():
    logits = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]))
    out = metrics.accuracy_and_loss(logits, np.array([0, 1]))
    assert out["accuracy"] == 0.5
    assert out["loss"] == pytest.approx(-(np.log(0.7) + np.log(0.1)) / 2, rel=1e-5)
    assert metrics.prediction_agreement(logits, logits[::-1]) == 0.0
    assert metrics.prediction_agreement(logits, logits + 3.0) == 1.0
    with pytest.raises(ValueError):
        metrics.accuracy_and_loss(logits, np.array([0]))
    with pytest.raises(ValueError):
        metrics.prediction_agreement(logits, logits[:1])


def test_flat_level_indices_is_jit_safe_and_samples():
    params, quantizers = two_layer_tree(2)
    sample = np.array([0, 5, 40, 47])
    eager = metrics.flat_level_indices(params, quantizers, sample)
    jitted = jax.jit(lambda p: metrics.flat_level_indices(p, quantizers, sample))(params)
    np.testing.assert_array_equal(eager, jitted)
    full = metrics.flat_level_indices(params, quantizers)
    assert full.shape == (48,) and full.dtype == jnp.int8
    assert set(np.unique(full).tolist()) <= {0, 1, 2, 3}
    np.testing.assert_array_equal(full[sample], eager)


def test_crossing_statistics_pairs_crossings_and_detects_different_sequences():
    # weight 0: both 0 -> 1, at steps 2 and 4; weight 1: a goes 1 -> 2 -> 1, b stays; weight 2: still.
    a = np.array([[0, 1, 3], [0, 1, 3], [1, 2, 3], [1, 1, 3], [1, 1, 3]])
    b = np.array([[0, 1, 3], [0, 1, 3], [0, 1, 3], [0, 1, 3], [1, 1, 3]])
    stats = metrics.crossing_statistics(a, b)
    assert stats["moving_weights"] == 2
    assert stats["same_sequence"] == pytest.approx(2 / 3)
    assert stats["same_sequence_among_moving"] == 0.5
    assert stats["crossings"] == 1 and stats["mean_offset"] == 2.0 and stats["max_offset"] == 2
    assert stats["crossings_a"] == 3 and stats["crossings_b"] == 1
    identical = metrics.crossing_statistics(a, a)
    assert identical["same_sequence"] == 1.0 and identical["same_step_share"] == 1.0
    with pytest.raises(ValueError):
        metrics.crossing_statistics(a, b[:, :2])


def test_quantizer_tree_must_match_params():
    params, quantizers = two_layer_tree()
    with pytest.raises(ValueError, match="params tree"):
        metrics.E_bar({"conv": params["conv"]}, params, quantizers)
    with pytest.raises(ValueError, match="no quantized"):
        metrics.E_bar(params, params, jax.tree.map(lambda _: None, params))


def test_mapped_scale_divides_by_the_range_in_ste_net_coordinates():
    params_a, quantizers = two_layer_tree(0)
    params_b = two_layer_tree(1)[0]
    # 2 bits: M fixes the range's ends, so both scales agree.
    assert metrics.E_bar(params_a, params_b, quantizers, HTGE, scale="mapped") == pytest.approx(
        metrics.E_bar(params_a, params_b, quantizers, HTGE), rel=1e-6
    )
    # 1 bit: M maps w_max far beyond itself; the mapped scale is that much wider.
    q = qatlib.UniformQuantizer.from_bits(1, 0.5)
    a, b = {"k": jnp.array([0.1, -0.3])}, {"k": jnp.array([0.2, 0.4])}
    wide = float(metrics.weight_map_jit(jnp.array(0.5), q, HTGE))
    assert wide > 5 * 0.5
    ratio = metrics.E_bar(a, b, {"k": q}, HTGE) / metrics.E_bar(a, b, {"k": q}, HTGE, scale="mapped")
    assert ratio == pytest.approx(wide / 0.5, rel=1e-5)
    with pytest.raises(ValueError, match="scale must be 'range' or 'mapped'"):
        metrics.E_bar(a, b, {"k": q}, HTGE, scale="bogus")
