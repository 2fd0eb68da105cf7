"""Weight gradient estimators Q̂: the derivative Q̂'(w) that replaces Q'(w) on the backward pass.

Every estimator is a small frozen dataclass deriving from :class:`Estimator`. It declares
``derivative(w, quantizer)`` and three facts the theory needs (Section 5.1):

* ``is_cyclical`` — Q̂' is identical on every finite bin (Q̂'(w) = Q̂'(w + Δ));
* ``clips`` — Q̂' is zero beyond the representable range (Appendix G's common case);
* ``is_symmetric`` — Q̂'(c + s) = Q̂'(c − s) about every level c.

``is_strictly_positive`` (Assumption 5.1.1 everywhere) follows from them. α, M and M⁻¹ (Eq. 4)
have a general numerical implementation in :mod:`qatlib.mirror`, and L₋, L₊, L′ (Assumptions
5.1.1-5.1.2) one in :mod:`qatlib.theory`; neither asks which estimator it holds. An estimator with
a closed form supplies it through the hooks of :class:`Estimator` (``bin_integral``,
``tail_integral``, ``tail_integral_inverse``, ``binary_integral``, ``weight_map_is_identity``,
``lipschitz_constants``, ``clips_beyond_range``); a hook that returns None means "no closed form
here", and the general code takes over.

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
from typing import ClassVar, Literal, TypeVar

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
    "Scaled",
    "Custom",
    "get",
    "names",
    "register",
]


class Estimator(abc.ABC):
    """Abstract gradient estimator Q̂ (Section 3): a subclass implements :meth:`derivative`.

    Everything else has a general implementation that needs only Q̂': α, M, M⁻¹ (Eq. 4) by
    quadrature and bisection in :mod:`qatlib.mirror`, L₋, L₊, L′ on a float64 grid in
    :mod:`qatlib.theory`. A subclass that can do better overrides a hook (distrax's ``Bijector``
    pattern); the general code calls the hooks and never asks which class it holds. Each
    closed-form hook returns None (for every argument) where it has no closed form for the given
    quantizer, which sends the general code down its numerical path:

    ================================  ==========================================================
    hook                              closed form of
    ================================  ==========================================================
    ``bin_integral(x, q)``            J(x) = ∫_{−Δ/2}^{x} ds/Q̂'(c + s) across one bin (α = Δ/J(Δ/2))
    ``tail_integral(d, q)``           T(d) = ∫_0^d ds/Q̂'(edge ± s) beyond the range (Q̂' > 0 there)
    ``tail_integral_inverse(v, q)``   T⁻¹(v) (M⁻¹ beyond the range; else bisection)
    ``binary_integral(x, q)``         K(x) = ∫_0^x ds/Q̂'(b + s), b the one boundary point of a 2-level q
    ``lipschitz_constants(q)``        (L₋, L₊, L′) over the representable range (Appendix H)
    ================================  ==========================================================

    Two more hooks state facts: ``weight_map_is_identity(q)`` (M = id on q, so α = 1 and M, M⁻¹
    are skipped: the STE, a PWL covering the range) and ``clips_beyond_range(q)`` (Q̂' = 0 beyond
    the range: True / False, or None to have :func:`qatlib.mirror.clips` detect it).

    A new estimator is one subclass: a frozen dataclass with a ``name``, :meth:`derivative` and
    the flags that hold, plus whichever hooks it has closed forms for (see ``tests/test_extension.py``);
    :func:`register` makes :func:`get` build it by name.
    """

    name: ClassVar[str] = "estimator"
    is_cyclical: ClassVar[bool] = True
    clips: ClassVar[bool] = False
    # Q̂'(c + s) = Q̂'(c − s) about every level c: lets M integrate from the nearer boundary point
    # without cancellation (∫_x^{Δ/2} = J(−x)).
    is_symmetric: ClassVar[bool] = False

    @abc.abstractmethod
    def derivative(self, w: ArrayLike, quantizer: UniformQuantizer) -> Array:
        """Q̂'(w) for the weights ``w`` under ``quantizer`` (jnp-traceable)."""

    @property
    def is_strictly_positive(self) -> bool:
        """Q̂'(w) > 0 for every real w (the lower bound of Assumption 5.1.1)."""
        return not self.clips

    # ------------------------------------------------------------------ facts
    def clips_beyond_range(self, quantizer: UniformQuantizer) -> bool | None:
        """Whether Q̂' = 0 beyond the representable range of ``quantizer`` (None: unknown, detect it)."""
        return bool(self.clips)

    def weight_map_is_identity(self, quantizer: UniformQuantizer) -> bool:
        """True where M is the identity on ``quantizer`` (Q̂' = 1 wherever M integrates it)."""
        return False

    # ------------------------------------------------------------ closed forms (None: numerical path)
    def bin_integral(self, x: Array, quantizer: UniformQuantizer) -> Array | None:
        """J(x) = ∫_{−Δ/2}^{x} ds / Q̂'(c + s) for x in [−Δ/2, Δ/2], c a level (cyclical only).

        α = Δ / J(Δ/2) (Eq. 4); M inside the range is built from J. Also used on 2-level
        quantizers, whose two half-bins it covers.
        """
        return None

    def tail_integral(self, d: Array, quantizer: UniformQuantizer) -> Array | None:
        """T(d) = ∫_0^d ds / Q̂'(w_edge ± s), d ≥ 0, beyond the representable range (non-clipping only)."""
        return None

    def tail_integral_inverse(self, v: Array, quantizer: UniformQuantizer) -> Array | None:
        """T⁻¹(v), v ≥ 0: the d with T(d) = v (M⁻¹ beyond the representable range)."""
        return None

    def binary_integral(self, x: Array, quantizer: UniformQuantizer) -> Array | None:
        """K(x) = ∫_0^x ds / Q̂'(b + s) for the single boundary point b of a 2-level quantizer.

        Used where :meth:`bin_integral` has no closed form (a non-cyclical binary estimator).
        """
        return None

    def lipschitz_constants(self, quantizer: UniformQuantizer) -> tuple[float, float, float] | None:
        """(L₋, L₊, L′) of Assumptions 5.1.1-5.1.2 over the representable range, in closed form."""
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

    def weight_map_is_identity(self, quantizer: UniformQuantizer) -> bool:
        return True

    def bin_integral(self, x: Array, quantizer: UniformQuantizer) -> Array:
        return x + quantizer.delta / 2

    def tail_integral(self, d: Array, quantizer: UniformQuantizer) -> Array:
        return d

    def tail_integral_inverse(self, v: Array, quantizer: UniformQuantizer) -> Array:
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

    def weight_map_is_identity(self, quantizer: UniformQuantizer) -> bool:
        """Q̂' = 1 on the whole representable range (and M continues with slope 1 beyond it)."""
        lo, hi = quantizer.representable_range
        p_lo, p_hi = self.bounds(quantizer)
        return p_lo <= lo and p_hi >= hi

    def bin_integral(self, x: Array, quantizer: UniformQuantizer) -> Array:
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

    def bin_integral(self, x: Array, quantizer: UniformQuantizer) -> Array:
        return x + quantizer.delta / 2

    def tail_integral(self, d: Array, quantizer: UniformQuantizer) -> Array:
        lo, hi = quantizer.representable_range
        r = (hi - lo) / 2
        return d + d * d / (2 * r)

    def tail_integral_inverse(self, v: Array, quantizer: UniformQuantizer) -> Array:
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

    def bin_integral(self, x: Array, quantizer: UniformQuantizer) -> Array:
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

    def lipschitz_constants(self, quantizer: UniformQuantizer) -> tuple[float, float, float]:
        """Appendix H's closed form for A·k/cosh²(kx) on [−Δ/2, Δ/2] (either centre: a shift moves none).

        L₊ = A·k at the tanh's centre, L₋ = A·k/cosh²(kΔ/2) half a bin from it, and
        L′ = 2A·k²·tanh(kx*)/cosh²(kx*) with x* = min(Δ/2, artanh(1/√3)/k) = min(Δ/2, ln(2 + √3)/(2k)),
        where |Q̂''| peaks.
        """
        k = self.sharpness_in_weight_units(quantizer)
        a = self.amplitude(quantizer)
        half = quantizer.delta / 2
        l_plus = a * k
        l_minus = a * k / math.cosh(k * half) ** 2
        x_star = min(half, math.log(2 + math.sqrt(3)) / (2 * k))  # where |Q̂''| peaks (within the bin)
        l_prime = a * 2 * k * k * math.tanh(k * x_star) / math.cosh(k * x_star) ** 2
        return (l_minus, l_plus, l_prime)


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

    def binary_integral(self, x: Array, quantizer: UniformQuantizer) -> Array:
        return self.boundary_integral(x)


# ------------------------------------------------------------------------------------------ Scaled
@dataclasses.dataclass(frozen=True)
class Scaled(Estimator):
    """``factor`` times another estimator's Q̂': e.g. the STE with slope α, which is how the
    authors' code applies α (on the estimator's slope rather than on the learning rate).

    The two are the same update for plain SGD; with an L2 term (g + λw) they differ, since only
    the learning rate also scales λw. Not in the registry (it wraps an instance).

    >>> from qatlib.quantizers import UniformQuantizer
    >>> float(Scaled(PWL(), 0.5).derivative(jnp.array(0.2), UniformQuantizer.from_bits(2, 1.0)))
    0.5
    """

    base: Estimator
    factor: float
    name: ClassVar[str] = "scaled"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.factor) and self.factor > 0):
            raise ValueError(f"Scaled needs factor > 0, got {self.factor!r}")

    @property
    def is_cyclical(self) -> bool:  # type: ignore[override]
        return self.base.is_cyclical

    @property
    def clips(self) -> bool:  # type: ignore[override]
        return self.base.clips

    def derivative(self, w: ArrayLike, quantizer: UniformQuantizer) -> Array:
        return self.factor * self.base.derivative(w, quantizer)


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

    def clips_beyond_range(self, quantizer: UniformQuantizer) -> bool | None:
        return None if self.clips_outside is None else bool(self.clips_outside)

    def derivative(self, w: ArrayLike, quantizer: UniformQuantizer) -> Array:
        w = jnp.asarray(w)
        return jnp.broadcast_to(jnp.asarray(self.derivative_fn(w), dtype=w.dtype if jnp.issubdtype(w.dtype, jnp.floating) else jnp.float32), w.shape)


# -------------------------------------------------------------------------------------- registry
_REGISTRY: dict[str, type[Estimator]] = {
    cls.name: cls for cls in (STE, PWL, MAD, HTGE, DSQ, EDE, Custom)
}

_E = TypeVar("_E", bound=type[Estimator])


def register(cls: _E) -> _E:
    """Make :func:`get` build ``cls`` by its ``name`` (usable as a class decorator); returns ``cls``.

    Registering the same class again is a no-op; another class under a taken name is a ValueError.

    >>> @register
    ... @dataclasses.dataclass(frozen=True)
    ... class Double(Estimator):
    ...     name: ClassVar[str] = "double_ste_example"
    ...     def derivative(self, w, quantizer):
    ...         return 2.0 * jnp.ones_like(jnp.asarray(w, jnp.float32))
    >>> get("double_ste_example")
    Double()
    """
    if not (isinstance(cls, type) and issubclass(cls, Estimator)):
        raise ValueError(f"register needs an Estimator subclass, got {cls!r}")
    key = str(cls.name).lower()
    if _REGISTRY.get(key, cls) is not cls:
        raise ValueError(f"estimator name {key!r} is taken by {_REGISTRY[key].__name__}")
    _REGISTRY[key] = cls
    return cls


def names() -> list[str]:
    """The estimator names :func:`get` understands."""
    return sorted(_REGISTRY)


def get(name: str, **kwargs: object) -> Estimator:
    """Build an estimator by name (case-insensitive): ``get("htge", sharpness=5.5, scale="range")``."""
    key = str(name).lower()
    if key not in _REGISTRY:
        raise ValueError(f"unknown estimator {name!r}; choose one of {names()}")
    return _REGISTRY[key](**kwargs)  # type: ignore[arg-type]
