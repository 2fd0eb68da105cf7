"""A new estimator defined outside the library, as one small subclass, works end to end.

``Cosine`` is a cosine-modulated, positive, cyclical Q̂' with closed forms for J (the
``bin_integral`` hook) and for (L₋, L₊, L′) (the ``lipschitz_constants`` hook); ``ClippedCosine``
is the same shape inside the representable range and zero beyond it, with no closed form at all.
Both go through the public API only: ``qatlib.alpha``, ``qatlib.weight_map``,
``qatlib.inverse_weight_map``, ``qatlib.quantize``, ``qatlib.theory``, ``qatlib.mirror_partner``
and ``qatlib.estimators.get``. The closed forms must agree with the quadrature path.
"""

import dataclasses
import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qatlib
from qatlib import estimators, theory
from qatlib.estimators import Estimator
from qatlib.quantizers import BinaryQuantizer, UniformQuantizer


@estimators.register
@dataclasses.dataclass(frozen=True)
class Cosine(Estimator):
    """Q̂'(w) = b + a·cos(2πx/Δ), x = w − Q(w), 0 ≤ a < b: b + a on the levels, b − a at the thresholds.

    α = √(b² − a²) (Eq. 4); L₋ = b − a, L₊ = b + a, L′ = 2πa/Δ.
    """

    a: float = 0.5
    b: float = 1.5
    name: ClassVar[str] = "cosine"
    is_symmetric: ClassVar[bool] = True  # Q̂'(c + s) = Q̂'(c − s) about every level c

    def derivative(self, w, quantizer):
        w = jnp.asarray(w)
        return self.b + self.a * jnp.cos(2 * jnp.pi * (w - quantizer(w)) / quantizer.delta)

    def bin_integral(self, x, quantizer):
        # J(x) = ∫_{−Δ/2}^{x} ds / (b + a cos(2πs/Δ)); with v = π(x/Δ + ½) ∈ [0, π] (half the angle
        # from −π) it is Δ/(π√(b² − a²))·atan2(√(b + a)·sin v, √(b − a)·cos v); |sin v| keeps a
        # float rounding at v = π off the branch cut.
        v = jnp.pi * (x / quantizer.delta + 0.5)
        ratio = jnp.arctan2(math.sqrt(self.b + self.a) * jnp.abs(jnp.sin(v)), math.sqrt(self.b - self.a) * jnp.cos(v))
        return quantizer.delta / (math.pi * math.sqrt(self.b**2 - self.a**2)) * ratio

    def lipschitz_constants(self, quantizer):
        return (self.b - self.a, self.b + self.a, 2 * math.pi * self.a / quantizer.delta)


@dataclasses.dataclass(frozen=True)
class ClippedCosine(Estimator):
    """The same Q̂' inside the representable range, zero beyond it; no closed forms at all."""

    a: float = 0.5
    b: float = 1.5
    name: ClassVar[str] = "clipped_cosine"
    clips: ClassVar[bool] = True

    def derivative(self, w, quantizer):
        w = jnp.asarray(w)
        return jnp.where(quantizer.in_range(w), Cosine(self.a, self.b).derivative(w, quantizer), 0.0)


QUANTIZERS = {
    "3bit": UniformQuantizer.from_bits(3, 0.4),
    "2bit_offset": UniformQuantizer(delta=0.25, lower=-1, upper=2, offset=0.1),
    "binary": BinaryQuantizer(0.3),
}
EPS32 = float(np.finfo(np.float32).eps)


def weights(q, n=301):
    lo, hi = q.representable_range
    return jnp.linspace(lo - 0.6 * (hi - lo), hi + 0.6 * (hi - lo), n, dtype=jnp.float32)


def maybe_jit(fn, jit):
    return jax.jit(fn) if jit else fn


def test_registered_by_name():
    assert "cosine" in estimators.names()
    assert estimators.get("Cosine", a=0.3) == Cosine(a=0.3)


@pytest.mark.parametrize("qname", ["3bit", "2bit_offset"])
def test_alpha_closed_form_and_quadrature_agree_with_the_analytic_value(qname):
    q = QUANTIZERS[qname]
    for est in (Cosine(), Cosine(0.9, 1.0)):
        expected = math.sqrt(est.b**2 - est.a**2)  # Δ / ∫_bin ds/(b + a cos) = √(b² − a²)
        assert qatlib.alpha(q, est) == pytest.approx(expected, rel=1e-12)
        assert qatlib.alpha(q, est, method="closed_form") == pytest.approx(expected, rel=1e-12)
        assert qatlib.alpha(q, est, method="quadrature") == pytest.approx(expected, rel=1e-9)
    # Without the hook the same Q̂' goes by quadrature, to the same α; "closed_form" says it has none.
    assert qatlib.alpha(q, ClippedCosine()) == pytest.approx(math.sqrt(2.0), rel=1e-9)
    with pytest.raises(ValueError, match="no closed form"):
        qatlib.alpha(q, ClippedCosine(), method="closed_form")
    assert qatlib.alpha(QUANTIZERS["binary"], Cosine()) == 1.0  # no finite bin (Section 5.1)


@pytest.mark.parametrize("qname", sorted(QUANTIZERS))
def test_m_closed_form_agrees_with_quadrature(qname):
    q, est = QUANTIZERS[qname], Cosine()
    with jax.enable_x64(True):  # float64: compares the formulas, not float32 conditioning
        w = jnp.asarray(weights(q, 1201), jnp.float64)
        closed = qatlib.weight_map(w, q, est)  # J from the hook inside the range (tails: quadrature)
        quadrature = qatlib.weight_map(w, q, est, method="quadrature")
        np.testing.assert_allclose(closed, quadrature, rtol=0, atol=1e-6 * q.delta)
        # Inside the range the hook-free clipping twin integrates the same 1/Q̂'.
        inside = q.in_range(w)
        np.testing.assert_allclose(qatlib.weight_map(w, q, ClippedCosine())[inside], closed[inside], rtol=0, atol=1e-6 * q.delta)
        # M' = α/Q̂' (Eq. 13) of the closed form.
        slope = jax.vmap(jax.grad(lambda x: qatlib.weight_map(x, q, est)))(w[inside])
        np.testing.assert_allclose(slope, qatlib.weight_map_derivative(w[inside], q, est), rtol=1e-9)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("est", [Cosine(), ClippedCosine()], ids=lambda e: e.name)
@pytest.mark.parametrize("qname", sorted(QUANTIZERS))
def test_m_fixes_boundaries_keeps_bins_and_inverts(qname, est, jit):
    q = QUANTIZERS[qname]
    M = maybe_jit(lambda x: qatlib.weight_map(x, q, est), jit)
    M_inverse = maybe_jit(lambda v: qatlib.inverse_weight_map(v, q, est), jit)
    w = weights(q)
    m = M(w)
    scale = float(jnp.max(jnp.abs(w))) + q.delta
    b = jnp.asarray(q.boundary_points(), jnp.float32)
    np.testing.assert_allclose(M(b), b, rtol=0, atol=16 * EPS32 * scale)
    lo_b, hi_b = q.boundaries(w)
    near = jnp.minimum(jnp.abs(w - lo_b), jnp.abs(w - hi_b)) < 1e-5 * q.delta
    assert bool(jnp.all((q(m) == q(w)) | near))
    assert bool(jnp.all(jnp.diff(m) > 0))  # a monotone bijection
    np.testing.assert_allclose(M_inverse(m), w, rtol=0, atol=64 * EPS32 * scale)  # M⁻¹ ∘ M = id


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("est", [Cosine(), ClippedCosine()], ids=lambda e: e.name)
def test_quantize_backward_pass_is_upstream_times_qhat_prime(est, jit):
    q = QUANTIZERS["3bit"]
    w = weights(q, 97)
    upstream = jnp.sin(7.0 * w) + 0.1

    def loss(x):
        return jnp.sum(upstream * qatlib.quantize(x, q, est))

    np.testing.assert_array_equal(qatlib.quantize(w, q, est), q(w))  # forward: Q(w) exactly
    grad = maybe_jit(jax.grad(loss), jit)(w)
    np.testing.assert_allclose(grad, upstream * est.derivative(w, q), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("qname", sorted(QUANTIZERS))
def test_bin_integral_hook_is_the_integral_of_one_over_qhat_prime(qname):
    q, est = QUANTIZERS[qname], Cosine()
    x64 = np.linspace(-q.delta / 2, q.delta / 2, 20001)
    reciprocal = 1 / (est.b + est.a * np.cos(2 * np.pi * x64 / q.delta))
    expected = np.concatenate([[0.0], np.cumsum((reciprocal[1:] + reciprocal[:-1]) / 2 * np.diff(x64))])  # trapezoid
    x = jnp.asarray(x64[::500], jnp.float32)  # float32, both ends included
    np.testing.assert_allclose(est.bin_integral(x, q), expected[::500], rtol=1e-5, atol=1e-7 * q.delta)
    assert float(est.bin_integral(jnp.float32(q.delta / 2), q)) == pytest.approx(q.delta / math.sqrt(2.0), rel=1e-6)


def test_theory_takes_the_constants_from_the_hook():
    @dataclasses.dataclass(frozen=True)
    class Declared(Cosine):
        def lipschitz_constants(self, quantizer):
            return (0.25, 3.0, 7.0)

    q = QUANTIZERS["3bit"]
    assert theory.lipschitz_constants(q, Declared()) == (0.25, 3.0, 7.0)
    assert theory.appendix_h_constant(q, Declared()) == 7.0 * 3.0 / (2 * 0.25**2)
    np.testing.assert_allclose(theory.lipschitz_constants(q, Declared(), method="numerical"), (1.0, 2.0, 2 * math.pi * 0.5 / q.delta), rtol=1e-6)


@pytest.mark.parametrize("qname", ["3bit", "2bit_offset"])
def test_lipschitz_constants_hook_agrees_with_the_numerical_grid(qname):
    q = QUANTIZERS[qname]
    hand = (1.0, 2.0, 2 * math.pi * 0.5 / q.delta)
    assert theory.lipschitz_constants(q, Cosine()) == pytest.approx(hand, rel=1e-12)  # through the hook
    np.testing.assert_allclose(theory.lipschitz_constants(q, Cosine(), method="numerical"), hand, rtol=1e-6)
    np.testing.assert_allclose(theory.lipschitz_constants(q, ClippedCosine()), hand, rtol=1e-6)  # no hook: the grid
    terms = theory.sgd_bound_terms(jnp.ones(3), jnp.zeros(3), jnp.zeros(3), lr=0.1, quantizer=q, estimator=Cosine())
    np.testing.assert_allclose(terms.gradient_error, 0.1 * math.sqrt(2.0), rtol=1e-6)  # ηα|∇f_Q̂ − ∇f_STE|


@pytest.mark.parametrize("qname", sorted(QUANTIZERS))
def test_mirror_partner(qname):
    q = QUANTIZERS[qname]
    assert qatlib.mirror_partner(Cosine(), q) == estimators.STE()  # Q̂' > 0 everywhere
    partner = qatlib.mirror_partner(ClippedCosine(), q)  # Q̂' = 0 beyond the range: PWL on M(range)
    edges = qatlib.weight_map(jnp.asarray(q.representable_range, jnp.float32), q, ClippedCosine())
    assert isinstance(partner, estimators.PWL)
    assert (partner.lower, partner.upper) == (float(edges[0]), float(edges[1]))
    w = weights(q)
    np.testing.assert_array_equal(partner.derivative(qatlib.weight_map(w, q, ClippedCosine()), q) > 0, q.in_range(w))
