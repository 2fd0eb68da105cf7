r"""Branching STE-net off a trained Q-hat-net: M on the weights *and* on the optimizer state.

For ResNet50 the paper trained Q-hat-net for the first 10% of the epochs and only then "applied M to
the weights and optimizer state and switched the model's quantizer for the STE". M on the weights
is :func:`qatlib.weight_map`; this module maps the optimizer state, for SGD with momentum and for
Adam, and gives the length of the shared period.

Mapping the optimizer state
---------------------------
Write ``q = Q-hat'(w)`` for the Q-hat-net weight ``w`` at the branch step ``b`` and ``M' = alpha / q``
(Eq. 13).

**SGD with momentum** (optax: ``m <- beta m + q g``, ``w <- w - eta m``). Q-hat-net's trace is
``m_b = sum_i beta^(b-i) q_i g_i``. An STE-net that had mirrored it from the start would hold the
trace of the *raw* gradients, ``m~_b = sum_i beta^(b-i) g_i``. By Theorem D.2, ``q_i / q_b = 1 +
O(eta (b - i))``: the weights move O(eta) per step and log Q-hat' is Lipschitz. So, to first order,

    m~_b = m_b / Q-hat'(w_b)                                                    (branch rule)

and the next STE-net step, ``-alpha eta m~_b = (alpha / q_b)(-eta m_b) = M'(w_b) * (Q-hat-net step)``,
is exactly the first-order change of ``M(w)`` along Q-hat-net's step: the two nets stay mirrored
from the first step after the branch. (Nesterov momentum adds ``beta`` times the same trace to the
same gradient and follows by linearity.) Beyond the representable range a clipping Q-hat has
``q = 0`` and :func:`qatlib.weight_map` continues ``M`` with slope 1, so there the rule is
``m~ = m M'(w) / alpha = m / alpha``: both nets' frozen weights then coast by the same amount.
Without this mapping STE-net would start with a trace in Q-hat'-scaled units, an error of
``(1/q - 1)`` times the whole momentum, decaying only as ``beta^t``.

**Adam** (Table 2: same weights, same eta). Q-hat-net's moments are EMAs of ``q g`` and ``(q g)^2``;
by the same first-order argument the STE-net that had mirrored it holds

    mu~ = mu / Q-hat'(w_b),     nu~ = nu / Q-hat'(w_b)^2,     count unchanged,

which keeps ``mu / sqrt(nu)`` -- Adam's step -- unchanged (exactly, for epsilon = 0): Adam is
invariant to a per-weight rescaling of the gradient (Theorem 5.2), and the mapping makes the moments
consistent with the gradients STE-net will now feed them. Where ``q = 0`` (frozen weights outside
the range; both nets get zero gradients there) the moments are left as they are.

>>> import jax.numpy as jnp
>>> from qatlib import estimators
>>> from qatlib.quantizers import UniformQuantizer
>>> q = UniformQuantizer.from_bits(2, 1.0)
>>> est = estimators.HTGE(5.5, scale="range", normalize=True)
>>> w = jnp.array([0.05, 0.4])
>>> m = jnp.array([1.0, 1.0])
>>> mapped = map_momentum(m, w, q, est)
>>> bool(jnp.allclose(mapped * est.derivative(w, q), m))
True
"""


from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

import qatlib
from qatlib import estimators
from qatlib.quantizers import UniformQuantizer, map_quantized

__all__ = ["shared_steps", "map_momentum", "map_adam_moments", "map_optimizer_state", "fit_state"]

PyTree = Any
Array = jax.Array


def shared_steps(total_steps: int, fraction: float = 0.1) -> int:
    """Steps of the identical initial period: ``round(fraction * total_steps)``, at least 1.

    >>> shared_steps(1000), shared_steps(5)
    (100, 1)
    """
    if total_steps < 2:
        raise ValueError(f"need at least 2 steps to branch, got {total_steps}")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    return min(max(1, round(fraction * total_steps)), total_steps - 1)

def map_momentum(trace: Array, w: Array, quantizer: UniformQuantizer, estimator: estimators.Estimator) -> Array:
    """The SGD-momentum trace STE-net continues with: ``m / Q-hat'(w)``, and ``m / alpha`` where Q-hat' = 0.

    This is ``m M'(w) / alpha`` with M continued with slope 1 beyond the representable range.
    """
    derivative = estimator.derivative(w, quantizer)
    positive = derivative > 0
    scale = jnp.where(positive, 1.0 / jnp.where(positive, derivative, 1.0), 1.0 / qatlib.alpha(quantizer, estimator))
    return trace * scale.astype(trace.dtype)


def map_adam_moments(
    mu: Array, nu: Array, w: Array, quantizer: UniformQuantizer, estimator: estimators.Estimator
) -> tuple[Array, Array]:
    """Adam's moments for STE-net: ``mu / Q-hat'(w)``, ``nu / Q-hat'(w)^2`` (unchanged where Q-hat' = 0).

    >>> from qatlib.quantizers import UniformQuantizer
    >>> q = UniformQuantizer.from_bits(2, 1.0)
    >>> est = estimators.HTGE(5.5, scale="range", normalize=True)
    >>> w, mu, nu = jnp.array([0.1, 0.3]), jnp.array([0.2, -0.1]), jnp.array([0.04, 0.03])
    >>> mu2, nu2 = map_adam_moments(mu, nu, w, q, est)
    >>> bool(jnp.allclose(mu2 / jnp.sqrt(nu2), mu / jnp.sqrt(nu)))
    True
    """
    derivative = estimator.derivative(w, quantizer)
    scale = jnp.where(derivative > 0, 1.0 / jnp.where(derivative > 0, derivative, 1.0), 1.0)
    return mu * scale.astype(mu.dtype), nu * (scale**2).astype(nu.dtype)


def map_optimizer_state(
    opt_state: PyTree, params: PyTree, quantizers: PyTree, estimator: estimators.Estimator
) -> PyTree:
    """Map every momentum trace and Adam moment in an optax state (any nesting of chains/injects).

    ``optax.TraceState`` traces follow :func:`map_momentum`; ``optax.ScaleByAdamState`` moments
    follow :func:`map_adam_moments`; counts, schedules and stateless parts are kept. A state type
    that holds a params-shaped tree this module does not know is a ValueError (silently keeping
    it would break the mirror).
    """
    params_structure = jax.tree_util.tree_structure(params)

    def visit(node: Any) -> Any:
        if isinstance(node, optax.TraceState):
            return node._replace(
                trace=map_quantized(lambda q, m, w: map_momentum(m, w, q, estimator), quantizers, node.trace, params)
            )
        if isinstance(node, optax.ScaleByAdamState):
            mu = map_quantized(
                lambda q, m, v, w: map_adam_moments(m, v, w, q, estimator)[0], quantizers, node.mu, node.nu, params
            )
            nu = map_quantized(
                lambda q, v, m, w: map_adam_moments(m, v, w, q, estimator)[1], quantizers, node.nu, node.mu, params
            )
            return node._replace(mu=mu, nu=nu)
        if isinstance(node, tuple) and hasattr(node, "_fields"):
            for name in node._fields:
                if _has_params_structure(getattr(node, name), params_structure):
                    raise ValueError(
                        f"don't know how to map {type(node).__name__}.{name} (a params-shaped tree) "
                        "at the branch point; supported: SGD momentum (TraceState) and Adam"
                    )
            return type(node)(**{name: visit(getattr(node, name)) for name in node._fields})
        if isinstance(node, (tuple, list)):
            return type(node)(visit(child) for child in node)
        if isinstance(node, dict):
            return {key: visit(child) for key, child in node.items()}
        return node

    return visit(opt_state)


def _has_params_structure(value: Any, structure: Any) -> bool:
    try:
        return jax.tree_util.tree_structure(value) == structure and structure.num_leaves > 0
    except Exception:  # pragma: no cover - exotic leaves
        return False



def fit_state(mapped: PyTree, template: PyTree) -> PyTree:
    """Place a mapped base-optimizer state into ``template``'s structure (a chained per-leaf lr factor
    adds an ``EmptyState``)."""
    structure = jax.tree_util.tree_structure
    if structure(mapped) == structure(template):
        return mapped
    if isinstance(template, tuple) and len(template) == 2 and structure(template[0]) == structure(mapped):
        return (mapped, template[1])
    raise ValueError("the branch optimizer's state does not extend Q-hat-net's")

