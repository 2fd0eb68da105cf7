"""The paper's practical recipe for a user's own training loop (Section 5, Tables 1-2, Appendix G).

To train an STE-net that mirrors a Q̂-net, given the Q̂-net's initial params, a tree of per-leaf
quantizers (``None`` on leaves that are not quantized) and Q̂:

* **non-adaptive optimizers** (``"sgd"``: SGD, SGD with momentum; Theorem 5.1, Appendix D): start
  STE-net at M(w⁽⁰⁾) (Eq. 4) and multiply its learning rate on the quantized leaves by α;
* **adaptive optimizers** (``"adam"``: Theorem 5.2, Appendix E): change nothing;
* in both, STE-net's estimator is Q̂'s Appendix G partner: the STE where Q̂' > 0 everywhere, else
  the clipped STE on [M(w_min), M(w_max)] (per layer when those differ between layers).

:func:`ste_recipe` returns exactly these three things: chain ``recipe.lr_scale`` after your optax
optimizer, start from ``recipe.params``, and give your model ``recipe.estimator``.

>>> import jax.numpy as jnp, optax
>>> import qatlib
>>> from qatlib import estimators
>>> q = qatlib.UniformQuantizer.from_bits(2, 0.1)
>>> params = {"kernel": jnp.array([0.02, -0.07]), "bias": jnp.zeros(1)}
>>> recipe = ste_recipe(params, {"kernel": q, "bias": None}, estimators.HTGE(5.5, scale="range", normalize=True), "sgd")
>>> recipe.estimator
PWL(lower=None, upper=None)
>>> bool(jnp.allclose(recipe.params["kernel"], qatlib.weight_map(params["kernel"], q, estimators.HTGE(5.5, scale="range", normalize=True))))
True
>>> tx = optax.chain(optax.sgd(0.1), recipe.lr_scale)          # STE-net's optimizer: lr α·η on kernels
>>> updates, _ = tx.update({"kernel": jnp.ones(2), "bias": jnp.ones(1)}, tx.init(recipe.params))
>>> round(float(updates["kernel"][0]), 5), round(float(updates["bias"][0]), 5)
(-0.06095, -0.1)
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, ClassVar, Literal, NamedTuple

import jax
import optax

import qatlib
from qatlib import estimators
from qatlib.training.optimizers import alpha_scale_tree, scale_by_tree

__all__ = ["Family", "SteRecipe", "ste_recipe", "ste_partner", "LayerwisePartner"]

PyTree = Any
Family = Literal["sgd", "adam"]


@functools.lru_cache(maxsize=256)
def _mirror_partner(q_hat: estimators.Estimator, quantizer: Any) -> estimators.Estimator:
    with jax.ensure_compile_time_eval():  # concrete floats even while a step is being traced
        return qatlib.mirror_partner(q_hat, quantizer)


@dataclasses.dataclass(frozen=True)
class LayerwisePartner(estimators.Estimator):
    """STE-net's estimator when the Appendix G partner differs per layer.

    On each layer's quantizer q it is ``qatlib.mirror_partner(q_hat, q)`` (PWL on
    [M(w_min), M(w_max)] of that layer). Needed, e.g., for 1-bit kernels, where M maps the range
    far beyond itself.
    """

    q_hat: estimators.Estimator
    name: ClassVar[str] = "mirror_partner"
    clips: ClassVar[bool] = True

    def partner(self, quantizer: Any) -> estimators.Estimator:
        return _mirror_partner(self.q_hat, quantizer)

    def derivative(self, w: Any, quantizer: Any) -> jax.Array:
        return self.partner(quantizer).derivative(w, quantizer)


def ste_partner(estimator: estimators.Estimator, quantizers: PyTree) -> estimators.Estimator:
    """One model-wide STE-net estimator equal to ``mirror_partner(estimator, q)`` on every layer.

    The partner is ``STE()`` (Q-hat' > 0 everywhere) or PWL on [M(w_min), M(w_max)] per layer; when
    those bounds are every layer's own representable range (up to float32 rounding) that is
    ``PWL()``; otherwise :class:`LayerwisePartner`.
    """
    layers = [q for q in jax.tree.leaves(quantizers) if isinstance(q, qatlib.UniformQuantizer)]
    if not layers:
        raise ValueError("no quantized layers")
    partners = [qatlib.mirror_partner(estimator, q) for q in layers]
    if all(isinstance(p, estimators.STE) for p in partners):
        return estimators.STE()
    for partner, q in zip(partners, layers, strict=True):
        lo, hi = q.representable_range
        tolerance = 1e-5 * (hi - lo)
        if not (
            isinstance(partner, estimators.PWL)
            and abs(partner.bounds(q)[0] - lo) <= tolerance
            and abs(partner.bounds(q)[1] - hi) <= tolerance
        ):
            return LayerwisePartner(estimator)
    return estimators.PWL()


class SteRecipe(NamedTuple):
    """STE-net's initial params, the optax transformation applying α, and its estimator."""

    params: PyTree
    lr_scale: optax.GradientTransformation
    estimator: estimators.Estimator


def ste_recipe(params: PyTree, quantizers: PyTree, q_hat: estimators.Estimator, optimizer: Family) -> SteRecipe:
    """The paper's recipe: how to start and train an STE-net that trains like the Q̂-net (see module notes).

    ``optimizer`` names the family: ``"sgd"`` for SGD and SGD with momentum (M and α apply),
    ``"adam"`` for adaptive optimizers (nothing changes but the estimator).
    """
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"optimizer must be 'sgd' (SGD, momentum) or 'adam' (adaptive), got {optimizer!r}")
    estimator = ste_partner(q_hat, quantizers)
    if optimizer == "adam":
        return SteRecipe(params, optax.identity(), estimator)
    mapped = qatlib.weight_map(params, quantizers, q_hat)
    return SteRecipe(mapped, scale_by_tree(alpha_scale_tree(params, quantizers, q_hat)), estimator)
