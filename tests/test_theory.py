"""Tests for qatlib.theory: Appendix H recomputed, every bound term against its hand-computed value
(with α ≠ 1), and the Theorem 5.1 bound on real SGD trajectories."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import qatlib
from qatlib import estimators as E
from qatlib import theory
from qatlib.report.paper import paper_tables
from qatlib.quantizers import UniformQuantizer


@pytest.mark.parametrize("bits", ["8", "4", "3", "2"])
def test_appendix_h_table_recomputed(bits):
    table = paper_tables()["appendix_h"]["htge_pei_2023"]
    k = table["bits_to_k"][bits]
    q = UniformQuantizer.from_bits(int(bits), 1.0)  # Δ = 2/(2^b − 1)
    assert q.delta == pytest.approx(2 / (2 ** int(bits) - 1))
    printed = table["constant_LpL_over_2Lm2"][bits]
    for method in ("auto", "numerical"):
        assert round(theory.appendix_h_constant(q, E.HTGE(float(k)), method=method), 2) == pytest.approx(printed, abs=0.011)


def test_dsq_range_recomputed():
    lo, hi = paper_tables()["appendix_h"]["dsq_gong_2019"]["alpha_range"]
    c_lo, c_hi = paper_tables()["appendix_h"]["dsq_gong_2019"]["constant_range"]
    assert round(theory.dsq_appendix_h_bound(hi), 2) == c_lo
    assert round(theory.dsq_appendix_h_bound(lo), 2) == c_hi


def test_constants_closed_form_equals_numerical():
    q = UniformQuantizer.from_bits(2, 0.1)
    for est in (E.HTGE(5.5, scale="range", normalize=True), E.DSQ(0.2), E.HTGE(3.0, scale="bin")):
        a = theory.lipschitz_constants(q, est)
        b = theory.lipschitz_constants(q, est, method="numerical")
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_auto_takes_the_estimators_closed_form_as_is():
    q = UniformQuantizer.from_bits(3, 0.4)
    for est in (E.HTGE(5.5, scale="range", normalize=True), E.DSQ(0.2), E.HTGE(2.0, centre="level")):
        assert theory.lipschitz_constants(q, est) == theory.LipschitzConstants(*est.lipschitz_constants(q))
    assert E.STE().lipschitz_constants(q) is None  # no closed form: the grid
    assert theory.lipschitz_constants(q, E.STE()) == theory.lipschitz_constants(q, E.STE(), method="numerical")


def test_constants_of_simple_estimators():
    q = UniformQuantizer.from_bits(2, 1.0)
    assert theory.lipschitz_constants(q, E.STE()) == (1.0, 1.0, 0.0)
    assert theory.lipschitz_constants(q, E.PWL()) == (1.0, 1.0, 0.0)
    sawtooth = E.Custom(lambda w: 1.5 + jnp.mod(w + 1.0, 2 / 3) / (2 / 3), clips_outside=False)
    assert theory.lipschitz_constants(q, sawtooth).L_prime == np.inf


@pytest.mark.parametrize(
    "est", [E.HTGE(6.0, normalize=True), E.HTGE(6.0)], ids=["normalised (alpha<1)", "appendix H form (alpha>1)"]
)
def test_theorem_5_1_bound_holds_on_a_real_sgd_trajectory(est):
    """Two nets on one quadratic-in-Q loss: E^{(t+1)} − E^{(t)} ≤ gradient + convexity error, every step."""
    q = UniformQuantizer.from_bits(2, 1.0)
    partner = qatlib.mirror_partner(est, q)
    a = qatlib.alpha(q, est)
    key = jax.random.key(0)
    w_q = jax.random.uniform(key, (64,), minval=-0.6, maxval=0.6)
    target = jax.random.uniform(jax.random.key(1), (64,), minval=-1.0, maxval=1.0)
    w_ste = qatlib.weight_map(w_q, q, est)
    lr = 1e-2

    def grad_wrt_quantized(w):  # ∇f(Q(w)) for f(v) = ½|v − target|² + ¼ Σ v⁴
        v = q(w)
        return v - target + v**3

    holds, steps = 0, 0
    for _ in range(200):
        g_q, g_ste = grad_wrt_quantized(w_q), grad_wrt_quantized(w_ste)
        terms = theory.sgd_bound_terms(g_q, g_ste, w_q, lr=lr, quantizer=q, estimator=est)
        e_before = jnp.abs(qatlib.weight_map(w_q, q, est) - w_ste)
        new_q = w_q - lr * g_q * est.derivative(w_q, q)
        new_ste = w_ste - a * lr * g_ste * partner.derivative(w_ste, q)
        e_after = jnp.abs(qatlib.weight_map(new_q, q, est) - new_ste)
        inside = q.in_range(w_q) & q.in_range(new_q)
        ok = (e_after - e_before <= terms.total + 1e-6) | ~inside
        holds += int(jnp.sum(ok))
        steps += int(ok.size)
        w_q, w_ste = new_q, new_ste
    assert holds == steps


def test_bound_terms_reject_bad_lr():
    q = UniformQuantizer.from_bits(2, 1.0)
    with pytest.raises(ValueError, match="learning rate"):
        theory.sgd_bound_terms(jnp.zeros(1), jnp.zeros(1), jnp.zeros(1), lr=0.0, quantizer=q, estimator=E.STE())


def test_adaptive_terms_are_their_definitions():
    # Theorem E.1: gradient error |g(∇f_Q̂) − δ_STE|, no convexity term, measured |δ_Q̂ − g(∇f_Q̂)|.
    step_q, raw_q, step_ste = jnp.array([0.3, -1.0]), jnp.array([0.1, 0.5]), jnp.array([-0.2, 0.25])
    t = theory.adaptive_bound_terms(step_q, raw_q, step_ste)
    np.testing.assert_allclose(t.gradient_error, [0.1 + 0.2, 0.5 - 0.25], rtol=1e-6)
    np.testing.assert_array_equal(t.convexity_error, [0.0, 0.0])
    np.testing.assert_allclose(t.optimizer_error, [0.3 - 0.1, 1.0 + 0.5], rtol=1e-6)


steps = st.lists(st.tuples(*[st.floats(-1.0, 1.0, width=32)] * 3), min_size=1, max_size=20)


@settings(max_examples=50, deadline=None)
@given(steps)
def test_adaptive_terms_bound_the_growth_of_e(triples):
    """Eq. 7 / Theorem E.1 with E = |w_Q̂ − w_STE|: E^{(t+1)} − E^{(t)} ≤ |δ_Q̂ − δ_STE| ≤ total."""
    step_q, raw_q, step_ste = (jnp.asarray(x, jnp.float32) for x in zip(*triples, strict=True))
    w_q, w_ste = jnp.linspace(-0.5, 0.5, len(triples)), jnp.linspace(0.5, -0.5, len(triples))
    t = theory.adaptive_bound_terms(step_q, raw_q, step_ste)
    growth = jnp.abs((w_q + step_q) - (w_ste + step_ste)) - jnp.abs(w_q - w_ste)
    assert bool(jnp.all(growth <= t.total + 1e-6))
    assert bool(jnp.all(jnp.abs(step_q - step_ste) <= t.total + 1e-6))


# ------------------------------------------- every bound term by hand, for an estimator with α ≠ 1
# The Appendix H form HTGE(k = 2) on 2 bits with Δ = 1 (levels ±0.5, ±1.5): Q̂' = k/cosh²(k(w − c)),
# c the threshold between the enclosing levels, and in closed form (Eq. 4; Appendix H)
#   α = Δ / ∫_bin cosh²(k·u)/k du = 2k²/(k + sinh k) ≈ 1.42,
#   L₊ = k, L₋ = k/cosh²(k/2), L′ = 2k²·tanh(kx*)/cosh²(kx*) = 2k²·(1/√3)·(2/3), kx* = artanh(1/√3).
K, Q_HAND = 2.0, UniformQuantizer.from_bits(2, 1.5)
ALPHA = 2 * K * K / (K + math.sinh(K))
L_MINUS, L_PLUS, L_PRIME = K / math.cosh(K / 2) ** 2, K, 2 * K * K / math.sqrt(3) * 2 / 3
W = np.array([0.0, -0.25, 0.5, 1.2])  # a threshold, a quarter bin off one, a level, inside the edge bin
QHAT = K / np.cosh(K * (W - np.array([0.0, 0.0, 1.0, 1.0]))) ** 2  # thresholds enclosing each w


def test_hand_computed_constants():
    assert ALPHA > 1.4  # far enough from 1 that dropping α from any term shows
    assert qatlib.alpha(Q_HAND, E.HTGE(K)) == pytest.approx(ALPHA, rel=1e-12)
    assert theory.lipschitz_constants(Q_HAND, E.HTGE(K)) == pytest.approx((L_MINUS, L_PLUS, L_PRIME), rel=1e-12)
    np.testing.assert_allclose(E.HTGE(K).derivative(jnp.asarray(W), Q_HAND), QHAT, rtol=1e-6)


def test_sgd_bound_terms_by_hand():
    """Theorem 5.1: ηα|∇f_Q̂ − ∇f_STE| and α·L′/(2L₋²)·(η ∇f_Q̂ Q̂'(w))² (the rigorous Eq. 6)."""
    lr = 0.05
    g_q, g_ste = np.array([0.7, -1.3, 0.4, 2.0]), np.array([0.2, -1.0, -0.6, 2.5])
    t = theory.sgd_bound_terms(jnp.asarray(g_q), jnp.asarray(g_ste), jnp.asarray(W), lr=lr, quantizer=Q_HAND, estimator=E.HTGE(K))
    np.testing.assert_allclose(t.gradient_error, lr * ALPHA * np.abs(g_q - g_ste), rtol=1e-6)
    np.testing.assert_allclose(t.convexity_error, ALPHA * L_PRIME / (2 * L_MINUS**2) * (lr * g_q * QHAT) ** 2, rtol=1e-5)
    np.testing.assert_array_equal(t.optimizer_error, 0.0)
    # Eq. 6 as printed, L′/2·(η L₊ ∇f_Q̂ / L₋)², has no α.
    np.testing.assert_allclose(
        theory.printed_convexity_error(jnp.asarray(g_q), lr=lr, constants=theory.lipschitz_constants(Q_HAND, E.HTGE(K))),
        L_PRIME / 2 * (lr * L_PLUS * g_q / L_MINUS) ** 2,
        rtol=1e-6,
    )


def test_nonadaptive_bound_terms_by_hand():
    """Theorem C.1: |α·g(∇f_Q̂) − δ_STE|, α·L′/(2L₋²)·δ_Q̂², α·|δ_Q̂/Q̂'(w) − g(∇f_Q̂)|."""
    step_q, raw_q, step_ste = np.array([0.01, -0.02, 0.03, 0.0]), np.array([0.02, -0.01, 0.01, 0.05]), np.array([0.03, 0.0, 0.02, 0.06])
    t = theory.nonadaptive_bound_terms(
        jnp.asarray(step_q), jnp.asarray(raw_q), jnp.asarray(step_ste), jnp.asarray(W), quantizer=Q_HAND, estimator=E.HTGE(K)
    )
    np.testing.assert_allclose(t.gradient_error, np.abs(ALPHA * raw_q - step_ste), rtol=1e-5)
    np.testing.assert_allclose(t.convexity_error, ALPHA * L_PRIME / (2 * L_MINUS**2) * step_q**2, rtol=1e-5)
    np.testing.assert_allclose(t.optimizer_error, ALPHA * np.abs(step_q / QHAT - raw_q), rtol=1e-5)


def test_gradient_error_is_tight_to_first_order():
    """From E^{(t)} = 0 with ∇f_Q̂ = −∇f_STE, one SGD step grows E by ηα|∇f_Q̂ − ∇f_STE| + O(η²): the
    α-scaled term is attained, so an α dropped (or halved) from it fails here, with α > 1."""
    q, est = Q_HAND, E.HTGE(K)
    w_q = jnp.asarray([-1.2, -0.7, -0.3, 0.2, 0.6, 1.1])
    w_ste = qatlib.weight_map(w_q, q, est)
    g = jnp.asarray([0.5, -0.8, 1.0, -0.4, 0.7, -1.1])
    lr = 1e-3
    terms = theory.sgd_bound_terms(g, -g, w_q, lr=lr, quantizer=q, estimator=est)
    e_after = jnp.abs(qatlib.weight_map(w_q - lr * g * est.derivative(w_q, q), q, est) - (w_ste + ALPHA * lr * g))
    np.testing.assert_allclose(e_after, terms.gradient_error, rtol=1e-2)
    assert bool(jnp.all(e_after <= terms.total * (1 + 1e-4)))
