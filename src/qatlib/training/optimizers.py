"""Optimizers and learning-rate schedules of the paper's experiments (Section 6.1), from optax.

* :func:`warmup_cosine_schedule` ``(learning_rate, total_steps)``: linear warm-up from 0 over 2% of
  the steps, then cosine decay to 0 (Loshchilov & Hutter 2016; Goyal et al. 2017). The "learning
  rate" of the paper is the peak value.
* :func:`make_optimizer` ``("sgd" | "adam", learning_rate, total_steps, lr_scale=...)``: SGD with
  momentum 0.9 or Adam (beta1 0.9, beta2 0.95) from optax on that schedule. ``lr_scale`` is an
  optional tree parallel to the params of per-leaf learning-rate factors: STE-net's ``alpha * eta``
  on the quantized kernels (Table 1) is ``lr_scale = alpha_scale_tree(...)``.
* :data:`LR_TWEAK`: the lr-tweak net's factor, "a learning rate increase of 1%".
"""

from __future__ import annotations

from typing import Any

import jax
import optax

from qatlib.mirror import alpha
from qatlib.quantizers import map_quantized

__all__ = ["WARMUP_FRACTION", "LR_TWEAK", "warmup_cosine_schedule", "make_optimizer", "scale_by_tree", "alpha_scale_tree"]

PyTree = Any

WARMUP_FRACTION = 0.02


def warmup_cosine_schedule(
    learning_rate: float, total_steps: int, warmup_fraction: float = WARMUP_FRACTION
) -> optax.Schedule:
    """Linear warm-up 0 -> ``learning_rate`` over ``warmup_fraction`` of the steps, then cosine decay to 0.

    >>> schedule = warmup_cosine_schedule(1.0, total_steps=100)
    >>> [round(float(schedule(step)), 3) for step in (0, 1, 2, 51, 100)]
    [0.0, 0.5, 1.0, 0.5, 0.0]
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if not 0.0 <= warmup_fraction < 1.0:
        raise ValueError(f"warmup_fraction must be in [0, 1), got {warmup_fraction}")
    if learning_rate <= 0:
        raise ValueError(f"learning_rate must be positive, got {learning_rate}")
    warmup_steps = max(1, round(warmup_fraction * total_steps)) if warmup_fraction > 0 else 0
    if warmup_steps >= total_steps:
        warmup_steps = max(total_steps - 1, 0)
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=learning_rate,
        warmup_steps=warmup_steps,
        decay_steps=total_steps,
        end_value=0.0,
    )


def scale_by_tree(factors: PyTree) -> optax.GradientTransformation:
    """Multiply each update leaf by the matching leaf of ``factors`` (a per-leaf learning-rate factor)."""

    def update_fn(updates: PyTree, state: optax.EmptyState, params: PyTree | None = None) -> tuple[PyTree, Any]:
        del params
        return jax.tree.map(lambda update, factor: update * factor, updates, factors), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)


def make_optimizer(
    name: str,
    learning_rate: float,
    total_steps: int,
    *,
    momentum: float = 0.9,
    b1: float = 0.9,
    b2: float = 0.95,
    warmup_fraction: float = WARMUP_FRACTION,
    lr_scale: PyTree | None = None,
) -> optax.GradientTransformation:
    """SGD + momentum or Adam on :func:`warmup_cosine_schedule`, optionally with per-leaf lr factors.

    SGD with momentum (Eq. 3 with a velocity): ``v <- momentum * v + g; w <- w - eta_t * lr_scale * v``.
    Adam: optax's ``adam(eta_t, b1, b2)`` then ``* lr_scale``.
    """
    schedule = warmup_cosine_schedule(learning_rate, total_steps, warmup_fraction)
    if name == "sgd":
        base = optax.sgd(schedule, momentum=momentum)
    elif name == "adam":
        base = optax.adam(schedule, b1=b1, b2=b2)
    else:
        raise ValueError(f"unknown optimizer {name!r}; choose 'sgd' or 'adam'")
    if lr_scale is None:
        return base
    return optax.chain(base, scale_by_tree(lr_scale))



LR_TWEAK = 1.01  # "a learning rate increase of 1% (chosen arbitrarily and only once)"


def alpha_scale_tree(params: PyTree, quantizers: PyTree, estimator: Any) -> PyTree:
    """α(q, Q̂) (Eq. 4) on every quantized leaf, 1.0 elsewhere: STE-net's learning rate α·η (Table 1).

    >>> from qatlib.quantizers import UniformQuantizer
    >>> from qatlib.estimators import HTGE
    >>> import jax.numpy as jnp
    >>> q = UniformQuantizer.from_bits(2, 0.1)
    >>> tree = alpha_scale_tree({"kernel": jnp.zeros(3), "bias": jnp.zeros(1)}, {"kernel": q, "bias": None}, HTGE(5.5, scale="range", normalize=True))
    >>> round(float(tree["kernel"]), 4), tree["bias"]
    (0.6095, 1.0)
    """
    ones = jax.tree.map(lambda _: 1.0, params)
    return map_quantized(lambda q, _: alpha(q, estimator), quantizers, ones)
