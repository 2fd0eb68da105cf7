"""Q̂-net and STE-net trained side by side on a small real problem, with the bounds of Section 5.

The paper's theorems compare one weight of Q̂-net (estimator Q̂, learning rate η, initial weight
w⁽⁰⁾) with the same weight of STE-net (the STE, learning rate αη, initial weight M(w⁽⁰⁾); Table 1)
through the alignment error E⁽ᵗ⁾ = |M(w_Q̂⁽ᵗ⁾) − w_STE⁽ᵗ⁾| (Eq. 5). For Adam (Table 2) the two nets
share η and w⁽⁰⁾ and E⁽ᵗ⁾ = |w_Q̂⁽ᵗ⁾ − w_STE⁽ᵗ⁾|. This module runs both nets on the same mini-batches
and records, at every step and for every weight, both sides of the per-step bounds:

* SGD, Theorem 5.1 (Eq. 6), in the rigorous form of Theorem C.1::

      E⁽ᵗ⁺¹⁾ − E⁽ᵗ⁾ ≤ ηα|∇f_Q̂⁽ᵗ⁾ − ∇f_STE⁽ᵗ⁾|  +  (αL′/2L₋²)·(w_Q̂⁽ᵗ⁺¹⁾ − w_Q̂⁽ᵗ⁾)²
                       (gradient error)          (convexity error)

  The convexity term is the Taylor remainder of M, and M′ = α/Q̂′ (Eq. 13) is αL′/L₋²-Lipschitz;
  Appendix C uses L′/L₋², so the α is missing from Eq. 6 as printed. Both forms are recorded.
  With the bin-normalised HTGE α < 1: the printed form is then a looser bound, still valid; with
  α > 1 (the un-normalised HTGE) it can fail.
* SGD with momentum, Theorem D.3 (Eq. 51): the same two terms plus the measured Assumption C.1.3
  term αη|m̃⁽ᵗ⁾/Q̂′(w⁽ᵗ⁾) − m⁽ᵗ⁾|, which Theorem D.2 shows is O(η²).
* Adam, Theorem 5.2 (Eq. 7): the gradient error |g⁽ᵗ⁾(∇f_Q̂) − g⁽ᵗ⁾(∇f_STE)| (Adam's step computed
  from each net's raw gradients) and the convexity error |g⁽ᵗ⁾(∇f_Q̂·Q̂′) − g⁽ᵗ⁾(∇f_Q̂)|, the O(η²)
  term whose constant the paper omits; here it is measured.

The decomposition behind each bound is an identity plus the triangle inequality and Taylor's
theorem, so the bound must hold at every (weight, step) pair where its assumptions hold — where
the Q̂-net weight has stayed inside the representable range, on which 0 < L₋ ≤ Q̂′ ≤ L₊. Beyond the
range Q̂′ = 0 (Assumption 5.1.1 fails; Appendix G); those pairs are counted separately.

The problem is softmax regression with a 2-bit (by default) weight quantizer on n of the 60,000
training images of the shipped full MNIST (:func:`qatlib.data.load_mnist`: the original IDX files
in ``data/mnist/``, MD5-verified; 28×28, pixel / 255 in [0, 1]); w_max is the He-uniform bound
√(6/784) and the weights start He-uniform, as in the paper's MNIST setup. Everything runs in
float64 (inside ``jax.enable_x64``) so that per-step terms of order η² are resolved.
"""


from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import qatlib
from qatlib import data, estimators, models, theory
from qatlib.experiments.comparison import q_hat
from qatlib.estimators import Estimator
from qatlib.quantizers import UniformQuantizer
from qatlib.training.recipe import recipe_plan

__all__ = [
    "OPTIMIZERS",
    "Problem",
    "PairConfig",
    "PairTrace",
    "mnist_problem",
    "make_quantizer",
    "ste_side",
    "run_pair",
    "BOUND_TOLERANCE",
]

Optimizer = Literal["sgd", "momentum", "adam"]
Partner = Literal["mirror", "ste"]
OPTIMIZERS: tuple[str, ...] = ("sgd", "momentum", "adam")

#: Absolute slack (in weight units) when testing a bound in float64: rounding in M and in the
#: updates, far below any term we compare (weights are ~0.1, float64 resolves ~1e-17).
BOUND_TOLERANCE = 1e-13


# ----------------------------------------------------------------------------------------- data
@dataclasses.dataclass(frozen=True, eq=False)
class Problem:
    """Softmax regression f(V) = mean cross-entropy of softmax(x·V) on real MNIST digits.

    ``x``: (n, 784) pixel intensities in [0, 1]; ``y``: (n,) labels 0…9. V is the (784, 10)
    quantized weight matrix Q(W); there is no bias, so every parameter is a quantized weight.
    """

    x: np.ndarray
    y: np.ndarray
    source: str

    @property
    def fan_in(self) -> int:
        return int(self.x.shape[1])

    @property
    def num_classes(self) -> int:
        return 10

    @property
    def weight_shape(self) -> tuple[int, int]:
        return (self.fan_in, self.num_classes)


def mnist_problem(n_examples: int = 5000, seed: int = 0) -> Problem:
    """Softmax regression on ``n_examples`` of the 60,000 training images of the shipped full MNIST
    (:func:`qatlib.data.mnist_sample`: a shuffled choice, float64 pixel / 255).

    >>> p = mnist_problem(100)
    >>> p.x.shape, p.y.shape, p.x.dtype, float(p.x.max()) <= 1.0
    ((100, 784), (100,), dtype('float64'), True)
    """
    x, y = data.mnist_sample(n_examples, seed)
    return Problem(x=x, y=y, source=data.MNIST_SOURCE)


def _loss(v: jax.Array, x: jax.Array, y: jax.Array) -> jax.Array:
    logits = x @ v
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


# ------------------------------------------------------------------------------------ settings
make_quantizer = models.kernel_quantizer  # 2^b levels on [−w_max, w_max], w_max = √(6/fan_in) (He-uniform)


@dataclasses.dataclass(frozen=True)
class PairConfig:
    """One Q̂-net / STE-net comparison.

    Attributes:
      optimizer: "sgd" (Eq. 3), "momentum" (Appendix D, optax's trace m ← βm + g) or "adam" (Eq. 57-61).
      eta: Q̂-net's learning rate η (STE-net uses αη for SGD types, η for Adam; Tables 1-2).
      steps: number of steps T.
      batch_size: examples per mini-batch (both nets see the same batches).
      bits, sharpness, normalize: the quantizer and the HTGE estimator (:func:`qatlib.experiments.comparison.q_hat`).
      partner: "mirror" = the estimator of :func:`qatlib.mirror_partner` (the STE where
        Q̂' > 0 everywhere, else PWL on [M(w_min), M(w_max)], Appendix G); "ste" = the plain STE.
      reinit: STE-net starts at M(w⁽⁰⁾) (True, Table 1) or at w⁽⁰⁾ ("unadjusted", Point B). Adam: unused.
      momentum: β for "momentum".
      b1, b2, eps: Adam's β₁, β₂, ε (ε ≈ 0 as in the paper's Appendix E).
      seed: initial weights and batch order.
      n_traced: weights whose full trajectories are kept (the most active pixels, all classes).
    """

    optimizer: Optimizer = "sgd"
    eta: float = 0.1
    steps: int = 200
    batch_size: int = 250
    bits: int = 2
    sharpness: float = 5.5
    normalize: bool = True
    partner: Partner = "mirror"
    reinit: bool = True
    momentum: float = 0.9
    b1: float = 0.9
    b2: float = 0.95
    eps: float = 1e-30
    seed: int = 0
    n_traced: int = 40

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.partner not in ("mirror", "ste"):
            raise ValueError(f"partner must be 'mirror' or 'ste', got {self.partner!r}")
        if not (math.isfinite(self.eta) and self.eta > 0):
            raise ValueError(f"eta must be a finite number > 0, got {self.eta!r}")
        for name in ("steps", "batch_size", "bits", "n_traced"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must lie in [0, 1), got {self.momentum!r}")
        if not (0.0 <= self.b1 < 1.0 and 0.0 <= self.b2 < 1.0):
            raise ValueError(f"Adam needs b1, b2 in [0, 1), got {self.b1!r}, {self.b2!r}")


class PairTrace(NamedTuple):
    """Per-step records of one run (numpy arrays). ``T`` steps, ``k`` traced weights.

    E_mean, E_max, agreement: (T+1,) mean / max alignment error and the share of weights with
    Q(w_Q̂) = Q(w_STE). grad_err, c13, conv, conv_printed: (T,) means over weights of the gradient
    error, the Assumption C.1.3 term, the rigorous and the printed (α-free) convexity error; for
    SGD also conv_eq6 / conv_eq6_printed, Eq. 6's bound with L₊ (rigorous: with α).
    n_checked, n_hold, n_hold_printed, n_hold_eq6, n_hold_eq6_printed: (T,) counts of moving
    (weight, step) pairs where the assumptions hold, and how many satisfy each form of the bound.
    n_outside, n_hold_outside: (T,) the same for pairs where the Q̂-net weight has left the
    representable range (Assumption 5.1.1 fails). n_cross_q, n_cross_s, n_cross_same: (T,) weights
    whose quantized value changed in Q̂-net, in STE-net, and in both to the same new level.
    w_q, w_s, m_q: (T+1, k) traced weights of Q̂-net, of STE-net and M(w_Q̂).
    lhs, rhs: (T, k) E⁽ᵗ⁺¹⁾ − E⁽ᵗ⁾ and the rigorous bound for the traced weights.
    step: (T,) mean |w_Q̂⁽ᵗ⁺¹⁾ − w_Q̂⁽ᵗ⁾|. final_E: (n_weights,) E⁽ᵀ⁾ of every weight.
    weight_crossings, weight_crossings_same: (n_weights,) per weight, how often its Q̂-net copy
    changed bins, and how often the STE-net copy made the same change at the same step.
    w_q_start, w_q_end: (n_weights,) Q̂-net's weights before and after the run.
    first_crossing_q, first_crossing_s: (n_weights,) the step t (1…T) after which each copy's
    quantized value first differed from the previous one; −1 if it never changed.
    traced: (k,) flat indices of the traced weights.
    """

    E_mean: np.ndarray
    E_max: np.ndarray
    agreement: np.ndarray
    grad_err: np.ndarray
    c13: np.ndarray
    conv: np.ndarray
    conv_printed: np.ndarray
    conv_eq6: np.ndarray
    conv_eq6_printed: np.ndarray
    n_checked: np.ndarray
    n_hold: np.ndarray
    n_hold_printed: np.ndarray
    n_hold_eq6: np.ndarray
    n_hold_eq6_printed: np.ndarray
    n_outside: np.ndarray
    n_hold_outside: np.ndarray
    n_cross_q: np.ndarray
    n_cross_s: np.ndarray
    n_cross_same: np.ndarray
    w_q: np.ndarray
    w_s: np.ndarray
    m_q: np.ndarray
    lhs: np.ndarray
    rhs: np.ndarray
    step: np.ndarray
    final_E: np.ndarray
    weight_crossings: np.ndarray
    weight_crossings_same: np.ndarray
    w_q_start: np.ndarray
    w_q_end: np.ndarray
    first_crossing_q: np.ndarray
    first_crossing_s: np.ndarray
    traced: np.ndarray


# ------------------------------------------------------------------------------------ the run
def _optimizer(name: str, lr: float | jax.Array, cfg: PairConfig) -> optax.GradientTransformation:
    if name == "sgd":
        return optax.sgd(lr)
    if name == "momentum":
        return optax.sgd(lr, momentum=cfg.momentum)
    return optax.adam(lr, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps)


def _traced_indices(problem: Problem, n_traced: int) -> np.ndarray:
    """Flat indices of weights on the most active pixels (all classes), most active first."""
    activity = problem.x.mean(axis=0)
    n_pixels = max(1, math.ceil(n_traced / problem.num_classes))
    pixels = np.argsort(-activity, kind="stable")[:n_pixels]
    flat = (pixels[:, None] * problem.num_classes + np.arange(problem.num_classes)[None, :]).reshape(-1)
    return flat[:n_traced]


def _batches(n: int, batch_size: int, steps: int, seed: int) -> np.ndarray:
    """(steps, batch_size) example indices: epochs of fresh permutations, shared by both nets."""
    if batch_size > n:
        raise ValueError(f"batch_size {batch_size} exceeds the {n} examples available")
    rng = np.random.default_rng(seed + 1)
    per_epoch = n // batch_size
    epochs = math.ceil(steps / per_epoch)
    rows = [rng.permutation(n)[: per_epoch * batch_size].reshape(per_epoch, batch_size) for _ in range(epochs)]
    return np.concatenate(rows)[:steps]


@dataclasses.dataclass(frozen=True)
class _Twins:
    """One pair's fixed parts inside :func:`_simulate`: the problem's data, the quantizer, both
    estimators and optimizers, α, the Lipschitz constants, η (traced) and the traced weights."""

    cfg: PairConfig
    q: UniformQuantizer
    q_est: Estimator
    s_est: Estimator
    alpha: float
    consts: theory.LipschitzConstants
    eta: jax.Array
    x: jax.Array
    y: jax.Array
    idx: jax.Array

    @property
    def adam(self) -> bool:
        return self.cfg.optimizer == "adam"

    @functools.cached_property
    def optimizers(self) -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
        """Q̂-net's (also its "raw" shadow's, fed ∇f_Q̂ without Q̂') and STE-net's (lr αη; η for Adam)."""
        lr_ste = self.eta if self.adam else self.alpha * self.eta
        return _optimizer(self.cfg.optimizer, self.eta, self.cfg), _optimizer(self.cfg.optimizer, lr_ste, self.cfg)

    def mirror(self, w: jax.Array) -> jax.Array:
        """M(w) (Eq. 12) for SGD; w itself for Adam, whose nets share their weights' scale (Table 2)."""
        return w if self.adam else qatlib.weight_map(w, self.q, self.q_est)

    def grads(self, w: jax.Array, est: Estimator, xb: jax.Array, yb: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(∇f at Q(w), the net's gradient ∇f·Q̂'(w) through qatlib.quantize's custom VJP)."""
        v, vjp = jax.vjp(lambda u: qatlib.quantize(u, self.q, est), w)
        g_v = jax.grad(_loss)(v, xb, yb)
        (g_w,) = vjp(g_v)
        return g_v, g_w

    def start(self, w0: jax.Array) -> tuple[Any, dict[str, jax.Array]]:
        """The scan's first carry (both nets' weights and optimizer states, crossing counters) and
        the records of step 0."""
        opt_q, opt_s = self.optimizers
        w_q = w0
        w_s = self.mirror(w0) if (self.cfg.reinit or self.adam) else w0
        zeros = jnp.zeros(w_q.shape, jnp.int32)
        never = jnp.full(w_q.shape, -1, jnp.int32)
        carry = (
            (w_q, w_s, opt_q.init(w_q), opt_s.init(w_s), opt_q.init(w_q), jnp.ones_like(w_q, dtype=bool)),
            (zeros, zeros, never, never, jnp.zeros((), jnp.int32)),
        )
        E_init = jnp.abs(self.mirror(w_q) - w_s)
        init = {
            "E_mean": jnp.mean(E_init),
            "E_max": jnp.max(E_init),
            "agreement": jnp.mean((self.q(w_q) == self.q(w_s)).astype(w_q.dtype)),
            "w_q": w_q.reshape(-1)[self.idx],
            "w_s": w_s.reshape(-1)[self.idx],
            "m_q": self.mirror(w_q).reshape(-1)[self.idx],
        }
        return carry, init

    def bound_terms(self, w_q: jax.Array, g_q: jax.Array, u_q: jax.Array, u_raw: jax.Array, u_s: jax.Array,
                    inside_now: jax.Array) -> dict[str, jax.Array]:
        """Per weight, the right-hand side's terms of this step's bound: the gradient error, the
        Assumption C.1.3 term, the convexity error (as derived and as printed), and Eq. 6's form."""
        if self.adam:  # Theorem E.1 / Eq. 7
            terms = theory.adaptive_bound_terms(u_q, u_raw, u_s)
            conv_printed = terms.convexity_error
        else:  # Theorem C.1 (Eq. 16-17); plain SGD is Eq. 6 with a zero optimizer term
            terms = theory.nonadaptive_bound_terms(u_q, u_raw, u_s, w_q, quantizer=self.q, estimator=self.q_est)
            conv_printed = terms.convexity_error / self.alpha  # α omitted, as printed
        # Beyond the range Q̂' = 0, so C.1.3's term is 0/0: it is not defined there (Appendix G).
        c13 = jnp.where(inside_now, jnp.nan_to_num(terms.optimizer_error, nan=0.0, posinf=0.0), 0.0)
        if self.cfg.optimizer == "sgd":  # Eq. 6 with L₊ in place of Q̂'(w); quadratic in η, so scale lr=1
            eq6 = theory.printed_convexity_error(g_q, lr=1.0, constants=self.consts) * self.eta**2
            conv_eq6, conv_eq6_printed = self.alpha * eq6, eq6
        else:
            conv_eq6 = conv_eq6_printed = jnp.full_like(w_q, jnp.inf)
        return {"grad_err": terms.gradient_error, "c13": c13, "conv": terms.convexity_error,
                "conv_printed": conv_printed, "conv_eq6": conv_eq6, "conv_eq6_printed": conv_eq6_printed}

    def step(self, carry: Any, batch: jax.Array) -> tuple[Any, dict[str, jax.Array]]:
        """One step of both nets on ``batch`` and its records (:func:`_step_records`)."""
        (w_q, w_s, st_q, st_s, st_raw, inside_so_far), (n_cross, n_same, first_q, first_s, t) = carry
        opt_q, opt_s = self.optimizers
        xb, yb = self.x[batch], self.y[batch]
        g_q, gw_q = self.grads(w_q, self.q_est, xb, yb)
        g_s, gw_s = self.grads(w_s, self.s_est, xb, yb)
        u_q, st_q = opt_q.update(gw_q, st_q, w_q)
        u_s, st_s = opt_s.update(gw_s, st_s, w_s)
        # g^{(t)}(∇f_Q̂^{(0…t)}, η): the step Q̂-net's optimizer would take on gradients not scaled by Q̂'.
        u_raw, st_raw = opt_q.update(g_q, st_raw, w_q)
        w_q1, w_s1 = w_q + u_q, w_s + u_s

        E1 = jnp.abs(self.mirror(w_q1) - w_s1)
        lhs = E1 - jnp.abs(self.mirror(w_q) - w_s)
        lo, hi = self.q.representable_range
        terms = self.bound_terms(w_q, g_q, u_q, u_raw, u_s, (w_q >= lo) & (w_q <= hi))
        inside_next = inside_so_far & (w_q1 >= lo) & (w_q1 <= hi)
        moving = (u_q != 0) | (u_s != 0)
        qq1, qs1 = self.q(w_q1), self.q(w_s1)
        cross_q, cross_s = qq1 != self.q(w_q), qs1 != self.q(w_s)
        same = cross_q & cross_s & (qq1 == qs1)
        out = _step_records(lhs, terms, inside_next & moving, (~inside_next) & moving, E1, cross_q, cross_s, same)
        out.update({"agreement": jnp.mean((qq1 == qs1).astype(w_q.dtype)), "step": jnp.mean(jnp.abs(u_q)),
                    "w_q": w_q1.reshape(-1)[self.idx], "w_s": w_s1.reshape(-1)[self.idx],
                    "m_q": self.mirror(w_q1).reshape(-1)[self.idx]})
        n_cross, n_same = n_cross + cross_q, n_same + same
        first_q = jnp.where((first_q < 0) & cross_q, t + 1, first_q)
        first_s = jnp.where((first_s < 0) & cross_s, t + 1, first_s)
        counters = (n_cross, n_same, first_q, first_s, t + 1)
        return ((w_q1, w_s1, st_q, st_s, st_raw, inside_next), counters), out


def _step_records(lhs: jax.Array, terms: dict[str, jax.Array], checked: jax.Array, outside: jax.Array, E1: jax.Array,
                  cross_q: jax.Array, cross_s: jax.Array, same: jax.Array) -> dict[str, jax.Array]:
    """One step's summary: Ē's mean and max, the bound terms' means, how many (weight, step) pairs
    were checked and where each form of the bound held, and the threshold crossings; ``lhs`` and
    ``rhs`` keep every weight (the caller keeps the traced ones)."""
    tol = BOUND_TOLERANCE
    grad_err, c13, conv = terms["grad_err"], terms["c13"], terms["conv"]
    rhs = grad_err + c13 + conv
    hold = lhs <= rhs + tol
    hold_printed = lhs <= grad_err + c13 + terms["conv_printed"] + tol
    hold_eq6 = lhs <= grad_err + c13 + terms["conv_eq6"] + tol
    hold_eq6_printed = lhs <= grad_err + c13 + terms["conv_eq6_printed"] + tol
    finite_mean = lambda a: jnp.mean(jnp.where(jnp.isfinite(a), a, jnp.nan))  # noqa: E731
    count = lambda m: jnp.sum(m, dtype=jnp.int32)  # noqa: E731
    return {
        "E_mean": jnp.mean(E1),
        "E_max": jnp.max(E1),
        "grad_err": jnp.mean(grad_err),
        "c13": jnp.mean(c13),
        "conv": jnp.mean(conv),
        "conv_printed": jnp.mean(terms["conv_printed"]),
        "conv_eq6": finite_mean(terms["conv_eq6"]),
        "conv_eq6_printed": finite_mean(terms["conv_eq6_printed"]),
        "n_checked": count(checked),
        "n_hold": count(checked & hold),
        "n_hold_printed": count(checked & hold_printed),
        "n_hold_eq6": count(checked & hold_eq6),
        "n_hold_eq6_printed": count(checked & hold_eq6_printed),
        "n_outside": count(outside),
        "n_hold_outside": count(outside & hold),
        "n_cross_q": count(cross_q),
        "n_cross_s": count(cross_s),
        "n_cross_same": count(same),
        "lhs": lhs,
        "rhs": rhs,
    }


@functools.partial(jax.jit, static_argnames=("cfg", "q", "q_est", "s_est", "alpha", "consts"))
def _simulate(
    w0: jax.Array,
    x: jax.Array,
    y: jax.Array,
    batches: jax.Array,
    eta: jax.Array,
    traced: jax.Array,
    *,
    cfg: PairConfig,
    q: UniformQuantizer,
    q_est: Estimator,
    s_est: Estimator,
    alpha: float,
    consts: theory.LipschitzConstants,
) -> dict[str, jax.Array]:
    """Both nets over ``batches`` (one ``lax.scan``): per step the records of :meth:`_Twins.step`,
    at the end each weight's final E, crossings and first crossing steps, and step 0's records."""
    twins = _Twins(cfg, q, q_est, s_est, alpha, consts, eta, x, y, traced)
    carry, init = twins.start(w0)

    def scan_step(carry, batch):
        carry, out = twins.step(carry, batch)
        out["lhs"], out["rhs"] = out["lhs"].reshape(-1)[traced], out["rhs"].reshape(-1)[traced]
        return carry, out

    final, records = jax.lax.scan(scan_step, carry, batches)
    (w_q_end, w_s_end, *_), (n_cross, n_same, first_q, first_s, _) = final
    records["final_E"] = jnp.abs(twins.mirror(w_q_end) - w_s_end).reshape(-1)
    records["w_q_start"] = w0.reshape(-1)
    records["w_q_end"] = w_q_end.reshape(-1)
    records["weight_crossings"] = n_cross.reshape(-1)
    records["weight_crossings_same"] = n_same.reshape(-1)
    records["first_crossing_q"] = first_q.reshape(-1)
    records["first_crossing_s"] = first_s.reshape(-1)
    records["init"] = init
    return records


def ste_side(cfg: PairConfig, q: UniformQuantizer) -> tuple[Estimator, float]:
    """STE-net's estimator and learning-rate factor α, from the paper's recipe
    (:func:`qatlib.training.recipe.recipe_plan`; its ``"sgd"`` family covers momentum), or the
    plain STE when ``cfg.partner == "ste"``."""
    q_est = q_hat(cfg.sharpness, normalize=cfg.normalize)
    recipe = recipe_plan(q_est, {"w": q}, "adam" if cfg.optimizer == "adam" else "sgd")
    s_est: Estimator = estimators.STE() if cfg.partner == "ste" else recipe.estimator
    return s_est, float(qatlib.alpha(q, q_est)) if recipe.scales_lr else 1.0


def run_pair(cfg: PairConfig, problem: Problem, traced: Sequence[int] | None = None) -> PairTrace:
    """Train Q̂-net and STE-net side by side for ``cfg.steps`` steps and record both sides of the bound.

    ``traced``: flat indices of weights whose trajectories to keep (default: ``cfg.n_traced``
    weights on the most active pixels). Returns numpy arrays (see :class:`PairTrace`); float64.
    """
    n_weights = problem.fan_in * problem.num_classes
    if traced is None:
        traced = _traced_indices(problem, cfg.n_traced)
    traced = tuple(int(i) for i in traced)
    if not traced or min(traced) < 0 or max(traced) >= n_weights:
        raise ValueError(f"traced indices must be non-empty and lie in [0, {n_weights}), got {traced!r}")
    batches = _batches(len(problem.y), cfg.batch_size, cfg.steps, cfg.seed)
    q = make_quantizer(cfg.bits, problem.fan_in)
    q_est = q_hat(cfg.sharpness, normalize=cfg.normalize)
    # α and the constants are computed (and qatlib.mirror's checks cached) outside the trace.
    s_est, alpha = ste_side(cfg, q)
    w_max = q.representable_range[1]
    consts = theory.lipschitz_constants(q, q_est)
    with jax.enable_x64(True):
        w0 = jax.random.uniform(
            jax.random.PRNGKey(cfg.seed), problem.weight_shape, jnp.float64, -w_max, w_max
        )
        records = _simulate(
            w0,
            jnp.asarray(problem.x, jnp.float64),
            jnp.asarray(problem.y),
            jnp.asarray(batches),
            jnp.asarray(cfg.eta, jnp.float64),
            jnp.asarray(traced, jnp.int32),
            cfg=dataclasses.replace(cfg, eta=1.0),  # η is traced: one compilation serves a sweep
            q=q,
            q_est=q_est,
            s_est=s_est,
            alpha=alpha,
            consts=consts,
        )
        records = jax.tree_util.tree_map(np.asarray, records)
    init = records.pop("init")
    stack = lambda key: np.concatenate([np.asarray(init[key])[None], records[key]])  # noqa: E731
    trace = PairTrace(
        E_mean=stack("E_mean"),
        E_max=stack("E_max"),
        agreement=stack("agreement"),
        w_q=stack("w_q"),
        w_s=stack("w_s"),
        m_q=stack("m_q"),
        traced=np.asarray(traced),
        **{k: records[k] for k in PairTrace._fields if k not in {"E_mean", "E_max", "agreement", "w_q", "w_s", "m_q", "traced"}},
    )
    return trace


# -------------------------------------------------------------------------------- summaries
