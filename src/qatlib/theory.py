"""The constants and per-step bound terms of Theorems 5.1 / 5.2 (Eq. 6-7, Appendices C-E, H).

Constants are taken over the representable range (beyond it a clipping Q̂' is zero and
Assumption 5.1.1 fails; Appendix G):

* L₋ = min Q̂',  L₊ = max Q̂'  (Assumption 5.1.1),
* L′ = sup |Q̂''|, the Lipschitz constant of Q̂' (Assumption 5.1.2; +inf if Q̂' jumps).

Bound terms, per weight and per step (E^{(t)} is Eq. 5's alignment error):

* SGD, Theorem 5.1 / Eq. 6: E^{(t+1)} ≤ E^{(t)} + gradient error + convexity error with
  gradient error ηα|∇f_Q̂ − ∇f_STE| and, rigorously, convexity error
  α·L′/(2L₋²)·(η ∇f_Q̂ Q̂'(w))² — the Taylor remainder of M, whose derivative α/Q̂' is
  αL′/L₋²-Lipschitz. Eq. 6 as printed, L′/2·(η L₊ ∇f_Q̂ / L₋)², omits α; it is an upper bound of
  the rigorous term only when α ≤ 1 (true for bin-normalised estimators, by Jensen).
* Any optimizer, Theorem C.1 (Eq. 16-17, SGD with momentum in Appendix D): with the Q̂-net step
  δ_Q̂ = g(∇f_Q̂·Q̂'), the "raw" step g(∇f_Q̂) the same optimizer would take on unscaled gradients
  and the STE-net step δ_STE, E^{(t+1)} ≤ E^{(t)} + |α·g(∇f_Q̂) − δ_STE| + αL′/(2L₋²)·δ_Q̂²
  + α·|δ_Q̂/Q̂'(w) − g(∇f_Q̂)|; the last term is Assumption C.1.3's O(c(η)), measured.
* Adam, Theorem E.1 / Eq. 7 (no M, no α): E^{(t+1)} ≤ E^{(t)} + |g(∇f_Q̂) − δ_STE| + |δ_Q̂ − g(∇f_Q̂)|.

>>> from qatlib.quantizers import UniformQuantizer
>>> from qatlib.estimators import HTGE
>>> q = UniformQuantizer.from_bits(2, 1.0)            # Δ = 2/(2^b − 1), b = 2
>>> round(appendix_h_constant(q, HTGE(2.0)), 2)                              # Appendix H: 1.77
1.77
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from qatlib.estimators import Estimator
from qatlib.mirror import alpha
from qatlib.quantizers import UniformQuantizer

__all__ = [
    "LipschitzConstants",
    "BoundTerms",
    "lipschitz_constants",
    "appendix_h_constant",
    "dsq_appendix_h_bound",
    "sgd_bound_terms",
    "printed_convexity_error",
    "nonadaptive_bound_terms",
    "adaptive_bound_terms",
]

_GRID = 20001


class LipschitzConstants(NamedTuple):
    """(L₋, L₊, L′) of Assumptions 5.1.1-5.1.2 over the representable range."""

    L_minus: float
    L_plus: float
    L_prime: float


class BoundTerms(NamedTuple):
    """Per-step increments allowed for E^{(t)}: their sum bounds E^{(t+1)} − E^{(t)}."""

    gradient_error: Array
    convexity_error: Array
    optimizer_error: Array

    @property
    def total(self) -> Array:
        return self.gradient_error + self.convexity_error + self.optimizer_error


@functools.lru_cache(maxsize=512)
def _numerical_constants(quantizer: UniformQuantizer, estimator: Estimator) -> LipschitzConstants:
    lo, hi = quantizer.representable_range
    if estimator.is_cyclical and quantizer.num_finite_bins > 0:
        centre = quantizer.offset + (quantizer.lower + 1) * quantizer.delta
        grid = np.linspace(centre - quantizer.delta / 2, centre + quantizer.delta / 2, _GRID)
        # Include the edge half-bins too: they belong to the range and need not repeat the pattern.
        grid = np.concatenate([np.linspace(lo, lo + quantizer.delta / 2, _GRID), grid, np.linspace(hi - quantizer.delta / 2, hi, _GRID)])
    else:
        grid = np.linspace(lo, hi, _GRID * 3)
    grid = np.unique(grid)
    with jax.ensure_compile_time_eval(), jax.enable_x64(True):
        x = jnp.asarray(grid, jnp.float64)
        first = np.asarray(estimator.derivative(x, quantizer))
        second = np.asarray(jax.vmap(jax.grad(lambda w: estimator.derivative(w, quantizer)))(x))
    l_minus, l_plus = float(first.min()), float(first.max())
    l_prime = float(np.max(np.abs(second)))
    # A jump in Q̂' (not just a steep slope) means no finite Lipschitz constant.
    steps = np.abs(np.diff(first))
    allowed = (l_prime * np.diff(grid)) * 1.5 + 1e-12 * max(l_plus, 1.0)
    if np.any(steps > allowed):
        l_prime = math.inf
    return LipschitzConstants(l_minus, l_plus, l_prime)


def lipschitz_constants(quantizer: UniformQuantizer, estimator: Estimator, *, method: str = "auto") -> LipschitzConstants:
    """(L₋, L₊, L′) of Q̂' over the representable range (Assumptions 5.1.1-5.1.2, Appendix H).

    ``method="auto"`` uses the estimator's closed form where its ``lipschitz_constants`` hook has
    one (the tanh family HTGE, DSQ: Appendix H) and a dense float64 grid with ``jax.grad`` (plus a
    jump check) otherwise; ``"numerical"`` forces the grid.

    >>> from qatlib.estimators import HTGE, STE
    >>> q = UniformQuantizer.from_bits(2, 1.0)
    >>> lipschitz_constants(q, STE())
    LipschitzConstants(L_minus=1.0, L_plus=1.0, L_prime=0.0)
    >>> [round(c, 4) for c in lipschitz_constants(q, HTGE(2.0))]   # k/cosh²(kΔ/2), k, 2k²·(1/√3)·(2/3)
    [1.3207, 2.0, 3.0792]
    """
    if method not in ("auto", "numerical"):
        raise ValueError(f"method must be 'auto' or 'numerical', got {method!r}")
    if method == "auto":
        closed_form = estimator.lipschitz_constants(quantizer)
        if closed_form is not None:
            return LipschitzConstants(*closed_form)
    return _numerical_constants(quantizer, estimator)


def appendix_h_constant(quantizer: UniformQuantizer, estimator: Estimator, *, method: str = "auto") -> float:
    """L′L₊ / (2L₋²), the figure of merit tabulated in Appendix H (small relative to 1/η)."""
    c = lipschitz_constants(quantizer, estimator, method=method)
    return c.L_prime * c.L_plus / (2 * c.L_minus**2)


def dsq_appendix_h_bound(dsq_alpha: float) -> float:
    """Appendix H's bound for DSQ, L′L₊/L₋² ≤ (1 − α_DSQ)/(2α_DSQ − α_DSQ²), as the paper derives it.

    Gong et al. vary α_DSQ in [0.11, 0.25], which the paper maps to [1.71, 4.28].
    (The exact constant depends on Δ; :func:`appendix_h_constant` computes it for a given quantizer.)
    """
    if not 0 < dsq_alpha < 1:
        raise ValueError(f"dsq_alpha must lie in (0, 1), got {dsq_alpha!r}")
    return (1 - dsq_alpha) / (2 * dsq_alpha - dsq_alpha**2)


def _check_lr(lr: float) -> None:
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"learning rate must be > 0, got {lr!r}")


def sgd_bound_terms(
    grad_q_net: ArrayLike,
    grad_ste_net: ArrayLike,
    w_q_net: ArrayLike,
    *,
    lr: float,
    quantizer: UniformQuantizer,
    estimator: Estimator,
) -> BoundTerms:
    """Theorem 5.1 (Eq. 6) for one plain-SGD step, elementwise, with the rigorous convexity term.

    ``grad_q_net`` / ``grad_ste_net`` are ∇f_Q̂^{(t)} and ∇f_STE^{(t)}: the loss gradients with
    respect to the *quantized* weights (before multiplying by Q̂'), ``w_q_net`` is w_Q̂^{(t)}.
    """
    _check_lr(lr)
    a = alpha(quantizer, estimator)
    consts = lipschitz_constants(quantizer, estimator)
    grad_q_net, grad_ste_net = jnp.asarray(grad_q_net), jnp.asarray(grad_ste_net)
    step_q = lr * grad_q_net * estimator.derivative(w_q_net, quantizer)
    gradient_error = lr * a * jnp.abs(grad_q_net - grad_ste_net)
    convexity_error = a * consts.L_prime / (2 * consts.L_minus**2) * step_q**2
    return BoundTerms(gradient_error, convexity_error, jnp.zeros_like(gradient_error))


def printed_convexity_error(grad_q_net: ArrayLike, *, lr: float, constants: LipschitzConstants) -> Array:
    """Eq. 6's convexity error exactly as printed: L′/2 · (η L₊ ∇f_Q̂ / L₋)²."""
    _check_lr(lr)
    g = jnp.asarray(grad_q_net)
    return constants.L_prime / 2 * (lr * constants.L_plus * g / constants.L_minus) ** 2


def nonadaptive_bound_terms(
    step_q_net: ArrayLike,
    raw_step_q_net: ArrayLike,
    step_ste_net: ArrayLike,
    w_q_net: ArrayLike,
    *,
    quantizer: UniformQuantizer,
    estimator: Estimator,
) -> BoundTerms:
    """Theorem C.1 (Eq. 16-17) for any non-adaptive optimizer, with Assumption C.1.3's term measured.

    ``step_q_net`` = w_Q̂^{(t+1)} − w_Q̂^{(t)}; ``raw_step_q_net`` = g^{(t)}(∇f_Q̂^{(0…t)}, η), the
    step the same optimizer state would take on gradients *not* multiplied by Q̂'; ``step_ste_net``
    = w_STE^{(t+1)} − w_STE^{(t)} (learning rate αη).
    """
    a = alpha(quantizer, estimator)
    consts = lipschitz_constants(quantizer, estimator)
    step_q, raw_q, step_ste = (jnp.asarray(x) for x in (step_q_net, raw_step_q_net, step_ste_net))
    qhat = estimator.derivative(w_q_net, quantizer)
    gradient_error = jnp.abs(a * raw_q - step_ste)
    convexity_error = a * consts.L_prime / (2 * consts.L_minus**2) * step_q**2
    optimizer_error = a * jnp.abs(step_q / qhat - raw_q)
    return BoundTerms(gradient_error, convexity_error, optimizer_error)


def adaptive_bound_terms(step_q_net: ArrayLike, raw_step_q_net: ArrayLike, step_ste_net: ArrayLike) -> BoundTerms:
    """Theorem E.1 (Eq. 64; Adam in Eq. 7): gradient error |g(∇f_Q̂) − g(∇f_STE)| and the measured
    O(η²) term |g(∇f_Q̂·Q̂') − g(∇f_Q̂)|; no convexity term since E compares raw weights."""
    step_q, raw_q, step_ste = (jnp.asarray(x) for x in (step_q_net, raw_step_q_net, step_ste_net))
    gradient_error = jnp.abs(raw_q - step_ste)
    return BoundTerms(gradient_error, jnp.zeros_like(gradient_error), jnp.abs(step_q - raw_q))
