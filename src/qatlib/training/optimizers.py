"""Optimizers and learning-rate schedules of the paper's experiments (Section 6.1), from optax.

* :func:`warmup_cosine_schedule` ``(learning_rate, total_steps)``: linear warm-up from 0 over 2% of
  the steps, then cosine decay to 0 (Loshchilov & Hutter 2016; Goyal et al. 2017). The "learning
  rate" of the paper is the peak value.
* :func:`make_optimizer` ``("sgd" | "adam", learning_rate, total_steps, lr_scale=...)``: SGD with
  momentum 0.9 or Adam (beta1 0.9, beta2 0.95) from optax on that schedule. ``lr_scale`` is an
  optional tree parallel to the params of per-leaf learning-rate factors: STE-net's ``alpha * eta``
  on the quantized kernels (Table 1) is ``lr_scale = alpha_scale_tree(...)``.
* :data:`LR_TWEAK`: the lr-tweak net's factor, "a learning rate increase of 1%".

Beyond the paper (the "When is the STE enough?" chapter): ``make_optimizer`` also builds Nesterov
momentum (``nesterov=True``), AdamW, signSGD and Lion, and a coupled L2 term (``weight_decay``:
g + λw, before the optimizer); :data:`FAMILIES` says which recipe each follows (``"sgd"``: M and
α apply, Theorem 5.1; ``"adam"``: nothing changes, Theorem 5.2, and the sign-based optimizers,
whose update is invariant to a positive per-weight gradient factor). :func:`scale_by_derivative`
is the momentum-lag diagnostic's transformation: updates times Q̂'(w) at the current weights.
"""

from __future__ import annotations

from typing import Any

import jax
import optax

from qatlib.mirror import alpha
from qatlib.quantizers import map_quantized

__all__ = [
    "WARMUP_FRACTION",
    "LR_TWEAK",
    "FAMILIES",
    "family",
    "warmup_cosine_schedule",
    "make_optimizer",
    "scale_by_tree",
    "scale_by_derivative",
    "alpha_scale_tree",
]

PyTree = Any

WARMUP_FRACTION = 0.02

#: The recipe each optimizer follows: "sgd" (linear in the gradients: M and α, Theorem 5.1) or
#: "adam" (invariant to a positive per-weight gradient scale, to O(η): change nothing, Theorem 5.2).
FAMILIES: dict[str, str] = {"sgd": "sgd", "adam": "adam", "adamw": "adam", "signsgd": "adam", "lion": "adam"}


def family(name: str) -> str:
    """``"sgd"`` or ``"adam"``: which of the paper's recipes the optimizer ``name`` follows.

    >>> family("lion"), family("sgd")
    ('adam', 'sgd')
    """
    if name not in FAMILIES:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {sorted(FAMILIES)}")
    return FAMILIES[name]


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
    nesterov: bool = False,
    b1: float = 0.9,
    b2: float = 0.95,
    weight_decay: float = 0.0,
    warmup_fraction: float = WARMUP_FRACTION,
    lr_scale: PyTree | None = None,
) -> optax.GradientTransformation:
    """An optax optimizer of :data:`FAMILIES` on :func:`warmup_cosine_schedule`, optionally with per-leaf lr factors.

    * ``"sgd"``: ``v <- momentum * v + g; w <- w - eta_t * lr_scale * v`` (Eq. 3 with a velocity;
      ``nesterov=True`` gives Nesterov's look-ahead form);
    * ``"adam"``: optax's ``adam(eta_t, b1, b2)``; ``"adamw"``: ``adamw`` with decoupled decay ``weight_decay``;
    * ``"signsgd"``: ``w <- w - eta_t * sign(g)``; ``"lion"``: optax's ``lion(eta_t, b1, b2=0.99)``.

    ``weight_decay`` > 0 on ``"sgd"``/``"adam"``/``"signsgd"`` is a coupled L2 term: the gradient
    becomes g + λw before the optimizer (so ``lr_scale`` multiplies both); on ``"adamw"`` and
    ``"lion"`` it is their own decoupled decay. The result of ``lr_scale=None`` and no decay is
    exactly the optax optimizer (the committed artefacts were made with it).
    """
    schedule = warmup_cosine_schedule(learning_rate, total_steps, warmup_fraction)
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    coupled = weight_decay > 0 and name in ("sgd", "adam", "signsgd")
    if name == "sgd":
        base = optax.sgd(schedule, momentum=momentum, nesterov=nesterov)
    elif name == "adam":
        base = optax.adam(schedule, b1=b1, b2=b2)
    elif name == "adamw":
        base = optax.adamw(schedule, b1=b1, b2=b2, weight_decay=weight_decay)
    elif name == "signsgd":
        base = optax.sign_sgd(schedule)
    elif name == "lion":
        base = optax.lion(schedule, b1=b1, weight_decay=weight_decay)
    else:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {sorted(FAMILIES)}")
    parts = [optax.add_decayed_weights(weight_decay)] if coupled else []
    parts.append(base)
    if lr_scale is not None:
        parts.append(scale_by_tree(lr_scale))
    return parts[0] if len(parts) == 1 else optax.chain(*parts)


def scale_by_derivative(quantizers: PyTree, estimator: Any) -> optax.GradientTransformation:
    """Multiply each quantized leaf's update by Q̂'(w) at the current weights (1 on other leaves).

    The momentum-lag diagnostic: on STE gradients g = ∂L/∂Q(w), ``chain(trace(β),
    scale_by_derivative(...), scale_by_learning_rate(η))`` is ``v <- βv + g; w <- w - η Q̂'(w) v``,
    the Q̂-net whose M-image follows the STE-net with momentum exactly to first order (M' = α/Q̂').
    """

    def update_fn(updates: PyTree, state: optax.EmptyState, params: PyTree | None = None) -> tuple[PyTree, Any]:
        if params is None:
            raise ValueError("scale_by_derivative needs the params (Q̂' is evaluated at them)")
        scaled = map_quantized(lambda q, update, w: update * estimator.derivative(w, q), quantizers, updates, params)
        return scaled, state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)


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
