"""Weight gradient estimators Q̂: the derivative Q̂'(w) that replaces Q'(w) on the backward pass.

Every estimator is a small frozen dataclass deriving from :class:`Estimator`. It declares
``derivative(w, quantizer)`` and two facts the theory needs (Section 5.1):

* ``is_cyclical`` — Q̂' is identical on every finite bin (Q̂'(w) = Q̂'(w + Δ));
* ``clips`` — Q̂' is zero beyond the representable range (Appendix G's common case).

``is_strictly_positive`` (Assumption 5.1.1 everywhere) follows from them. α, M and M⁻¹ have a
general numerical implementation in :mod:`qatlib.mirror`; an estimator with a closed form supplies
it through the optional hooks ``_local_integral`` (∫ ds/Q̂'(s) across one bin, in the bin-local
coordinate x = w − Q(w)) and ``_tail_integral`` (the same beyond the representable range).

Cyclical estimators are written in the bin-local coordinate x = w − Q(w) ∈ [−Δ/2, Δ/2] (a "bin"
here is the set of weights that round to one level; its ends are the rounding thresholds, the
boundary points that M fixes), so the same object serves every layer's quantizer.

>>> from qatlib.quantizers import UniformQuantizer
>>> q = UniformQuantizer.from_bits(2, 1.5)            # Δ = 1, levels ±0.5, ±1.5
>>> [float(v) for v in STE().derivative(jnp.array([0.3, 4.0]), q)]
[1.0, 1.0]
>>> [float(v) for v in PWL().derivative(jnp.array([0.3, 4.0]), q)]
[1.0, 0.0]
>>> round(float(HTGE(2.0).derivative(jnp.array(0.0), q)), 6)   # k / cosh²(0) at a threshold
2.0
>>> round(float(HTGE(2.0, centre="level").derivative(jnp.array(0.5), q)), 6)  # the shifted control
2.0
>>> get("htge", sharpness=2.0) == HTGE(2.0)
True
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Callable
from typing import ClassVar, Literal

import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from qatlib.quantizers import UniformQuantizer

__all__ = [
    "Estimator",
    "STE",
    "PWL",
    "MAD",
    "HTGE",
    "DSQ",
    "CENTRES",
    "EDE",
    "Custom",
    "get",
    "names",
    "mirror_partner",
]


class Estimator(abc.ABC):
    """Abstract gradient estimator: subclasses implement :meth:`derivative`."""

    name: ClassVar[str] = "estimator"
    is_cyclical: ClassVar[bool] = True
    clips: ClassVar[bool] = False
    # Q̂'(c + s) = Q̂'(c − s) about every level c: lets M integrate from the nearer boundary point
    # without cancellation (∫_x^{Δ/2} = J(−x)).
    is_symmetric: ClassVar[bool] = False

    @abc.abstractmethod
    def derivative(self, w: ArrayLike, quantizer: UniformQuantizer) -> Array:
        """Q̂'(w) for the weights ``w`` under ``quantizer``."""

    @property
    def is_strictly_positive(self) -> bool:
        """Q̂'(w) > 0 for every real w (the lower bound of Assumption 5.1.1)."""
        return not self.clips

    # Optional closed-form hooks used by qatlib.mirror (None: use quadrature).
    def _local_integral(self, x: Array, quantizer: UniformQuantizer) -> Array | None:
        """J(x) = ∫_{−Δ/2}^{x} ds / Q̂'(c + s) for x in [−Δ/2, Δ/2], c a level (cyclical only)."""
        return None

    def _tail_integral(self, d: Array, quantizer: UniformQuantizer) -> Array | None:
        """T(d) = ∫_0^d ds / Q̂'(w_edge ± s), d ≥ 0, beyond the representable range (if not clipping)."""
        return None

    def _tail_integral_inverse(self, v: Array, quantizer: UniformQuantizer) -> Array | None:
        return None


def _inside(w: Array, quantizer: UniformQuantizer) -> Array:
    return quantizer.in_range(w)


# ---------------------------------------------------------------------------------------- STE / PWL
@dataclasses.dataclass(frozen=True)
class STE(Estimator):
    """The straight-through estimator (Bengio et al. 2013; Hinton 2012): Q̂'(w) = 1 everywhere.

    α = 1 and M is the identity.
    """

    name: ClassVar[str] = "ste"
    is_symmetric: ClassVar[bool] = True

    def derivative(self, w: ArrayLike, quantizer: UniformQuantizer) -> Array:
        w = jnp.asarray(w)
        return jnp.ones_like(w, dtype=w.dtype if jnp.issubdtype(w.dtype, jnp.floating) else jnp.float32)

    def _local_integral(self, x: Array, quantizer: UniformQuantizer) -> Array:
        return x + quantizer.delta / 2

    def _tail_integral(self, d: Array, quantizer: UniformQuantizer) -> Array:
        return d

    def _tail_integral_inverse(self, v: Array, quantizer: UniformQuantizer) -> Array:
        return v


@dataclasses.dataclass(frozen=True)
class PWL(Estimator):
    """Piecewise-linear (clipped) estimator: Q̂'(w) = 1 on [lower, upper], 0 outside (Section 2).

    ``lower``/``upper`` default to the quantizer's representable range (Eq. 1 with the round step
    removed; Hubara et al. 2016). With an explicit range it is the Appendix G partner
    PWL_{M(w_min), M(w_max)} of a clipping estimator.
    """

    lower: float | None = None
    upper: float | None = None
    name: ClassVar[str] = "pwl"
    is_symmetric: ClassVar[bool] = True
    clips: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if self.lower is not None and self.upper is not None and not self.lower < self.upper:
            raise ValueError(f"PWL needs lower < upper, got [{self.lower}, {self.upper}]")

    def bounds(self, quantizer: UniformQuantizer) -> tuple[float, float]:
        lo, hi = quantizer.representable_range
        return (lo if self.lower is None else float(self.lower), hi if self.upper is None else float(self.upper))

    def derivative(self, w: ArrayLike, quantizer: UniformQuantizer) -> Array:
        w = jnp.asarray(w)
        lo, hi = self.bounds(quantizer)
        dtype = w.dtype if jnp.issubdtype(w.dtype, jnp.floating) else jnp.float32
        return ((w >= lo) & (w <= hi)).astype(dtype)

    def _local_integral(self, x: Array, quantizer: UniformQuantizer) -> Array:
        return x + quantizer.delta / 2


# --------------------------------------------------------------------------------------------- MAD
@dataclasses.dataclass(frozen=True)
class MAD(Estimator):
    """Magnitude-aware differentiation (Sakr et al. 2022): the STE inside the representable range
    and a reciprocal decay outside it, Q̂'(w) = r / (r + d), d the distance to the range and r its
    half-length (= w_max/|w| for a symmetric range [−w_max, w_max], Sakr's c/|x|).

    Strictly positive everywhere; α = 1; M is the identity inside the range and
    M(w) = w_max + d + d²/(2r) beyond it.
    """

    name: ClassVar[str] = "mad"
    is_symmetric: ClassVar[bool] = True

    def derivative(self, w: ArrayLike, quantizer: UniformQuantizer) -> Array:
        w = jnp.asarray(w)
        lo, hi = quantizer.representable_range
        r = (hi - lo) / 2
        d = jnp.maximum(jnp.maximum(w - hi, lo - w), 0.0)
        return r / (r + d)

    def _local_integral(self, x: Array, quantizer: UniformQuantizer) -> Array:
        return x + quantizer.delta / 2

    def _tail_integral(self, d: Array, quantizer: UniformQuantizer) -> Array:
        lo, hi = quantizer.representable_range
        r = (hi - lo) / 2
        return d + d * d / (2 * r)

    def _tail_integral_inverse(self, v: Array, quantizer: UniformQuantizer) -> Array:
        lo, hi = quantizer.representable_range
        r = (hi - lo) / 2
        # Solve d + d²/(2r) = v for d ≥ 0, written to avoid cancellation for small v.
        return 2 * v / (1 + jnp.sqrt(1 + 2 * v / r))


# ------------------------------------------------------------------------------------ tanh family
Centre = Literal["threshold", "level"]
CENTRES: tuple[str, ...] = ("threshold", "level")


class _TanhBin(Estimator):
    """Q̂'(w) = A·k / cosh²(k·(w − c(w))) inside the representable range, zero beyond it.

    ``centre`` says where each tanh is centred:

    * ``"threshold"`` (the paper's shape; Appendix B, Pei et al. 2023, Gong et al. 2019 and the
      authors' code): c(w) is the rounding threshold between the two levels that enclose w, so Q̂'
      peaks where Q jumps and is smallest at the levels. In the level-centred bin coordinate
      x = w − Q(w) ∈ [−Δ/2, Δ/2] this is Q̂' = A·k / cosh²(k·(Δ/2 − |x|)); at the ends of the
      range the pieces are the outer halves of the bumps on the outermost thresholds.
    * ``"level"``: c(w) = Q(w), the level nearest w (Q̂' peaks on the levels). The same shape
      shifted by Δ/2; kept only as a named control for "how much does the phase matter?".

    Over a full period both have the same α, L₋, L₊, L′ (a shift of Δ/2 moves no constant); M
    differs, since it integrates 1/Q̂' from the thresholds.
    """

    clips: ClassVar[bool] = True
    is_symmetric: ClassVar[bool] = True

    @abc.abstractmethod
    def sharpness_in_weight_units(self, quantizer: UniformQuantizer) -> float:
        """k (1 / weight units)."""

    @abc.abstractmethod
    def amplitude(self, quantizer: UniformQuantizer) -> float:
        """A: 1 for the Appendix H form, (Δ/2)/tanh(kΔ/2) for the bin-normalised form."""

    def _check_centre(self) -> None:
        if self.centre not in CENTRES:  # type: ignore[attr-defined]
            raise ValueError(
                f"{type(self).__name__} centre must be one of {CENTRES}, got {self.centre!r}"  # type: ignore[attr-defined]
            )

    def distance_to_centre(self, w: Array, quantizer: UniformQuantizer) -> Array:
        """w − c(w): the signed offset from the tanh's centre (its sign does not matter: cosh² is even)."""
        x = w - quantizer(w)
        if self.centre == "level":  # type: ignore[attr-defined]
            return x
        return quantizer.delta / 2 - jnp.abs(x)

    def derivative(self, w: ArrayLike, quantizer: UniformQuantizer) -> Array:
        w = jnp.asarray(w)
        k = self.sharpness_in_weight_units(quantizer)
        a = self.amplitude(quantizer)
        value = a * k / jnp.cosh(k * self.distance_to_centre(w, quantizer)) ** 2
        return jnp.where(_inside(w, quantizer), value, 0.0)

    def _local_integral(self, x: Array, quantizer: UniformQuantizer) -> Array:
        # J(x) = ∫_{−Δ/2}^{x} cosh²(k·u(s)) ds / (A k), with ∫cosh²(ku) du = u/2 + sinh(2ku)/(4k).
        k = self.sharpness_in_weight_units(quantizer)
        a = self.amplitude(quantizer)
        half = quantizer.delta / 2
        if self.centre == "level":  # type: ignore[attr-defined]
            # u = s; sinh(2kx) + sinh(kΔ) = 2 sinh(k(x + Δ/2)) cosh(k(x − Δ/2)) avoids cancellation.
            sinh_sum = 2 * jnp.sinh(k * (x + half)) * jnp.cosh(k * (x - half))
            return ((x + half) / 2 + sinh_sum / (4 * k)) / (a * k)

        # u = Δ/2 − |s| (the distance to the threshold): G(u) = ∫_0^u cosh²(kv) dv / (A k).
        def G(u: Array) -> Array:
            return (u / 2 + jnp.sinh(2 * k * u) / (4 * k)) / (a * k)

        return jnp.where(x <= 0, G(x + half), 2 * G(jnp.asarray(half, x.dtype)) - G(half - x))


Scale = Literal["weight", "bin", "range"]


@dataclasses.dataclass(frozen=True)
class HTGE(_TanhBin):
    """Hyperbolic-tangent gradient estimator (Pei et al. 2023; paper Appendix B and H).

    Q̂'(w) = A·k / cosh²(k·(w − c(w))) inside the representable range, zero beyond it, with c(w)
    the rounding threshold between the two levels that enclose w (``centre="threshold"``, the
    paper's shape: Appendix B's H(x) = (a+b)/2 + tanh(t(x − (a+b)/2))/2 with a = ⌊x⌋, b = ⌈x⌉ in
    level units; Appendix H's "a is the centre of the quantization bin w is in" reads "bin" as the
    interval between two levels). ``centre="level"`` is the Δ/2-shifted control.
    ``sharpness`` is read according to ``scale``:

    * ``"weight"``: k = sharpness, in 1/weight units (Appendix H);
    * ``"bin"``: k = sharpness/Δ, i.e. Pei et al.'s bin-unit t (their H has H' = (t/2)/cosh²,
      which is this form with A = Δ/2: α scales by that factor, M does not);
    * ``"range"``: k = sharpness / w_max with w_max the half-length of the representable range —
      the scale-free reading of the paper's "5.5 × the maximum of the initialisation distribution".

    ``normalize=False`` gives A = 1 (Appendix H: slope k at a tanh's centre). ``normalize=True``
    gives A = (Δ/2)/tanh(kΔ/2): Q̂ rises by exactly Δ from one level to the next, so Q̂' has mean 1
    over a bin like the STE — the shape the authors trained with (and DSQ's). Normalising rescales
    Q̂', which changes α but neither M nor the Appendix H constant L′L₊/2L₋².
    """

    sharpness: float
    scale: Scale = "weight"
    normalize: bool = False
    centre: Centre = "threshold"
    name: ClassVar[str] = "htge"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.sharpness) and self.sharpness > 0):
            raise ValueError(f"HTGE sharpness must be a finite number > 0, got {self.sharpness!r}")
        if self.scale not in ("weight", "bin", "range"):
            raise ValueError(f"HTGE scale must be 'weight', 'bin' or 'range', got {self.scale!r}")
        self._check_centre()

    def sharpness_in_weight_units(self, quantizer: UniformQuantizer) -> float:
        if self.scale == "weight":
            return float(self.sharpness)
        if self.scale == "bin":
            return float(self.sharpness) / quantizer.delta
        lo, hi = quantizer.representable_range
        return float(self.sharpness) / ((hi - lo) / 2)

    def amplitude(self, quantizer: UniformQuantizer) -> float:
        if not self.normalize:
            return 1.0
        k = self.sharpness_in_weight_units(quantizer)
        return (quantizer.delta / 2) / math.tanh(k * quantizer.delta / 2)


@dataclasses.dataclass(frozen=True)
class DSQ(_TanhBin):
    """Differentiable soft quantization (Gong et al. 2019), parametrised by its α_DSQ ∈ (0, 1).

    φ(x) = s·tanh(k·(x − m_i)) on the interval between two levels, m_i its midpoint (the rounding
    threshold), k = log(2/α_DSQ − 1)/Δ, s = 1/(1 − α_DSQ), so tanh(kΔ/2) = 1 − α_DSQ and Q̂ rises by
    exactly Δ from one level to the next: Q̂'(w) = (Δ/2)·s·k / cosh²(k·(w − m_i)). It equals
    ``HTGE(k, normalize=True)``. (α_DSQ is DSQ's own shape parameter, not the paper's α of Eq. 4.)
    ``centre="level"`` is the Δ/2-shifted control, as for :class:`HTGE`.
    """

    dsq_alpha: float = 0.2
    centre: Centre = "threshold"
    name: ClassVar[str] = "dsq"

    def __post_init__(self) -> None:
        if not (0.0 < self.dsq_alpha < 1.0):
            raise ValueError(f"DSQ needs 0 < dsq_alpha < 1, got {self.dsq_alpha!r}")
        self._check_centre()

    def sharpness_in_weight_units(self, quantizer: UniformQuantizer) -> float:
        return math.log(2.0 / self.dsq_alpha - 1.0) / quantizer.delta

    def amplitude(self, quantizer: UniformQuantizer) -> float:
        return (quantizer.delta / 2) / (1.0 - self.dsq_alpha)


# --------------------------------------------------------------------------------------------- EDE
@dataclasses.dataclass(frozen=True)
class EDE(Estimator):
    """Error decay estimator for binary quantization (Qin et al. 2020): Q̂(w) = k·tanh(t·w).

    Q̂'(w) = k·t·(1 − tanh²(t·(w − b))), b the quantizer's single boundary point (0 for the sign);
    k defaults to max(1/t, 1) as in Qin et al. Strictly positive; α := 1 (binary); in closed form
    M(w) = b + (x/2 + sinh(2tx)/(4t)) / (k t), x = w − b. Use :meth:`at_progress` for their
    schedule t = T_min·10^{p·log10(T_max/T_min)}.
    """

    t: float = 1.0
    k: float | None = None
    name: ClassVar[str] = "ede"
    is_cyclical: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.t) and self.t > 0):
            raise ValueError(f"EDE needs t > 0, got {self.t!r}")
        if self.k is not None and not (math.isfinite(self.k) and self.k > 0):
            raise ValueError(f"EDE needs k > 0, got {self.k!r}")

    @classmethod
    def at_progress(cls, progress: float, t_min: float = 0.1, t_max: float = 10.0) -> EDE:
        """Qin et al.'s schedule at training progress p = step/total ∈ [0, 1]."""
        if not 0.0 <= progress <= 1.0:
            raise ValueError(f"progress must lie in [0, 1], got {progress!r}")
        return cls(t=t_min * 10 ** (progress * math.log10(t_max / t_min)))

    @property
    def gain(self) -> float:
        return float(self.k) if self.k is not None else max(1.0 / self.t, 1.0)

    @staticmethod
    def boundary(quantizer: UniformQuantizer) -> float:
        if quantizer.num_levels != 2:
            raise ValueError(
                f"EDE is an estimator for binary quantizers (one boundary point); got {quantizer.num_levels} levels"
            )
        return float(quantizer.boundary_points()[0])

    def derivative(self, w: ArrayLike, quantizer: UniformQuantizer) -> Array:
        w = jnp.asarray(w)
        b = self.boundary(quantizer)
        return self.gain * self.t * (1.0 - jnp.tanh(self.t * (w - b)) ** 2)

    def boundary_integral(self, x: Array) -> Array:
        """∫_0^x ds / Q̂'(b + s) in closed form."""
        return (x / 2 + jnp.sinh(2 * self.t * x) / (4 * self.t)) / (self.gain * self.t)


# ------------------------------------------------------------------------------------------ Custom
@dataclasses.dataclass(frozen=True, eq=False)
class Custom(Estimator):
    """Any user-given derivative Q̂'(w) = ``derivative_fn(w)`` (weight units, jnp-traceable).

    ``cyclical`` states that Q̂' repeats on every finite bin (checked numerically where α needs
    it); ``clips`` states that Q̂' vanishes beyond the representable range (None: detected
    numerically). α and M use adaptive quadrature (:mod:`qatlib.mirror`).

    >>> from qatlib.quantizers import UniformQuantizer
    >>> est = Custom(lambda w: 1.0 + 0.0 * w)
    >>> float(est.derivative(jnp.array(0.3), UniformQuantizer.from_bits(2, 1.0)))
    1.0
    """

    derivative_fn: Callable[[Array], Array]
    cyclical: bool = True
    clips_outside: bool | None = None
    label: str = "custom"
    name: ClassVar[str] = "custom"

    def __post_init__(self) -> None:
        if not callable(self.derivative_fn):
            raise ValueError("Custom needs a callable derivative_fn(w) -> Q̂'(w)")

    @property
    def is_cyclical(self) -> bool:  # type: ignore[override]
        return self.cyclical

    @property
    def clips(self) -> bool:  # type: ignore[override]
        return bool(self.clips_outside)

    @property
    def is_strictly_positive(self) -> bool:
        return self.clips_outside is False

    def derivative(self, w: ArrayLike, quantizer: UniformQuantizer) -> Array:
        w = jnp.asarray(w)
        return jnp.broadcast_to(jnp.asarray(self.derivative_fn(w), dtype=w.dtype if jnp.issubdtype(w.dtype, jnp.floating) else jnp.float32), w.shape)


# -------------------------------------------------------------------------------------- registry
_REGISTRY: dict[str, type[Estimator]] = {
    cls.name: cls for cls in (STE, PWL, MAD, HTGE, DSQ, EDE, Custom)
}


def names() -> list[str]:
    """The estimator names :func:`get` understands."""
    return sorted(_REGISTRY)


def get(name: str, **kwargs: object) -> Estimator:
    """Build an estimator by name (case-insensitive): ``get("htge", sharpness=5.5, scale="range")``."""
    key = str(name).lower()
    if key not in _REGISTRY:
        raise ValueError(f"unknown estimator {name!r}; choose one of {names()}")
    return _REGISTRY[key](**kwargs)  # type: ignore[arg-type]


def mirror_partner(estimator: Estimator, quantizer: UniformQuantizer) -> Estimator:
    """The estimator STE-net uses to mirror Q̂-net (Section 5.1, Appendix G).

    The STE when Q̂' > 0 everywhere; otherwise (Q̂' = 0 beyond the representable range)
    PWL on [M(w_min), M(w_max)], which freezes STE-net's weights exactly where Q̂-net's are frozen.

    >>> from qatlib.quantizers import UniformQuantizer
    >>> q = UniformQuantizer.from_bits(2, 1.0)
    >>> mirror_partner(MAD(), q)
    STE()
    >>> p = mirror_partner(HTGE(5.5, scale="range"), q)
    >>> round(p.lower, 6), round(p.upper, 6)
    (-1.0, 1.0)
    """
    from qatlib import mirror  # local import: mirror depends on this module

    if estimator.is_strictly_positive:
        return STE()
    lo, hi = quantizer.representable_range
    edges = mirror.weight_map(jnp.array([lo, hi], dtype=jnp.float32), quantizer, estimator)
    return PWL(float(edges[0]), float(edges[1]))
