"""Weight quantizers: the uniform quantizer of Eq. 1 and the binary (sign) quantizer.

Both are frozen, hashable dataclasses: they can be closed over under ``jax.jit`` and used as the
leaves of a tree parallel to a Flax params tree (one quantizer per layer, ``None`` for a leaf or
subtree that is not quantized, a bias say). The walk over such a pair of trees has one home here:
:func:`is_quantizer_or_none` (the ``is_leaf`` predicate), :func:`map_quantized` and
:func:`quantized_leaves`.

>>> q = UniformQuantizer.from_bits(bits=2, w_max=1.5)
>>> q.levels()
array([-1.5, -0.5,  0.5,  1.5])
>>> [float(v) for v in q(jnp.array([-2.0, -0.9, 0.1, 0.8, 9.0]))]
[-1.5, -0.5, 0.5, 0.5, 1.5]
>>> q.representable_range
(-1.5, 1.5)
>>> [float(b) for b in q.boundaries(jnp.array(0.1))]
[0.0, 1.0]
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

__all__ = ["UniformQuantizer", "BinaryQuantizer", "is_quantizer_or_none", "map_quantized", "quantized_leaves"]


@dataclasses.dataclass(frozen=True)
class UniformQuantizer:
    """Q(x) = offset + Δ·round(clip((x − offset)/Δ, l, u))  (Eq. 1, with a zero point ``offset``).

    Levels are ``offset + nΔ`` for integers n in [l, u]; the representable range is
    [offset + Δl, offset + Δu] (Appendix A). Bins are centred on the levels, so the boundary points
    are ``offset + (n + ½)Δ`` for n = l … u − 1. The two outermost bins are infinite; the
    ``u − l − 1`` inner bins are the finite bins of length Δ on which a cyclical estimator repeats.

    Args:
      delta: the step Δ > 0.
      lower: the integer l.
      upper: the integer u > l.
      offset: the zero point (default 0).
    """

    delta: float
    lower: int
    upper: int
    offset: float = 0.0

    def __post_init__(self) -> None:
        if not (isinstance(self.delta, (int, float)) and math.isfinite(self.delta) and self.delta > 0):
            raise ValueError(f"delta must be a finite number > 0, got {self.delta!r}")
        if int(self.lower) != self.lower or int(self.upper) != self.upper:
            raise ValueError(f"lower and upper must be integers, got {self.lower!r}, {self.upper!r}")
        if self.lower >= self.upper:
            raise ValueError(f"lower must be < upper, got lower={self.lower}, upper={self.upper}")
        if not math.isfinite(self.offset):
            raise ValueError(f"offset must be finite, got {self.offset!r}")
        object.__setattr__(self, "delta", float(self.delta))
        object.__setattr__(self, "lower", int(self.lower))
        object.__setattr__(self, "upper", int(self.upper))
        object.__setattr__(self, "offset", float(self.offset))

    @classmethod
    def from_bits(cls, bits: int, w_max: float) -> UniformQuantizer:
        """The paper's layout: 2^b levels −w_max + nΔ, Δ = 2·w_max/(2^b − 1), range [−w_max, w_max].

        ``w_max`` is typically the bound of a layer's He-uniform initialiser, √(6/fan_in). For an even
        number of levels there is no zero level (2 bits: ±w_max, ±w_max/3).

        >>> UniformQuantizer.from_bits(2, 3.0)
        UniformQuantizer(delta=2.0, lower=0, upper=3, offset=-3.0)
        """
        if isinstance(bits, bool) or int(bits) != bits or bits < 1:
            raise ValueError(f"bits must be an integer >= 1, got {bits!r}")
        if not (math.isfinite(w_max) and w_max > 0):
            raise ValueError(f"w_max must be a finite number > 0, got {w_max!r}")
        n_steps = 2 ** int(bits) - 1
        return cls(delta=2.0 * w_max / n_steps, lower=0, upper=n_steps, offset=-float(w_max))

    # ------------------------------------------------------------------ geometry
    @property
    def representable_range(self) -> tuple[float, float]:
        """(w_min, w_max) = (offset + Δl, offset + Δu)."""
        return (self.offset + self.delta * self.lower, self.offset + self.delta * self.upper)

    @property
    def num_levels(self) -> int:
        return self.upper - self.lower + 1

    @property
    def num_finite_bins(self) -> int:
        """Bins of finite length Δ (all but the two infinite edge bins)."""
        return max(self.num_levels - 2, 0)

    def levels(self) -> np.ndarray:
        return self.offset + self.delta * np.arange(self.lower, self.upper + 1, dtype=np.float64)

    def boundary_points(self) -> np.ndarray:
        """All boundary points offset + (n + ½)Δ, n = l … u − 1, ascending."""
        return self.offset + self.delta * (np.arange(self.lower, self.upper, dtype=np.float64) + 0.5)

    def level_index(self, w: ArrayLike) -> Array:
        """The integer n of the level Q(w) = offset + nΔ."""
        w = jnp.asarray(w)
        return jnp.round(jnp.clip((w - self.offset) / self.delta, self.lower, self.upper))

    def phase(self, w: ArrayLike) -> Array:
        """Position of w relative to the level of its bin, in bin units: (w − Q(w))/Δ.

        In [−½, ½] inside the representable range; beyond it, |phase| grows without bound.
        """
        w = jnp.asarray(w)
        return (w - self(w)) / self.delta

    def in_range(self, w: ArrayLike) -> Array:
        lo, hi = self.representable_range
        w = jnp.asarray(w)
        return (w >= lo) & (w <= hi)

    def boundaries(self, w: ArrayLike) -> tuple[Array, Array]:
        """(w₋, w₊): the boundary points of w's bin; −inf / +inf where the bin is infinite."""
        n = self.level_index(w)
        lower = jnp.where(n > self.lower, self.offset + (n - 0.5) * self.delta, -jnp.inf)
        upper = jnp.where(n < self.upper, self.offset + (n + 0.5) * self.delta, jnp.inf)
        return lower, upper

    def __call__(self, x: ArrayLike) -> Array:
        """Q(x), Eq. 1. Exact: the value is always one of ``levels()`` (in the input's dtype)."""
        x = jnp.asarray(x)
        if not jnp.issubdtype(x.dtype, jnp.floating):
            x = x.astype(jnp.float32)
        # Look the level up in a table computed in float64: identical under jit and eagerly
        # (offset + Δ·n would be fused differently by XLA and differ in the last bit).
        table = jnp.asarray(self.levels(), dtype=x.dtype)
        return table[(self.level_index(x) - self.lower).astype(jnp.int32)]


@dataclasses.dataclass(frozen=True)
class BinaryQuantizer(UniformQuantizer):
    """Q(x) = scale·sign(x) with sign(0) = +1 (values ±scale, one boundary point at 0).

    The paper defines α := 1 for binary quantizers (Section 5.1). Estimators that need a
    "representable range" (PWL, the default clip range) use [−scale, scale] (Appendix A).

    >>> q = BinaryQuantizer()
    >>> [float(v) for v in q(jnp.array([-0.3, 0.0, 2.0]))]
    [-1.0, 1.0, 1.0]
    """

    delta: float = dataclasses.field(init=False)
    lower: int = dataclasses.field(init=False, default=0)
    upper: int = dataclasses.field(init=False, default=1)
    offset: float = dataclasses.field(init=False)
    scale: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"scale must be a finite number > 0, got {self.scale!r}")
        object.__setattr__(self, "scale", float(self.scale))
        object.__setattr__(self, "delta", 2.0 * self.scale)
        object.__setattr__(self, "offset", -self.scale)
        super().__post_init__()

    def level_index(self, w: ArrayLike) -> Array:
        w = jnp.asarray(w)
        return jnp.where(w >= 0, 1.0, 0.0).astype(w.dtype if jnp.issubdtype(w.dtype, jnp.floating) else jnp.float32)

    def __repr__(self) -> str:
        return f"BinaryQuantizer(scale={self.scale})"


# -------------------------------------------------------------------- trees of per-layer quantizers
def is_quantizer_or_none(x: Any) -> bool:
    """The ``is_leaf`` predicate of a quantizer tree: a quantizer, or ``None`` (not quantized).

    >>> import jax
    >>> jax.tree.leaves({"kernel": UniformQuantizer.from_bits(2, 1.0), "bias": None}, is_leaf=is_quantizer_or_none)
    [None, UniformQuantizer(delta=0.6666666666666666, lower=0, upper=3, offset=-1.0)]
    """
    return x is None or isinstance(x, UniformQuantizer)


def map_quantized(fn: Callable[..., Any], quantizers: Any, *trees: Any) -> Any:
    """``fn(quantizer, *leaves)`` on every quantized leaf of ``trees``; other leaves stay as they are.

    ``quantizers`` is one quantizer (for every leaf) or a tree whose structure is a prefix of each
    tree's, holding a quantizer or ``None`` at each of its leaves; under ``None`` the first tree's
    subtree is returned unchanged. The result has the first tree's structure. Pure and jit-safe
    (the quantizers are static: frozen, hashable).

    >>> q = UniformQuantizer.from_bits(1, 1.0)
    >>> params = {"kernel": jnp.array([0.2, -0.3]), "bias": jnp.array([0.7])}
    >>> out = map_quantized(lambda q, w: q(w), {"kernel": q, "bias": None}, params)
    >>> [float(v) for v in out["kernel"]], [float(v) for v in out["bias"]]
    ([1.0, -1.0], [0.699999988079071])
    >>> diff = map_quantized(lambda q, a, b: a - b, q, params, params)   # several trees, one quantizer
    >>> [float(v) for v in diff["kernel"]]
    [0.0, 0.0]
    """
    if not trees:
        raise ValueError("map_quantized needs at least one tree to map over")
    if isinstance(quantizers, UniformQuantizer):
        return jax.tree.map(lambda *leaves: fn(quantizers, *leaves), *trees)
    return jax.tree.map(
        lambda q, first, *rest: first if q is None else jax.tree.map(lambda *leaves: fn(q, *leaves), first, *rest),
        quantizers,
        *trees,
        is_leaf=is_quantizer_or_none,
    )


def quantized_leaves(tree: Any, quantizers: Any) -> Iterator[tuple[str, Array, Any]]:
    """``(path, leaf, quantizer)`` for every leaf of ``tree`` that has a quantizer, in tree order.

    ``path`` joins the keys with "/" (``"conv_0/kernel"``); ``quantizers`` is a tree of quantizers
    and ``None`` as for :func:`map_quantized` (its leaves name single leaves of ``tree``). A
    quantizer without a matching leaf is a ValueError.

    >>> q = UniformQuantizer.from_bits(2, 1.0)
    >>> params = {"conv": {"kernel": jnp.zeros(3), "bias": jnp.zeros(1)}}
    >>> [(path, leaf.shape) for path, leaf, _ in quantized_leaves(params, {"conv": {"kernel": q, "bias": None}})]
    [('conv/kernel', (3,))]
    """
    flat_q = jax.tree_util.tree_flatten_with_path(quantizers, is_leaf=is_quantizer_or_none)[0]
    flat_t = dict(
        (jax.tree_util.keystr(path), leaf) for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
    )
    for path, quantizer in flat_q:
        if quantizer is None:
            continue
        key = jax.tree_util.keystr(path)
        if key not in flat_t:
            raise ValueError(f"the quantizer tree has {key} but the params tree does not")
        yield key.strip("[]'").replace("']['", "/"), flat_t[key], quantizer
