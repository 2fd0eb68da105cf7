"""Tests for qatlib.theory: Appendix H recomputed, and the Theorem 5.1 bound on a real SGD trajectory."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qatlib
from qatlib import estimators as E
from qatlib import theory
from qatlib.paper import paper_tables
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


def test_theorem_5_1_bound_holds_on_a_real_sgd_trajectory():
    """Two nets on one quadratic-in-Q loss: E^{(t+1)} − E^{(t)} ≤ gradient + convexity error, every step."""
    q = UniformQuantizer.from_bits(2, 1.0)
    est = E.HTGE(6.0, normalize=True)
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


def test_adaptive_terms_are_triangle_inequality():
    t = theory.adaptive_bound_terms(jnp.array([0.3]), jnp.array([0.1]), jnp.array([-0.2]))
    np.testing.assert_allclose(t.total, [0.3 + 0.2])
