"""Quantization with a gradient estimator: forward Q(w), backward ∇·Q̂'(w).

``quantize`` is a ``jax.custom_vjp``: the forward value is Q(w) exactly (not
``w + stop_gradient(Q(w) − w)``, whose float rounding can flip agreement metrics), and the
backward pass multiplies the incoming gradient ∇f(Q(w)) by Q̂'(w) — the weight gradient
∇f^{(t)}·Q̂'(w^{(t)}) of Section 3 (Eq. 2-3).

>>> import jax, jax.numpy as jnp
>>> from qatlib.quantizers import UniformQuantizer
>>> from qatlib.estimators import HTGE
>>> q, est = UniformQuantizer.from_bits(2, 1.5), HTGE(2.0)
>>> w = jnp.array([0.5, 0.9])
>>> [float(v) for v in quantize(w, q, est)]
[0.5, 0.5]
>>> g = jax.grad(lambda w: jnp.sum(3.0 * quantize(w, q, est)))(w)
>>> bool(jnp.allclose(g, 3.0 * est.derivative(w, q)))
True
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array

from qatlib.estimators import Estimator
from qatlib.quantizers import UniformQuantizer, map_quantized

__all__ = ["quantize", "quantize_tree"]


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def quantize(w: Array, quantizer: UniformQuantizer, estimator: Estimator) -> Array:
    """Q(w) on the forward pass; the backward pass is g ↦ g·Q̂'(w)."""
    return quantizer(w)


def _quantize_fwd(w: Array, quantizer: UniformQuantizer, estimator: Estimator) -> tuple[Array, Array]:
    return quantizer(w), w


def _quantize_bwd(quantizer: UniformQuantizer, estimator: Estimator, w: Array, g: Array) -> tuple[Array]:
    return (g * estimator.derivative(w, quantizer).astype(g.dtype),)


quantize.defvjp(_quantize_fwd, _quantize_bwd)


def quantize_tree(params: Any, quantizers: Any, estimator: Estimator) -> Any:
    """Apply :func:`quantize` leafwise; ``quantizers`` is one quantizer or a parallel tree (None = keep).

    >>> from qatlib.quantizers import UniformQuantizer
    >>> from qatlib.estimators import STE
    >>> q = UniformQuantizer.from_bits(1, 1.0)
    >>> out = quantize_tree({"k": jnp.array([0.2, -0.3]), "b": jnp.array([0.7])}, {"k": q, "b": None}, STE())
    >>> [float(v) for v in out["k"]], [float(v) for v in out["b"]]
    ([1.0, -1.0], [0.699999988079071])
    """
    return map_quantized(lambda q, leaf: quantize(jnp.asarray(leaf), q, estimator), quantizers, params)
