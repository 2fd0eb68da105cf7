"""The paper's practical recipe for a user's own training loop (Section 5, Tables 1-2, Appendix G).

To train an STE-net that mirrors a Q̂-net, given the Q̂-net's initial params, a tree of per-leaf
quantizers (``None`` on leaves that are not quantized) and Q̂:

* **non-adaptive optimizers** (``"sgd"``: SGD, SGD with momentum; Theorem 5.1, Appendix D): start
  STE-net at M(w⁽⁰⁾) (Eq. 4) and multiply its learning rate on the quantized leaves by α;
* **adaptive optimizers** (``"adam"``: Theorem 5.2, Appendix E): change nothing;
* in both, STE-net's estimator is Q̂'s Appendix G partner: the STE where Q̂' > 0 beyond the
  representable range; else the clipped STE on the range STE-net's weights must freeze beyond,
  [M(w_min), M(w_max)] for SGD and Q̂-net's own [w_min, w_max] for Adam (:func:`layer_partner`;
  per layer when those differ between layers).

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
from qatlib import estimators, mirror
from qatlib.metrics import weight_map_jit
from qatlib.quantizers import map_quantized
from qatlib.training import optimizers

__all__ = ["Family", "RecipePlan", "recipe_plan", "SteRecipe", "ste_recipe", "uniform_alpha", "ste_partner", "layer_partner", "LayerwisePartner"]

PyTree = Any
Family = Literal["sgd", "adam"]


@functools.lru_cache(maxsize=256)
def layer_partner(q_hat: estimators.Estimator, quantizer: Any, family: Family = "sgd") -> estimators.Estimator:
    """STE-net's estimator on one layer (Appendix G), for an optimizer ``family``.

    * ``"sgd"`` (STE-net starts at M(w⁽⁰⁾)): ``qatlib.mirror_partner``, the STE where Q̂' > 0
      beyond the range, else PWL on [M(w_min), M(w_max)];
    * ``"adam"`` (STE-net starts at w⁽⁰⁾, no M): the STE where Q̂' > 0 beyond the range, else PWL
      on Q̂-net's own range [w_min, w_max], which freezes STE-net's weights exactly where Q̂-net's
      are frozen. (M's image of the range would be wrong here: at 1 bit it lies far outside it.)

    >>> from qatlib.quantizers import UniformQuantizer
    >>> q, htge = UniformQuantizer.from_bits(1, 0.1), estimators.HTGE(5.5, scale="range", normalize=True)
    >>> layer_partner(htge, q, "adam")
    PWL(lower=None, upper=None)
    >>> [float(layer_partner(htge, q, family).derivative(0.15, q)) for family in ("sgd", "adam")]   # at 1.5 w_max
    [1.0, 0.0]
    """
    if family not in ("sgd", "adam"):
        raise ValueError(f"family must be 'sgd' or 'adam', got {family!r}")
    with jax.ensure_compile_time_eval():  # concrete floats even while a step is being traced
        if family == "sgd":
            return qatlib.mirror_partner(q_hat, quantizer)
        return estimators.PWL() if mirror.clips(q_hat, quantizer) else estimators.STE()


@dataclasses.dataclass(frozen=True)
class LayerwisePartner(estimators.Estimator):
    """STE-net's estimator when the partner differs per layer: :func:`layer_partner` on each layer's
    quantizer (e.g. 1-bit kernels with SGD, where M maps each layer's range far beyond itself)."""

    q_hat: estimators.Estimator
    family: Family = "sgd"
    name: ClassVar[str] = "mirror_partner"
    clips: ClassVar[bool] = True

    def partner(self, quantizer: Any) -> estimators.Estimator:
        return layer_partner(self.q_hat, quantizer, self.family)

    def derivative(self, w: Any, quantizer: Any) -> jax.Array:
        return self.partner(quantizer).derivative(w, quantizer)


def ste_partner(estimator: estimators.Estimator, quantizers: PyTree, family: Family = "sgd") -> estimators.Estimator:
    """One model-wide STE-net estimator equal to :func:`layer_partner` on every layer.

    ``STE()`` where every layer's partner is the STE, ``PWL()`` where every layer's is PWL on its own
    representable range (up to float32 rounding), otherwise :class:`LayerwisePartner`.
    """
    layers = [q for q in jax.tree.leaves(quantizers) if isinstance(q, qatlib.UniformQuantizer)]
    if not layers:
        raise ValueError("no quantized layers")
    partners = [layer_partner(estimator, q, family) for q in layers]
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
            return LayerwisePartner(estimator, family)
    return estimators.PWL()


class RecipePlan(NamedTuple):
    """What the recipe does for one optimizer family, before any weights exist (see :func:`recipe_plan`)."""

    family: Family
    estimator: estimators.Estimator  # STE-net's estimator
    maps_weights: bool  # STE-net starts at M(w), not w
    scales_lr: bool  # STE-net's learning rate on the quantized leaves is α·η, not η


def recipe_plan(q_hat: estimators.Estimator, quantizers: PyTree, optimizer: str) -> RecipePlan:
    """The paper's recipe for ``optimizer`` (a family, ``"sgd"`` or ``"adam"``, or any name of
    :data:`qatlib.training.optimizers.FAMILIES`): the one place that decides it.

    SGD family (Theorem 5.1): M, α and the Appendix G partner on [M(w_min), M(w_max)]; Adam family
    (Theorem 5.2): no M, no α, the partner on [w_min, w_max] (:func:`layer_partner`).

    >>> from qatlib.quantizers import UniformQuantizer
    >>> plan = recipe_plan(estimators.MAD(), {"k": UniformQuantizer.from_bits(2, 0.1)}, "lion")
    >>> plan.family, plan.estimator, plan.maps_weights, plan.scales_lr
    ('adam', STE(), False, False)
    """
    if optimizer not in optimizers.FAMILIES:
        raise ValueError(
            f"optimizer must be 'sgd' (SGD, momentum), 'adam' (adaptive) or one of {sorted(optimizers.FAMILIES)}, got {optimizer!r}"
        )
    family = optimizers.family(optimizer)
    linear = family == "sgd"
    return RecipePlan(family, ste_partner(q_hat, quantizers, family), linear, linear)  # type: ignore[arg-type]


class SteRecipe(NamedTuple):
    """STE-net's start, learning-rate factors and estimator (see :func:`ste_recipe`).

    ``lr_factors`` is the tree of per-leaf learning-rate factors (α on quantized leaves, 1 elsewhere)
    for optimizers that take one (:func:`qatlib.training.optimizers.make_optimizer`'s ``lr_scale``),
    ``None`` when every factor is 1; ``lr_scale`` is the same as an optax transformation to chain
    after any optimizer; ``mapped`` says whether ``params`` is M(w⁽⁰⁾).
    """

    params: PyTree
    lr_scale: optax.GradientTransformation
    estimator: estimators.Estimator
    lr_factors: PyTree | None = None
    mapped: bool = False  # params is M(w⁽⁰⁾): STE-net is compared with M(Q̂-net) (Eq. 5)


def uniform_alpha(quantizers: PyTree, q_hat: estimators.Estimator) -> float:
    """The one α (Eq. 4) of every quantized layer (exact, not rounded); ValueError when layers differ."""
    values = [float(qatlib.alpha(q, q_hat)) for q in jax.tree.leaves(quantizers) if isinstance(q, qatlib.UniformQuantizer)]
    if not values:
        raise ValueError("no quantized layers")
    if max(values) - min(values) > 1e-6 * max(values):
        raise ValueError(f"α on the slope needs one α for every layer, got {sorted(values)}")
    return values[0]


def ste_recipe(
    params: PyTree, quantizers: PyTree, q_hat: estimators.Estimator, optimizer: str, *, alpha_on: str = "lr"
) -> SteRecipe:
    """The paper's recipe applied to Q̂-net's params: how to start and train an STE-net that trains
    like the Q̂-net (:func:`recipe_plan`; ``optimizer`` as there). M is applied leaf by leaf, each
    compiled once (:func:`qatlib.metrics.weight_map_jit`).

    ``alpha_on="slope"`` applies α as the authors' code does, on STE-net's estimator (the partner's
    Q̂' times α, :class:`qatlib.estimators.Scaled`) instead of its learning rate: the same update
    for SGD and momentum without weight decay; it needs one α for every layer (:func:`uniform_alpha`).
    """
    if alpha_on not in ("lr", "slope"):
        raise ValueError(f"alpha_on must be 'lr' or 'slope', got {alpha_on!r}")
    plan = recipe_plan(q_hat, quantizers, optimizer)
    start = map_quantized(lambda q, w: weight_map_jit(w, q, q_hat), quantizers, params) if plan.maps_weights else params
    if not plan.scales_lr:
        return SteRecipe(start, optax.identity(), plan.estimator)
    if alpha_on == "slope":
        return SteRecipe(start, optax.identity(), estimators.Scaled(plan.estimator, uniform_alpha(quantizers, q_hat)), None, True)
    factors = optimizers.alpha_scale_tree(params, quantizers, q_hat)
    return SteRecipe(start, optimizers.scale_by_tree(factors), plan.estimator, factors, True)
