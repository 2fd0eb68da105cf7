"""Tests for qatlib.experiments.twins: Q̂-net / STE-net side by side, and the per-step bounds of Section 5.

Runs are tiny (a few hundred of the 60,000 training digits of the shipped full MNIST, a few
steps) but real: the properties checked are the ones the theorems promise (the rigorous bound holds wherever its assumptions hold; E⁽⁰⁾ = 0
after re-initialisation by M; zero gradient error while quantized weights agree; O(η²) scaling),
and the ones the chapters report (the α-free convexity term fails when α > 1).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from qatlib import data
from qatlib.experiments import twins as simulate

N_EXAMPLES = 400
SMALL = dict(steps=12, batch_size=100, n_traced=10)


@pytest.fixture(scope="module")
def problem() -> simulate.Problem:
    return simulate.mnist_problem(N_EXAMPLES, seed=0)


@pytest.fixture(scope="module")
def sgd_run(problem):
    cfg = simulate.PairConfig(optimizer="sgd", eta=0.05, **SMALL)
    return cfg, simulate.run_pair(cfg, problem)


# ------------------------------------------------------------------------------------- inputs
def test_mnist_problem_draws_from_the_full_mnist_training_set(problem):
    from qatlib.data import load_mnist

    assert problem.x.shape == (N_EXAMPLES, 784) and problem.x.dtype == np.float64
    assert problem.y.shape == (N_EXAMPLES,) and problem.y.dtype == np.int32
    assert problem.weight_shape == (784, 10)
    assert 0.0 <= problem.x.min() and problem.x.max() <= 1.0
    assert set(np.unique(problem.y)) <= set(range(10)) and len(np.unique(problem.y)) == 10
    assert problem.source == data.MNIST_SOURCE and "full mnist" in problem.source.lower()
    # A shuffled choice (default_rng(seed).permutation) of the 60,000 training images, pixel / 255
    # in float64 (exact multiples of 1/255, not float32 roundings).
    mnist = load_mnist()
    assert len(mnist.train_labels) == data.MNIST_TRAIN_SIZE == 60_000
    order = np.random.default_rng(0).permutation(60_000)[:N_EXAMPLES]
    np.testing.assert_array_equal(problem.y, mnist.train_labels[order])
    np.testing.assert_allclose(problem.x, mnist.train_images[order].reshape(N_EXAMPLES, 784), rtol=0, atol=1e-7)
    np.testing.assert_array_equal(problem.x, np.rint(problem.x * 255.0) / 255.0)


def test_mnist_problem_is_deterministic_per_seed(problem):
    again = simulate.mnist_problem(N_EXAMPLES, seed=0)
    np.testing.assert_array_equal(again.x, problem.x)
    np.testing.assert_array_equal(again.y, problem.y)
    other = simulate.mnist_problem(N_EXAMPLES, seed=1)
    assert not np.array_equal(other.y, problem.y)


def test_mnist_problem_allows_the_whole_training_set():
    everything = simulate.mnist_problem(60_000, seed=0)
    assert everything.x.shape == (60_000, 784)
    counts = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]  # data/mnist/README.md
    np.testing.assert_array_equal(np.bincount(everything.y, minlength=10), counts)


@pytest.mark.parametrize("n_examples", [0, -1, 60_001, 2.5, True])
def test_mnist_problem_rejects_bad_sizes(n_examples):
    with pytest.raises(ValueError, match=r"n_examples .*\[1, 60000\].*got " + repr(n_examples).replace(".", r"\.")):
        simulate.mnist_problem(n_examples)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(optimizer="rmsprop"), "optimizer"),
        (dict(eta=0.0), "eta"),
        (dict(eta=float("nan")), "eta"),
        (dict(steps=0), "steps"),
        (dict(partner="pwl"), "partner"),
        (dict(momentum=1.0), "momentum"),
        (dict(b2=1.5), "b1, b2"),
    ],
)
def test_pair_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        simulate.PairConfig(**kwargs)


def test_run_pair_rejects_bad_batch_and_traced(problem):
    with pytest.raises(ValueError, match="batch_size"):
        simulate.run_pair(simulate.PairConfig(batch_size=N_EXAMPLES + 1, steps=2), problem)
    with pytest.raises(ValueError, match="traced"):
        simulate.run_pair(simulate.PairConfig(steps=2, batch_size=100), problem, traced=[784 * 10])


# ----------------------------------------------------------------------------------- theorems
def test_sgd_starts_aligned_and_gradients_agree_at_step_zero(sgd_run):
    _, trace = sgd_run
    # STE-net starts at M(w0): E(0) = 0 and Q(M(w0)) = Q(w0), so both nets see the same gradient.
    assert trace.E_mean[0] < 1e-15
    assert trace.agreement[0] == 1.0
    assert trace.grad_err[0] < 1e-18
    assert trace.E_mean[-1] > 0  # the convexity term does move them apart


def test_sgd_rigorous_bound_holds_at_every_checked_pair(sgd_run, problem):
    cfg, trace = sgd_run
    assert trace.n_checked.sum() > 1000
    np.testing.assert_array_equal(trace.n_hold, trace.n_checked)
    # Plain SGD: Assumption C.1.3's term is exactly zero (up to rounding).
    assert trace.c13.max() < 1e-16
    summary = simulate.summarize(trace, cfg, problem)
    assert summary.holds == 1.0 and 0 < summary.alpha < 1


def test_traced_lhs_never_exceeds_rhs(sgd_run):
    _, trace = sgd_run
    assert np.all(trace.lhs <= trace.rhs + simulate.BOUND_TOLERANCE)
    # The traced mirror image equals the STE-net weight at the start.
    np.testing.assert_allclose(trace.m_q[0], trace.w_s[0], rtol=0, atol=1e-15)


@pytest.mark.parametrize("optimizer, eta", [("momentum", 5e-3), ("adam", 1e-4)])
def test_momentum_and_adam_bounds_hold(problem, optimizer, eta):
    cfg = simulate.PairConfig(optimizer=optimizer, eta=eta, **SMALL)
    trace = simulate.run_pair(cfg, problem)
    assert trace.E_mean[0] < 1e-15
    assert trace.n_checked.sum() > 1000
    np.testing.assert_array_equal(trace.n_hold, trace.n_checked)
    assert trace.c13.max() > 0  # the O(η²) term is really measured, not assumed away
    assert np.all(np.isnan(trace.conv_eq6))  # Eq. 6's printed form is an SGD statement only


def test_unadjusted_pair_starts_misaligned_and_crosses_out_of_step(problem):
    cfg = simulate.PairConfig(optimizer="sgd", eta=0.1, reinit=False, **SMALL)
    trace = simulate.run_pair(cfg, problem)
    assert trace.E_mean[0] > 1e-4  # |M(w0) − w0| is of the order of a bin
    adjusted = simulate.run_pair(dataclasses.replace(cfg, reinit=True), problem)
    lags, lags_unadjusted = simulate.crossing_lags(adjusted), simulate.crossing_lags(trace)
    assert lags.lags.size > 20
    within_two = np.mean(np.abs(lags.lags) <= 2)
    within_two_unadjusted = np.mean(np.abs(lags_unadjusted.lags) <= 2) if lags_unadjusted.lags.size else 0.0
    assert within_two > 0.9 > within_two_unadjusted
    assert lags.only_q + lags.only_s < lags_unadjusted.only_q + lags_unadjusted.only_s


def test_alpha_matters_when_alpha_exceeds_one(problem):
    """Un-normalised HTGE: α ≈ 20, and the convexity term without α (as printed) fails."""
    cfg = simulate.PairConfig(optimizer="sgd", eta=3e-4, normalize=False, **SMALL)
    trace = simulate.run_pair(cfg, problem)
    summary = simulate.summarize(trace, cfg, problem)
    assert summary.alpha > 1
    assert summary.holds == 1.0
    assert summary.holds_printed < 0.99


def test_plain_ste_partner_breaks_alignment_outside_the_range(problem):
    """Appendix G: with the plain STE, STE-net weights keep moving where Q̂-net's are frozen."""
    base = simulate.PairConfig(optimizer="sgd", eta=0.5, **SMALL)
    mirror = simulate.summarize(simulate.run_pair(base, problem), base, problem)
    ste_cfg = dataclasses.replace(base, partner="ste")
    ste = simulate.summarize(simulate.run_pair(ste_cfg, problem), ste_cfg, problem)
    assert ste.outside > mirror.outside
    assert ste.holds_outside < mirror.holds_outside
    assert ste.E_bar > mirror.E_bar


def test_runs_are_deterministic(problem, sgd_run):
    cfg, trace = sgd_run
    again = simulate.run_pair(cfg, problem)
    np.testing.assert_array_equal(trace.final_E, again.final_E)
    np.testing.assert_array_equal(trace.n_hold, again.n_hold)


def test_misalignment_scales_like_eta_squared(problem):
    cfg = simulate.PairConfig(optimizer="sgd", **SMALL)
    sweep = simulate.eta_sweep(cfg, [1e-5, 1e-4, 1e-3], problem)
    slope, _ = simulate.fit_loglog_slope(sweep.etas, sweep.column(lambda s: s.E_bar))
    assert 1.8 < slope < 2.2
    assert all(s.holds == 1.0 for s in sweep.summaries)


def test_mirror_candidate_crossed_in_lockstep(problem):
    cfg = simulate.PairConfig(optimizer="sgd", eta=0.1, **SMALL)
    trace = simulate.run_pair(cfg, problem)
    j = simulate.mirror_candidate(trace)
    if trace.weight_crossings.max() > 0 and np.any(trace.weight_crossings == trace.weight_crossings_same):
        assert trace.weight_crossings[j] >= 1
        assert trace.weight_crossings_same[j] == trace.weight_crossings[j]
    again = simulate.run_pair(cfg, problem, traced=[j, *trace.traced[1:]])
    q = simulate.make_quantizer(cfg.bits, problem.fan_in)
    np.testing.assert_array_equal(
        simulate.boundary_crossings(again.w_q[:, 0], q), simulate.boundary_crossings(again.w_s[:, 0], q)
    )


# ------------------------------------------------------------------------------------ helpers
def test_fit_loglog_slope_recovers_power_law_and_rejects_too_few_points():
    x = np.geomspace(1e-6, 1e-1, 6)
    slope, intercept = simulate.fit_loglog_slope(x, 3.0 * x**1.5)
    assert slope == pytest.approx(1.5) and intercept == pytest.approx(np.log10(3.0))
    with pytest.raises(ValueError):
        simulate.fit_loglog_slope([1.0, 2.0], [0.0, 1.0])


def test_eta_sweep_rejects_bad_grids(problem):
    cfg = simulate.PairConfig(steps=2, batch_size=100)
    with pytest.raises(ValueError):
        simulate.eta_sweep(cfg, [1e-3], problem)
    with pytest.raises(ValueError):
        simulate.eta_sweep(cfg, [1e-3, -1.0], problem)
