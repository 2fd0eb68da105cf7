"""Tests for qatlib.estimators: analytic values, flags, registry, errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qatlib import estimators as E
from qatlib.quantizers import BinaryQuantizer, UniformQuantizer

Q = UniformQuantizer.from_bits(2, 1.5)  # Δ = 1, levels ±0.5, ±1.5, boundaries −1, 0, 1


def all_estimators():
    return [
        E.STE(), E.PWL(), E.MAD(), E.HTGE(2.0), E.HTGE(5.5, scale="range", normalize=True), E.DSQ(0.2),
        E.HTGE(2.0, centre="level"), E.DSQ(0.2, centre="level"),
    ]


@pytest.mark.parametrize("est", all_estimators(), ids=lambda e: repr(e))
def test_jit_and_vmap_match_eager(est):
    w = jnp.linspace(-3, 3, 301)
    eager = est.derivative(w, Q)
    np.testing.assert_allclose(jax.jit(lambda x: est.derivative(x, Q))(w), eager, rtol=1e-6)
    np.testing.assert_allclose(jax.vmap(lambda x: est.derivative(x, Q))(w), eager, rtol=1e-6)


@pytest.mark.parametrize("est", all_estimators(), ids=lambda e: repr(e))
def test_cyclical_estimators_repeat_on_finite_bins(est):
    x = jnp.linspace(-0.5, 0.5, 101)
    np.testing.assert_allclose(est.derivative(-0.5 + x, Q), est.derivative(0.5 + x, Q), rtol=1e-5)
    assert est.is_cyclical


def test_flags():
    assert E.STE().is_strictly_positive and E.MAD().is_strictly_positive and E.EDE(1.0).is_strictly_positive
    assert not E.PWL().is_strictly_positive and not E.HTGE(1.0).is_strictly_positive and not E.DSQ().is_strictly_positive
    assert not E.EDE(1.0).is_cyclical


def test_clipping_estimators_vanish_beyond_range():
    w = jnp.array([-1.6, 1.6, 4.0])
    for est in (E.PWL(), E.HTGE(2.0), E.DSQ(0.2)):
        np.testing.assert_array_equal(est.derivative(w, Q), 0.0)


def test_htge_appendix_h_form():
    # Appendix B / H: the tanh is centred on the threshold between the two enclosing levels
    # (levels 0.5 and 1.5 enclose 0.7 and 0.9 and 1.3: threshold 1.0; levels -0.5 and 0.5 enclose 0.2).
    k = 3.0
    w = jnp.array([0.2, 0.7, 0.9, 1.0, 1.3])
    centre = np.array([0.0, 1.0, 1.0, 1.0, 1.0])
    expected = k / np.cosh(k * (np.asarray(w) - centre)) ** 2
    np.testing.assert_allclose(E.HTGE(k).derivative(w, Q), expected, rtol=1e-6)
    # The level-centred control is the same shape shifted by Δ/2: centred on the nearest level.
    level = np.array([0.5, 0.5, 0.5, 0.5, 1.5])
    np.testing.assert_allclose(E.HTGE(k, centre="level").derivative(w, Q), k / np.cosh(k * (np.asarray(w) - level)) ** 2, rtol=1e-6)


@pytest.mark.parametrize("make", [lambda c: E.HTGE(4.0, scale="bin", normalize=True, centre=c), lambda c: E.DSQ(0.2, centre=c)])
@pytest.mark.parametrize("bits", [1, 2, 4])
def test_paper_shape_peaks_at_thresholds_and_is_smallest_at_levels(make, bits):
    q = BinaryQuantizer(1.0) if bits == 1 else UniformQuantizer.from_bits(bits, 1.0)
    est, control = make("threshold"), make("level")
    levels, thresholds = jnp.asarray(q.levels()), jnp.asarray(q.boundary_points())
    inside = jnp.linspace(*q.representable_range, 4001)
    d = est.derivative(inside, q)
    np.testing.assert_allclose(est.derivative(thresholds, q), float(d.max()), rtol=1e-5)
    np.testing.assert_allclose(est.derivative(levels, q), float(d.min()), rtol=1e-5)
    assert float(est.derivative(thresholds, q).min()) > float(est.derivative(levels, q).max())
    # ... and the control the other way round.
    assert float(control.derivative(levels, q).min()) > float(control.derivative(thresholds, q).max())


def test_bad_centre():
    with pytest.raises(ValueError, match="centre must be one of"):
        E.HTGE(1.0, centre="middle")
    with pytest.raises(ValueError, match="centre must be one of"):
        E.DSQ(0.2, centre="bin")


def test_htge_scales_agree():
    # Δ = 1 and w_max = 1.5: sharpness 3 in weight units = 3 in bin units = 4.5 in range units.
    w = jnp.linspace(-1.4, 1.4, 57)
    a = E.HTGE(3.0).derivative(w, Q)
    np.testing.assert_allclose(E.HTGE(3.0, scale="bin").derivative(w, Q), a, rtol=1e-6)
    np.testing.assert_allclose(E.HTGE(4.5, scale="range").derivative(w, Q), a, rtol=1e-6)


@pytest.mark.parametrize("k", [0.5, 2.0, 7.0])
@pytest.mark.parametrize("centre", ["threshold", "level"])
def test_normalised_htge_rises_by_delta_from_level_to_level(k, centre):
    x = np.linspace(0.0, 1.0, 20001)  # from the level 0.5 to the level 1.5
    d = np.asarray(E.HTGE(k, normalize=True, centre=centre).derivative(jnp.asarray(0.5 + x, jnp.float32), Q))
    assert np.trapezoid(d, x) == pytest.approx(Q.delta, rel=1e-5)


def test_dsq_is_normalised_htge():
    a = 0.2
    k = math.log(2 / a - 1) / Q.delta
    w = jnp.linspace(-1.4, 1.4, 57)
    np.testing.assert_allclose(E.DSQ(a).derivative(w, Q), E.HTGE(k, normalize=True).derivative(w, Q), rtol=1e-5)
    assert math.tanh(k * Q.delta / 2) == pytest.approx(1 - a)


def test_mad_is_reciprocal_outside():
    q = UniformQuantizer.from_bits(2, 1.0)
    np.testing.assert_allclose(E.MAD().derivative(jnp.array([0.3, 2.0, -4.0]), q), [1.0, 0.5, 0.25], rtol=1e-6)


def test_ede_formula_and_schedule():
    q = BinaryQuantizer()
    est = E.EDE(t=2.0)
    w = jnp.array([0.0, 0.3, -1.0])
    expected = max(1 / 2.0, 1.0) * 2.0 * (1 - np.tanh(2.0 * np.asarray(w)) ** 2)
    np.testing.assert_allclose(est.derivative(w, q), expected, rtol=1e-6)
    assert E.EDE.at_progress(0.0).t == pytest.approx(0.1) and E.EDE.at_progress(1.0).t == pytest.approx(10.0)
    with pytest.raises(ValueError, match="binary"):
        est.derivative(w, Q)


def test_custom_passes_through():
    est = E.Custom(lambda w: 2.0 + jnp.sin(w))
    w = jnp.array([0.0, 1.0])
    np.testing.assert_allclose(est.derivative(w, Q), 2.0 + np.sin([0.0, 1.0]), rtol=1e-6)


def test_registry():
    assert set(E.names()) >= {"ste", "pwl", "mad", "htge", "dsq", "ede", "custom"}
    assert E.get("HTGE", sharpness=2.0) == E.HTGE(2.0)
    with pytest.raises(ValueError, match="unknown estimator 'nope'"):
        E.get("nope")


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: E.HTGE(0.0), "sharpness"),
        (lambda: E.HTGE(1.0, scale="parsec"), "scale"),
        (lambda: E.DSQ(1.5), "dsq_alpha"),
        (lambda: E.EDE(t=-1.0), "t > 0"),
        (lambda: E.PWL(1.0, -1.0), "lower < upper"),
        (lambda: E.Custom(3.0), "callable"),
    ],
)
def test_bad_parameters(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_default_hooks_say_no_closed_form():
    est = E.Custom(lambda w: 1.0 + 0.0 * w)
    x = jnp.asarray(0.1)
    assert est.bin_integral(x, Q) is None and est.tail_integral(x, Q) is None
    assert est.tail_integral_inverse(x, Q) is None and est.binary_integral(x, Q) is None
    assert est.lipschitz_constants(Q) is None and not est.weight_map_is_identity(Q)


def test_hooks_of_the_built_in_estimators():
    assert E.STE().weight_map_is_identity(Q) and E.PWL().weight_map_is_identity(Q)
    assert E.PWL(-2.0, 2.0).weight_map_is_identity(Q)
    assert not E.PWL(-0.5, 0.5).weight_map_is_identity(Q) and not E.MAD().weight_map_is_identity(Q)
    x = jnp.linspace(-0.5, 0.5, 5)
    np.testing.assert_allclose(E.STE().bin_integral(x, Q), x + 0.5)
    np.testing.assert_allclose(E.MAD().tail_integral_inverse(E.MAD().tail_integral(x + 1.0, Q), Q), x + 1.0, rtol=1e-6)
    np.testing.assert_allclose(E.EDE(2.0).binary_integral(x, BinaryQuantizer()), E.EDE(2.0).boundary_integral(x))
    assert E.EDE(2.0).bin_integral(x, Q) is None
    # Appendix H's closed form, for both centres and both tanh estimators.
    k = 2.0
    assert E.HTGE(k).lipschitz_constants(Q) == pytest.approx((k / math.cosh(k / 2) ** 2, k, 16 / (3 * math.sqrt(3))))
    assert E.HTGE(k, centre="level").lipschitz_constants(Q) == E.HTGE(k).lipschitz_constants(Q)
    assert E.DSQ(0.2).lipschitz_constants(Q) == pytest.approx(
        E.HTGE(math.log(2 / 0.2 - 1) / Q.delta, normalize=True).lipschitz_constants(Q)
    )


def test_declared_clipping():
    assert E.PWL().clips_beyond_range(Q) and E.HTGE(1.0).clips_beyond_range(Q)
    assert E.STE().clips_beyond_range(Q) is False and E.MAD().clips_beyond_range(Q) is False
    assert E.Custom(lambda w: w, clips_outside=True).clips_beyond_range(Q) is True
    assert E.Custom(lambda w: w, clips_outside=False).clips_beyond_range(Q) is False
    assert E.Custom(lambda w: w).clips_beyond_range(Q) is None  # undeclared: qatlib.mirror.clips detects it


def test_mirror_partner_lives_in_mirror():
    assert not hasattr(E, "mirror_partner")  # moved to qatlib.mirror.mirror_partner (qatlib.mirror_partner)


def test_register_makes_get_build_a_new_estimator():
    @E.register
    class Twice(E.STE):
        name = "twice_ste_for_test_estimators"

        def derivative(self, w, quantizer):
            return 2.0 * super().derivative(w, quantizer)

    assert E.register(Twice) is Twice  # registering again is a no-op
    assert "twice_ste_for_test_estimators" in E.names()
    assert isinstance(E.get("Twice_STE_for_test_estimators"), Twice)

    class Clash(E.STE):
        name = "ste"

    with pytest.raises(ValueError, match="taken"):
        E.register(Clash)
    with pytest.raises(ValueError, match="Estimator subclass"):
        E.register(int)
