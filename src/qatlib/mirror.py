"""α and the weight map M (Eq. 4), and M⁻¹: the "funhouse mirror" between Q̂-net and STE-net.

    α := Δ / ∫_{w₋}^{w₊} ds / Q̂'(s)          M(w) := w_b + α ∫_{w_b}^{w} ds / Q̂'(s)

for adjacent boundary points w₋, w₊ of a finite bin and any boundary point w_b. M is monotone,
fixes every boundary point (so Q(M(w)) = Q(w)), and M'(w) = α / Q̂'(w) (Eq. 13).

Choices this module makes where the paper leaves room (Appendix G):

* Binary quantizers and 2-level quantizers have no finite bin: α := 1 (Section 5.1).
* Inside the representable range M is evaluated from the nearest boundary point of w's bin, so
  the two half-bins at the ends of the range (parts of the infinite edge bins) use the same formula.
* Beyond the representable range, an estimator that keeps Q̂' > 0 (STE, MAD, EDE) is integrated
  as Eq. 4 says. A clipping estimator (PWL, HTGE, DSQ: Q̂' = 0 there, so M is undefined) gets M
  continued with slope 1 from M(w_min) / M(w_max): Q̂-net's weights are frozen there, and so are
  STE-net's under the Appendix G partner PWL_{M(w_min), M(w_max)} (see :func:`mirror_partner`).
  M stays a monotone bijection and Q(M(w)) = Q(w).
* Q̂' ≤ 0 anywhere inside the representable range makes α and M undefined: a ValueError, never NaN.

Closed forms are used where the estimator supplies them through the hooks of
:class:`qatlib.estimators.Estimator` (``bin_integral`` J, ``tail_integral`` T and its inverse,
``binary_integral`` K, ``weight_map_is_identity``); this module never asks which estimator it holds.
Otherwise ∫ ds/Q̂' over a bin is tabulated once by composite Gauss–Legendre quadrature, refined
until the 8- and 16-point rules agree to a relative 1e-10 (evaluated in float64), and interpolated
by cubic Hermite polynomials with the exact slope 1/Q̂' (relative error ≲ 1e-7 for smooth Q̂').
M⁻¹ uses the closed-form T⁻¹ beyond the range where there is one, and bisection (to float
resolution) otherwise.

>>> from qatlib.quantizers import UniformQuantizer
>>> from qatlib import estimators
>>> q = UniformQuantizer.from_bits(2, 1.5)                  # Δ = 1, boundary points −1, 0, 1
>>> alpha(q, estimators.STE())
1.0
>>> est = estimators.HTGE(2.0)
>>> [round(float(v), 5) for v in weight_map(jnp.array([-1.0, 0.0, 1.0]), q, est)]  # boundaries are fixed
[-1.0, 0.0, 1.0]
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from qatlib.estimators import PWL, STE, Estimator
from qatlib.quantizers import UniformQuantizer, map_quantized

__all__ = [
    "alpha",
    "weight_map",
    "inverse_weight_map",
    "weight_map_derivative",
    "mirror_partner",
    "clips",
    "QUADRATURE_RTOL",
]

QUADRATURE_RTOL = 1e-10
_GRID = 4097  # points per bin for positivity / cyclicity checks
_CHUNK = 1 << 16  # elements per chunk of per-weight quadrature

Method = str  # "auto" | "closed_form" | "quadrature"


# ------------------------------------------------------------------------------- numerical tools
def _gauss_legendre(order: int) -> tuple[np.ndarray, np.ndarray]:
    nodes, weights = np.polynomial.legendre.leggauss(order)
    return nodes, weights


def _eval64(fn: Callable[[Array], Array], x: np.ndarray) -> np.ndarray:
    # Evaluated eagerly even when the caller is being traced (jit, fori_loop): these are constants.
    with jax.ensure_compile_time_eval(), jax.enable_x64(True):
        return np.asarray(fn(jnp.asarray(x, dtype=jnp.float64)), dtype=np.float64)


def _panel_integrals(fn: Callable[[np.ndarray], np.ndarray], edges: np.ndarray, order: int) -> np.ndarray:
    nodes, weights = _gauss_legendre(order)
    a, b = edges[:-1, None], edges[1:, None]
    x = (a + b) / 2 + (b - a) / 2 * nodes[None, :]
    return ((b - a)[:, 0] / 2) * (fn(x.ravel()).reshape(x.shape) @ weights)


def _cumulative_table(fn: Callable[[np.ndarray], np.ndarray], lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Grid x and F(x) = ∫_lo^x fn, refined until the 8- and 16-point rules agree (QUADRATURE_RTOL)."""
    panels = 256
    while True:
        edges = np.linspace(lo, hi, panels + 1)
        coarse = _panel_integrals(fn, edges, 8)
        fine = _panel_integrals(fn, edges, 16)
        total = abs(fine.sum())
        if not np.all(np.isfinite(fine)):
            raise ValueError("∫ ds/Q̂'(s) diverges: Q̂' vanishes inside the representable range")
        if np.max(np.abs(fine - coarse)) <= QUADRATURE_RTOL * max(total, 1e-300) / panels or panels >= 2**15:
            if np.max(np.abs(fine - coarse)) > 1e-6 * max(total, 1e-300):
                raise ValueError("quadrature of ∫ ds/Q̂'(s) did not converge; is Q̂' smooth and positive?")
            return edges, np.concatenate([[0.0], np.cumsum(fine)])
        panels *= 2


def _hermite(x: Array, grid: np.ndarray, values: np.ndarray, slopes: np.ndarray) -> Array:
    """Cubic Hermite interpolation of tabulated (values, slopes) on an even grid."""
    h = float(grid[1] - grid[0])
    n = len(grid) - 1
    t_all = (x - grid[0]) / h
    i = jnp.clip(jnp.floor(t_all), 0, n - 1).astype(jnp.int32)
    dtype = x.dtype
    # One gather of the whole cell (its index i, both values, both slopes): under jit XLA copies the
    # index computation into every gather it fuses, and copies rounded differently (contraction)
    # can disagree at an integer t_all, taking v0 from cell i but t from cell i ± 1, i.e. M off by
    # a whole table cell. With one gather, t is measured from the cell the values came from.
    cells = np.stack([np.arange(n, dtype=np.float64), values[:-1], values[1:], slopes[:-1], slopes[1:]], axis=1)
    cell = jnp.asarray(cells, dtype)[i]
    t = t_all - cell[..., 0]
    v0, v1 = cell[..., 1], cell[..., 2]
    s0, s1 = cell[..., 3] * h, cell[..., 4] * h
    t2, t3 = t * t, t * t * t
    return (2 * t3 - 3 * t2 + 1) * v0 + (t3 - 2 * t2 + t) * s0 + (-2 * t3 + 3 * t2) * v1 + (t3 - t2) * s1


def _is_concrete(x: Any) -> bool:
    return not isinstance(x, jax.core.Tracer)


# ----------------------------------------------------------------------------------- validation
def _reference_centre(quantizer: UniformQuantizer) -> float:
    """The level of a bin that lies inside the representable range (a finite bin if there is one)."""
    n = quantizer.lower + (1 if quantizer.num_finite_bins > 0 else 0)
    return quantizer.offset + n * quantizer.delta


@functools.lru_cache(maxsize=512)
def _checked(quantizer: UniformQuantizer, estimator: Estimator) -> None:
    """Raise a clear ValueError unless Q̂' > 0 on the representable range (and cyclical if needed)."""
    lo, hi = quantizer.representable_range
    grid = np.linspace(lo, hi, max(_GRID, 64 * quantizer.num_levels))
    values = _eval64(lambda w: estimator.derivative(w, quantizer), grid)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{estimator!r}: Q̂' is not finite on the representable range")
    if np.any(values < 0):
        raise ValueError(
            f"{estimator!r}: Q̂' is negative inside the representable range; α and M (Eq. 4) need a "
            "positive estimator (Assumption 5.1.1; Appendix G treats negative estimators separately)"
        )
    if np.any(values == 0):
        raise ValueError(
            f"{estimator!r}: Q̂' is zero inside the representable range, so ∫ ds/Q̂' diverges and α, M "
            "are undefined (Assumption 5.1.1)"
        )
    if quantizer.num_finite_bins > 0 and not estimator.is_cyclical:
        raise ValueError(f"{estimator!r} is not cyclical; α (Eq. 4) is defined for cyclical estimators")
    if quantizer.num_finite_bins > 1 and _hook(estimator, "bin_integral", quantizer) is None:
        x = np.linspace(-quantizer.delta / 2, quantizer.delta / 2, 257)
        centres = quantizer.levels()[1:-1]
        pattern = _eval64(lambda w: estimator.derivative(w, quantizer), centres[:, None] + x[None, :])
        if np.max(np.abs(pattern - pattern[0])) > 1e-6 * np.max(np.abs(pattern)):
            raise ValueError(f"{estimator!r} declares cyclical=True but Q̂' differs between finite bins")


@functools.lru_cache(maxsize=2048)
def _has_closed_form(estimator: Estimator, hook: str, quantizer: UniformQuantizer) -> bool:
    with jax.ensure_compile_time_eval():  # a concrete probe, even while the caller is traced
        return getattr(estimator, hook)(jnp.zeros((), jnp.float32), quantizer) is not None


def _hook(estimator: Estimator, hook: str, quantizer: UniformQuantizer) -> Callable[[Array], Array] | None:
    """The estimator's closed-form hook as x ↦ hook(x, quantizer), or None where it has none."""
    if not _has_closed_form(estimator, hook, quantizer):
        return None
    method = getattr(estimator, hook)
    return lambda x: method(x, quantizer)


@functools.lru_cache(maxsize=512)
def clips(estimator: Estimator, quantizer: UniformQuantizer) -> bool:
    """Whether Q̂' = 0 beyond the representable range (declared by the estimator, or detected)."""
    declared = estimator.clips_beyond_range(quantizer)
    if declared is not None:
        return bool(declared)
    lo, hi = quantizer.representable_range
    span = hi - lo
    probe = np.concatenate([lo - span * np.geomspace(1e-3, 10, 32), hi + span * np.geomspace(1e-3, 10, 32)])
    values = _eval64(lambda w: estimator.derivative(w, quantizer), probe)
    if np.all(values == 0):
        return True
    if np.all(values > 0):
        return False
    raise ValueError(f"{estimator!r}: Q̂' beyond the representable range is neither all zero nor all positive")


# ------------------------------------------------------------------------------------------- α
@functools.lru_cache(maxsize=512)
def _local_table(quantizer: UniformQuantizer, estimator: Estimator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tabulated J(x) = ∫_{−Δ/2}^{x} ds/Q̂'(c₀ + s) with slopes 1/Q̂'(c₀ + x)."""
    c0 = _reference_centre(quantizer)
    half = quantizer.delta / 2

    def reciprocal(x: np.ndarray) -> np.ndarray:
        return 1.0 / _eval64(lambda w: estimator.derivative(w, quantizer), c0 + x)

    grid, values = _cumulative_table(reciprocal, -half, half)
    # The table's edges coincide with boundary points, where clipping estimators are still in range.
    return grid, values, reciprocal(grid)


def _closed_form(
    estimator: Estimator, hook: str, quantizer: UniformQuantizer, method: Method, what: str
) -> Callable[[Array], Array] | None:
    """The estimator's closed-form hook for ``method`` ("auto" or "closed_form"), else None (numerics);
    a ValueError naming ``what`` when ``method="closed_form"`` and the estimator has none."""
    if method == "quadrature":
        return None
    fn = _hook(estimator, hook, quantizer)
    if fn is None and method == "closed_form":
        raise ValueError(f"{estimator!r} has no closed form for {what}")
    return fn


def _bin_integral(quantizer: UniformQuantizer, estimator: Estimator, method: Method) -> float:
    J = _closed_form(estimator, "bin_integral", quantizer, method, "∫ ds/Q̂'")
    if J is not None:
        with jax.ensure_compile_time_eval(), jax.enable_x64(True):
            return float(J(jnp.asarray(quantizer.delta / 2, jnp.float64)))
    return float(_local_table(quantizer, estimator)[1][-1])


@functools.lru_cache(maxsize=512)
def _alpha_cached(quantizer: UniformQuantizer, estimator: Estimator, method: Method) -> float:
    _checked(quantizer, estimator)
    if quantizer.num_finite_bins == 0:
        return 1.0
    return quantizer.delta / _bin_integral(quantizer, estimator, method)


def alpha(quantizer: UniformQuantizer, estimator: Estimator, *, method: Method = "auto") -> float:
    """α := Δ / ∫_{w₋}^{w₊} ds/Q̂'(s) over a finite bin (Eq. 4); α := 1 without finite bins.

    ``method``: "auto" (closed form if the estimator has one, else quadrature), "closed_form" or
    "quadrature". For the bin-normalised HTGE/DSQ shapes α ≤ 1 (Jensen), with equality for the STE.

    >>> from qatlib.quantizers import UniformQuantizer
    >>> from qatlib import estimators
    >>> q = UniformQuantizer.from_bits(2, 1.5)
    >>> round(alpha(q, estimators.HTGE(2.0)), 6) == round(alpha(q, estimators.HTGE(2.0), method="quadrature"), 6)
    True
    """
    _check_method(method)
    return _alpha_cached(quantizer, estimator, method)


def _check_method(method: Method) -> None:
    if method not in ("auto", "closed_form", "quadrature"):
        raise ValueError(f"method must be 'auto', 'closed_form' or 'quadrature', got {method!r}")


# ------------------------------------------------------------------------------------------- M
def _local_integral_fn(quantizer: UniformQuantizer, estimator: Estimator, method: Method) -> Callable[[Array], Array]:
    J = _closed_form(estimator, "bin_integral", quantizer, method, "M")
    if J is not None:
        return J
    grid, values, slopes = _local_table(quantizer, estimator)
    return lambda x: _hermite(x, grid, values, slopes)


def _tail_fn(quantizer: UniformQuantizer, estimator: Estimator, method: Method, side: int) -> Callable[[Array], Array]:
    """T(d) = ∫_0^d ds/Q̂'(edge + side·s) beyond the range (slope 1 for clipping estimators)."""
    if clips(estimator, quantizer):
        return lambda d: d
    T = _closed_form(estimator, "tail_integral", quantizer, method, "M beyond the representable range")
    if T is not None:
        return T
    lo, hi = quantizer.representable_range
    edge = hi if side > 0 else lo
    return lambda d: _integrate_from(lambda s: 1.0 / estimator.derivative(edge + side * s, quantizer), d)


def _integrate_from(integrand: Callable[[Array], Array], d: Array, panels: int = 16, order: int = 16) -> Array:
    """∫_0^d integrand, elementwise in d ≥ 0, by composite Gauss–Legendre (panels × order nodes)."""
    nodes, weights = _gauss_legendre(order)
    u = (np.arange(panels)[:, None] + (nodes[None, :] + 1) / 2) / panels  # in (0, 1)
    wts = np.broadcast_to(weights[None, :] / 2 / panels, u.shape).ravel()
    d = jnp.asarray(d)
    nodes_u, node_w = jnp.asarray(u.ravel(), d.dtype), jnp.asarray(wts, d.dtype)

    def one(x: Array) -> Array:
        return x * jnp.sum(integrand(x[..., None] * nodes_u) * node_w, axis=-1)

    if d.size <= _CHUNK:
        return one(d)
    # Bound memory to _CHUNK × nodes: map over chunks of the flattened input.
    return jax.lax.map(one, d.ravel(), batch_size=_CHUNK).reshape(d.shape)


def _binary_integral_fn(quantizer: UniformQuantizer, estimator: Estimator, method: Method) -> Callable[[Array], Array]:
    """K(x) = ∫_0^x ds/Q̂'(b + s) for the single boundary point b of a 2-level quantizer."""
    b = float(quantizer.boundary_points()[0])
    K = _closed_form(estimator, "binary_integral", quantizer, method, "M on a binary quantizer")
    if K is not None:
        return K

    def integral(x: Array) -> Array:
        sign = jnp.where(x >= 0, 1.0, -1.0).astype(x.dtype)
        return sign * _integrate_from(lambda s: 1.0 / estimator.derivative(b + sign[..., None] * s, quantizer), jnp.abs(x))

    return integral


def _weight_map_array(w: Array, quantizer: UniformQuantizer, estimator: Estimator, method: Method) -> Array:
    if not jnp.issubdtype(w.dtype, jnp.floating):
        w = w.astype(jnp.float32)
    a = alpha(quantizer, estimator, method=method)  # also checks Q̂' > 0 on the range (raises)
    lo, hi = quantizer.representable_range
    if estimator.weight_map_is_identity(quantizer):
        return w

    if quantizer.num_finite_bins == 0 and not _has_local_closed_form(estimator, quantizer, method):
        b = float(quantizer.boundary_points()[0])
        inside = b + a * _binary_integral_fn(quantizer, estimator, method)(jnp.clip(w, lo, hi) - b)
        m_lo = b + a * _binary_integral_fn(quantizer, estimator, method)(jnp.asarray(lo - b, w.dtype))
        m_hi = b + a * _binary_integral_fn(quantizer, estimator, method)(jnp.asarray(hi - b, w.dtype))
    else:
        J = _local_integral_fn(quantizer, estimator, method)
        half = quantizer.delta / 2
        j_full = half * 2 / a if quantizer.num_finite_bins > 0 else None

        def m_inside(v: Array) -> Array:
            n = quantizer.level_index(v)
            c = quantizer.offset + n * quantizer.delta
            x = jnp.clip(v - c, -half, half)
            jx = J(x)
            if estimator.is_symmetric:
                to_upper = J(-x)  # ∫_x^{Δ/2} by symmetry, free of cancellation
            else:
                to_upper = (J(jnp.full_like(x, half)) if j_full is None else j_full) - jx
            use_lower = ((x <= 0) & (n > quantizer.lower)) | (n >= quantizer.upper)
            return jnp.where(use_lower, c - half + a * jx, c + half - a * to_upper)

        inside = m_inside(jnp.clip(w, lo, hi))
        m_lo = m_inside(jnp.asarray(lo, w.dtype))
        m_hi = m_inside(jnp.asarray(hi, w.dtype))

    # Slope 1 beyond the range for clipping estimators (module notes); Eq. 4's α ∫ 1/Q̂' otherwise.
    tail_scale = 1.0 if clips(estimator, quantizer) else a
    upper_tail = m_hi + tail_scale * _tail_fn(quantizer, estimator, method, +1)(jnp.maximum(w - hi, 0.0))
    lower_tail = m_lo - tail_scale * _tail_fn(quantizer, estimator, method, -1)(jnp.maximum(lo - w, 0.0))
    out = jnp.where(w > hi, upper_tail, jnp.where(w < lo, lower_tail, inside))
    return out.astype(w.dtype)


def _has_local_closed_form(estimator: Estimator, quantizer: UniformQuantizer, method: Method) -> bool:
    return method != "quadrature" and _hook(estimator, "bin_integral", quantizer) is not None


def _check_finite(result: Any, what: str) -> Any:
    for leaf in jax.tree.leaves(result):
        if _is_concrete(leaf) and not bool(jnp.all(jnp.isfinite(leaf))):
            raise ValueError(f"{what} overflowed to a non-finite value (weights far beyond the range?)")
    return result


def weight_map(w: Any, quantizer: Any, estimator: Estimator, *, method: Method = "auto") -> Any:
    """M(w) = w_b + α ∫_{w_b}^{w} ds/Q̂'(s) (Eq. 4), elementwise; see the module notes for the edges.

    ``w`` is an array, or a pytree of arrays (a Flax params tree) with ``quantizer`` either one
    quantizer for every leaf or a tree of the same structure holding a quantizer per leaf — or
    ``None`` for a subtree to leave unchanged (biases, say).

    >>> from qatlib.quantizers import UniformQuantizer
    >>> from qatlib import estimators
    >>> q = UniformQuantizer.from_bits(2, 1.0)
    >>> params = {"kernel": jnp.array([0.1, -0.5]), "bias": jnp.array([3.0])}
    >>> out = weight_map(params, {"kernel": q, "bias": None}, estimators.STE())
    >>> [float(v) for v in out["kernel"]], [float(v) for v in out["bias"]]
    ([0.10000000149011612, -0.5], [3.0])
    """
    _check_method(method)
    result = map_quantized(lambda q, leaf: _weight_map_array(jnp.asarray(leaf), q, estimator, method), quantizer, w)
    return _check_finite(result, "M(w)")


def weight_map_derivative(w: ArrayLike, quantizer: UniformQuantizer, estimator: Estimator) -> Array:
    """M'(w) = α / Q̂'(w) (Eq. 13); +inf where Q̂' = 0."""
    w = jnp.asarray(w)
    return alpha(quantizer, estimator) / estimator.derivative(w, quantizer)


# ------------------------------------------------------------------------------------------ M⁻¹
def _inverse_array(v: Array, quantizer: UniformQuantizer, estimator: Estimator, method: Method) -> Array:
    if not jnp.issubdtype(v.dtype, jnp.floating):
        v = v.astype(jnp.float32)
    a = alpha(quantizer, estimator, method=method)
    lo, hi = quantizer.representable_range
    if estimator.weight_map_is_identity(quantizer):
        return v
    forward = functools.partial(_weight_map_array, quantizer=quantizer, estimator=estimator, method=method)
    edges = forward(jnp.asarray([lo, hi], v.dtype))
    m_lo, m_hi = edges[0], edges[1]

    def tail_inverse(excess: Array, side: int) -> Array:
        if clips(estimator, quantizer):
            return excess
        T_inverse = _hook(estimator, "tail_integral_inverse", quantizer) if method != "quadrature" else None
        if T_inverse is not None:
            return T_inverse(excess / a)
        # Bracket by doubling, then bisect: T is increasing with T(0) = 0.
        tail = _tail_fn(quantizer, estimator, method, side)
        target = excess / a
        hi_d = jnp.full_like(target, (hi - lo) / 2)
        for _ in range(60):
            hi_d = jnp.where(tail(hi_d) < target, hi_d * 2, hi_d)
        return _bisect(lambda d: tail(d) - target, jnp.zeros_like(target), hi_d)

    # Inside: M maps each bin (∩ range) onto itself; bisect for the preimage within v's bin.
    w_minus, w_plus = quantizer.boundaries(jnp.clip(v, m_lo, m_hi))
    left = jnp.maximum(w_minus, lo).astype(v.dtype)
    right = jnp.minimum(w_plus, hi).astype(v.dtype)
    inside = _bisect(lambda x: forward(x) - v, left, right)
    upper = hi + tail_inverse(jnp.maximum(v - m_hi, 0.0), +1)
    lower = lo - tail_inverse(jnp.maximum(m_lo - v, 0.0), -1)
    return jnp.where(v > m_hi, upper, jnp.where(v < m_lo, lower, inside)).astype(v.dtype)


def _bisect(fn: Callable[[Array], Array], left: Array, right: Array, iterations: int = 64) -> Array:
    """Root of an increasing fn on [left, right], elementwise, to float resolution.

    Concrete inputs are bisected eagerly, step by step; traced inputs (under ``jax.jit``) in a
    ``lax.fori_loop``. (A wrong root once seen in the loop on the tabulated-quadrature path came
    from :func:`_hermite`'s cell index, now gathered once; the tests run M⁻¹ with and without jit.)
    """

    def step(bounds: tuple[Array, Array]) -> tuple[Array, Array]:
        a, b = bounds
        mid = (a + b) / 2
        below = fn(mid) < 0
        return jnp.where(below, mid, a), jnp.where(below, b, mid)

    if _is_concrete(left) and _is_concrete(right):
        bounds = (left, right)
        for _ in range(iterations):
            bounds = step(bounds)
        a, b = bounds
    else:
        a, b = jax.lax.fori_loop(0, iterations, lambda _, bounds: step(bounds), (left, right))
    return (a + b) / 2


def inverse_weight_map(v: Any, quantizer: Any, estimator: Estimator, *, method: Method = "auto") -> Any:
    """M⁻¹(v): the Q̂-net weight whose mirror image is the STE-net weight v (same tree rules as M).

    >>> from qatlib.quantizers import UniformQuantizer
    >>> from qatlib import estimators
    >>> q = UniformQuantizer.from_bits(2, 1.0)
    >>> est = estimators.HTGE(5.5, scale="range", normalize=True)
    >>> w = jnp.array([-0.9, -0.2, 0.05, 0.7])
    >>> bool(jnp.allclose(inverse_weight_map(weight_map(w, q, est), q, est), w, atol=1e-6))
    True
    """
    _check_method(method)
    result = map_quantized(lambda q, leaf: _inverse_array(jnp.asarray(leaf), q, estimator, method), quantizer, v)
    return _check_finite(result, "M⁻¹(v)")


# ------------------------------------------------------------------------------ the STE-net partner
def mirror_partner(estimator: Estimator, quantizer: UniformQuantizer) -> Estimator:
    """The estimator STE-net uses to mirror Q̂-net (Section 5.1, Appendix G).

    The STE when Q̂' > 0 beyond the representable range; otherwise (Q̂' = 0 there)
    PWL on [M(w_min), M(w_max)], which freezes STE-net's weights exactly where Q̂-net's are frozen
    (M continues with slope 1 beyond the range; see the module notes). The question is the one M
    itself asks, :func:`clips`, so an estimator declared by flags and the same Q̂' given as a
    :class:`~qatlib.estimators.Custom` (whose tails are probed numerically) get the same partner.

    >>> from qatlib.quantizers import UniformQuantizer
    >>> from qatlib import estimators
    >>> q = UniformQuantizer.from_bits(2, 1.0)
    >>> mirror_partner(estimators.MAD(), q)
    STE()
    >>> p = mirror_partner(estimators.HTGE(5.5, scale="range"), q)
    >>> round(p.lower, 6), round(p.upper, 6)
    (-1.0, 1.0)
    """
    if not clips(estimator, quantizer):
        return STE()
    lo, hi = quantizer.representable_range
    edges = weight_map(jnp.array([lo, hi], dtype=jnp.float32), quantizer, estimator)
    return PWL(float(edges[0]), float(edges[1]))
