"""What the twin runs say: a run's headline numbers (:func:`summarize`), Ē and the bound terms
over η (:func:`eta_sweep`, :func:`fit_loglog_slope`), and when each net's weights cross a
quantization threshold (:func:`boundary_crossings`, :func:`mirror_candidate`, :func:`crossing_lags`).
The runs themselves are :mod:`qatlib.experiments.twins.simulator`'s."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from qatlib import theory
from qatlib.experiments.comparison import q_hat
from qatlib.experiments.twins.simulator import PairConfig, PairTrace, Problem, make_quantizer, run_pair, ste_side
from qatlib.quantizers import UniformQuantizer

__all__ = [
    "PairSummary",
    "summarize",
    "Sweep",
    "eta_sweep",
    "fit_loglog_slope",
    "boundary_crossings",
    "mirror_candidate",
    "CrossingLags",
    "crossing_lags",
]


@dataclasses.dataclass(frozen=True)
class PairSummary:
    """Headline numbers of one run (python floats / ints)."""

    optimizer: str
    eta: float
    steps: int
    alpha: float
    L_minus: float
    L_plus: float
    L_prime: float
    E_bar: float
    agreement: float
    checked: int
    holds: float
    holds_printed: float
    holds_eq6: float
    holds_eq6_printed: float
    outside: int
    holds_outside: float
    crossings: int
    crossings_same_step: int
    mean_grad_err: float
    mean_conv: float
    mean_c13: float
    mean_step: float



def _ratio(num: np.ndarray, den: np.ndarray) -> float:
    total = int(np.sum(den))
    return float(np.sum(num) / total) if total else float("nan")


def summarize(trace: PairTrace, cfg: PairConfig, problem: Problem) -> PairSummary:
    """Headline numbers: Ē (Section 6.2: mean E⁽ᵀ⁾ over weights / range length), agreement, and the
    share of checked (weight, step) pairs where each form of the bound holds."""
    q = make_quantizer(cfg.bits, problem.fan_in)
    est = q_hat(cfg.sharpness, normalize=cfg.normalize)
    consts = theory.lipschitz_constants(q, est)
    lo, hi = q.representable_range
    return PairSummary(
        optimizer=cfg.optimizer,
        eta=float(cfg.eta),
        steps=int(cfg.steps),
        alpha=ste_side(cfg, q)[1],
        L_minus=float(consts.L_minus),
        L_plus=float(consts.L_plus),
        L_prime=float(consts.L_prime),
        E_bar=float(np.mean(trace.final_E) / (hi - lo)),
        agreement=float(trace.agreement[-1]),
        checked=int(np.sum(trace.n_checked)),
        holds=_ratio(trace.n_hold, trace.n_checked),
        holds_printed=_ratio(trace.n_hold_printed, trace.n_checked),
        holds_eq6=_ratio(trace.n_hold_eq6, trace.n_checked) if cfg.optimizer == "sgd" else float("nan"),
        holds_eq6_printed=_ratio(trace.n_hold_eq6_printed, trace.n_checked) if cfg.optimizer == "sgd" else float("nan"),
        outside=int(np.sum(trace.n_outside)),
        holds_outside=_ratio(trace.n_hold_outside, trace.n_outside),
        crossings=int(np.sum(trace.n_cross_q)),
        crossings_same_step=int(np.sum(trace.n_cross_same)),
        mean_grad_err=float(np.mean(trace.grad_err)),
        mean_conv=float(np.mean(trace.c13 if cfg.optimizer == "adam" else trace.conv)),
        mean_c13=float(np.mean(trace.c13)),
        mean_step=float(np.mean(trace.step)),
    )


@dataclasses.dataclass(frozen=True)
class Sweep:
    """Ē and the mean per-step terms as functions of η (one :class:`PairSummary` per η)."""

    etas: np.ndarray
    summaries: tuple[PairSummary, ...]

    def column(self, measure: Callable[[PairSummary], float]) -> np.ndarray:
        """``measure`` of each η's summary, in η order (``sweep.column(lambda s: s.E_bar)``)."""
        return np.array([measure(s) for s in self.summaries], dtype=np.float64)


def eta_sweep(cfg: PairConfig, etas: Sequence[float], problem: Problem) -> Sweep:
    """Run :func:`run_pair` for each η with everything else fixed (one compilation serves all)."""
    etas = np.asarray(sorted(float(e) for e in etas), dtype=np.float64)
    if etas.size < 2 or np.any(etas <= 0):
        raise ValueError(f"need at least two positive learning rates, got {etas.tolist()}")
    summaries = tuple(
        summarize(run_pair(dataclasses.replace(cfg, eta=float(eta)), problem), dataclasses.replace(cfg, eta=float(eta)), problem)
        for eta in etas
    )
    return Sweep(etas=etas, summaries=summaries)


def fit_loglog_slope(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Least-squares slope and intercept of log10 y against log10 x (points with y > 0 only).

    >>> slope, _ = fit_loglog_slope([1e-3, 1e-2, 1e-1], [1e-6, 1e-4, 1e-2])
    >>> round(slope, 6)
    2.0
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if keep.sum() < 2:
        raise ValueError("need at least two positive points to fit a log-log slope")
    slope, intercept = np.polyfit(np.log10(x[keep]), np.log10(y[keep]), 1)
    return float(slope), float(intercept)


def boundary_crossings(weights: np.ndarray, quantizer: UniformQuantizer) -> np.ndarray:
    """Steps t at which Q(w⁽ᵗ⁺¹⁾) ≠ Q(w⁽ᵗ⁾) for a 1-D weight trajectory ``weights`` (length T+1).

    >>> q = UniformQuantizer.from_bits(2, 1.5)   # boundaries at -1, 0, 1
    >>> boundary_crossings(np.array([0.2, 0.1, -0.1, -0.2, -1.2]), q).tolist()
    [1, 3]
    """
    w = np.asarray(weights, np.float64)
    levels = np.asarray(quantizer(jnp.asarray(w)))
    return np.nonzero(levels[1:] != levels[:-1])[0]


def mirror_candidate(trace: PairTrace) -> int:
    """Flat index of the weight that best shows the mirror: among weights whose Q̂-net copy changed
    bins and whose STE-net copy made every one of those changes at the same step, the one that
    travelled farthest (|w_Q̂⁽ᵀ⁾ − w_Q̂⁽⁰⁾|); if no weight changed bins, the farthest traveller.

    The choice looks only at Q̂-net's travel and at crossings, both recorded for every weight, so
    it is not a search for the weight that happens to fit the story best in E.
    """
    travel = np.abs(np.asarray(trace.w_q_end) - np.asarray(trace.w_q_start))
    crossed = np.asarray(trace.weight_crossings)
    synced = (crossed >= 1) & (np.asarray(trace.weight_crossings_same) == crossed)
    pool = np.nonzero(synced)[0] if synced.any() else np.arange(travel.size)
    return int(pool[np.argmax(travel[pool])])


class CrossingLags(NamedTuple):
    """How far apart in steps the two twins first changed bins (Section 4: "at the same time")."""

    lags: np.ndarray  # first_crossing_s − first_crossing_q, for weights where both changed bins
    only_q: int  # weights whose Q̂-net copy changed bins but whose STE-net twin did not (yet)
    only_s: int  # the reverse


def crossing_lags(trace: PairTrace) -> CrossingLags:
    """Lag, in steps, between the first bin change of each Q̂-net weight and of its STE-net twin.

    >>> import numpy as np
    >>> fake = PairTrace(*([np.zeros(1)] * len(PairTrace._fields)))._replace(
    ...     first_crossing_q=np.array([3, 5, -1, 7]), first_crossing_s=np.array([3, 6, 4, -1]))
    >>> out = crossing_lags(fake)
    >>> out.lags.tolist(), out.only_q, out.only_s
    ([0, 1], 1, 1)
    """
    first_q = np.asarray(trace.first_crossing_q)
    first_s = np.asarray(trace.first_crossing_s)
    both = (first_q >= 0) & (first_s >= 0)
    return CrossingLags(
        lags=(first_s - first_q)[both],
        only_q=int(np.sum((first_q >= 0) & (first_s < 0))),
        only_s=int(np.sum((first_q < 0) & (first_s >= 0))),
    )
