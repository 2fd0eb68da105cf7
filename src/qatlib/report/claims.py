"""The paper's claims (Section 6.2), decided over seeds: A (Q̂-net ≈ STE-net), B (M matters), accuracy.

A results artefact is a list of *records* (:class:`qatlib.experiments.records.RunRecord`), one per
seed x optimizer (x run length): the seeded presets write them (``{"runs": [...]}``), and a
single-run artefact of the older shape (one dict per optimizer) reads as one record per optimizer
(:func:`qatlib.report.artefacts.run_records`). For each claim, each seed gives one paired value,
since all nets of a seed share its initialisation and batches:

* **A** -- ``Ē(baseline) / Ē(lr_tweak)``: Q̂ → STE is "a small change", as small as a 1% learning-
  rate change, when the ratio is at most :data:`CLAIM_FACTOR`;
* **B** (SGD) -- ``Ē(unadjusted) / Ē(baseline)``: without M and α the pair drifts at least
  :data:`CLAIM_FACTOR` times further;
* **accuracy** -- ``val_acc(Q̂-net) - val_acc(STE-net)`` within ±:data:`ACCURACY_TOLERANCE`.

A ratio's interval is a t-interval on the log of the per-seed ratios (its centre is the geometric
mean), a difference's a t-interval on the per-seed differences, both at :data:`CONFIDENCE`. The
verdict is "holds" when the whole interval meets the criterion, "fails" when none of it does,
"undecided" when it straddles the threshold (always, with one seed: no interval), and "not trained"
when a net of a pair did not train (:func:`qatlib.metrics.trained`) on some seed.

Yardsticks beside each ratio (where the preset trained them): the pair's absolute Ē and
agreement, the rounding floor (Ē between Q̂-net and its twin that differs only in float32
rounding), and the *equivalent lr change*: the learning-rate change whose Q̂-net pair would drift as
far as the baseline pair, from a power law ``Ē = a·x^b`` fitted per seed to the lr-tweak pairs at
x = 0.1%, 1% and 10% (:func:`equivalent_lr_change`).

>>> records = [RunRecord.from_json({
...     "seed": s, "spec": {"optimizer": "sgd", "steps": 10},
...     "pairs": {"baseline": {"E_bar": b}, "lr_tweak": {"E_bar": 0.02}, "unadjusted": {"E_bar": 0.1}},
...     "nets": {"q_net": {"val_acc": 0.97}, "ste_net": {"val_acc": 0.969}}}) for s, b in enumerate((0.01, 0.012, 0.011))]
>>> a = decide(records, "sgd", "A")
>>> a.verdict, round(a.value.mean, 3), a.value.n
('holds', 0.548, 3)
>>> decide(records[:1], "sgd", "A").verdict      # one seed: no interval
'undecided'
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from qatlib.experiments.records import RunRecord

__all__ = [
    "CLAIM_FACTOR",
    "ACCURACY_TOLERANCE",
    "CONFIDENCE",
    "CLAIMS",
    "YARDSTICK_TWEAKS",
    "Interval",
    "Decision",
    "select",
    "ratio_interval",
    "difference_interval",
    "equivalent_lr_change",
    "decide",
    "decide_all",
    "claims",
]

#: A baseline E_bar within this factor of the lr-tweak one counts as "comparable" (claim A);
#: an unadjusted E_bar at least this factor above the baseline counts as "clearly worse" (claim B).
CLAIM_FACTOR = 2.0
#: |val acc (Q-hat-net) - val acc (STE-net)| below this counts as "a fraction of a percent".
ACCURACY_TOLERANCE = 0.005
#: The confidence of every interval over seeds.
CONFIDENCE = 0.95
#: The claims per optimizer family, in the order the book lists them.
CLAIMS: tuple[tuple[str, str], ...] = (("sgd", "A"), ("adam", "A"), ("sgd", "B"), ("sgd", "accuracy"), ("adam", "accuracy"))
#: The lr-tweak pairs of the yardstick: experiment name -> the relative learning-rate change.
YARDSTICK_TWEAKS: dict[str, float] = {"lr_tweak_0.1pct": 0.001, "lr_tweak": 0.01, "lr_tweak_10pct": 0.1}


@dataclasses.dataclass(frozen=True)
class Interval:
    """A statistic over seeds: its centre (geometric mean for ratios), the interval at
    :data:`CONFIDENCE` (``nan`` with one seed) and the per-seed values."""

    mean: float
    low: float
    high: float
    values: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.values)

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclasses.dataclass(frozen=True)
class Decision:
    """One claim for one optimizer: the per-seed statistic's interval and the verdict."""

    optimizer: str
    claim: str
    value: Interval | None  # None when no seed measured it
    verdict: str  # "holds" | "fails" | "undecided" | "not trained" | "not measured"
    untrained_seeds: tuple[int, ...] = ()


def _t(n: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1))


def _interval(values: Sequence[float], *, log: bool) -> Interval:
    data = np.log(np.asarray(values, np.float64)) if log else np.asarray(values, np.float64)
    centre = float(data.mean())
    if len(data) > 1:
        half = _t(len(data)) * float(data.std(ddof=1)) / math.sqrt(len(data))
        low, high = centre - half, centre + half
    else:
        low = high = float("nan")
    back = np.exp if log else (lambda x: x)
    return Interval(float(back(centre)), float(back(low)), float(back(high)), tuple(float(v) for v in values))


def ratio_interval(values: Sequence[float]) -> Interval:
    """The geometric mean of positive per-seed ratios with its t-interval on the log scale.

    >>> i = ratio_interval([1.0, 2.0, 4.0]); round(i.mean, 3), round(i.low, 3), round(i.high, 2)
    (2.0, 0.357, 11.19)
    """
    return _interval(values, log=True)


def difference_interval(values: Sequence[float]) -> Interval:
    """The mean of per-seed differences with its t-interval.

    >>> i = difference_interval([0.001, 0.002, 0.003]); round(i.mean, 4), round(i.low, 4), round(i.high, 4)
    (0.002, -0.0005, 0.0045)
    """
    return _interval(values, log=False)


def select(records: Iterable[RunRecord], optimizer: str, steps: int | None = None) -> list[RunRecord]:
    """The records of one optimizer (and, if given, one run length), in seed order."""
    chosen = [r for r in records if r.optimizer == optimizer and (steps is None or r.steps == steps)]
    return sorted(chosen, key=lambda r: r.seed)


def _trained(record: RunRecord, role: str) -> bool:
    """Whether a net of the record trained (a net the record does not describe counts as trained)."""
    return record.nets[role].has_trained() if role in record.nets else True


_ROLES = {"baseline": ("q_net", "ste_net"), "lr_tweak": ("q_net", "q_net_lr_tweak"), "unadjusted": ("q_net", "ste_net_unadjusted")}


def _pair_trained(record: RunRecord, experiment: str) -> bool:
    pair = record.pair(experiment)
    if pair.trained is not None:
        return pair.trained
    return all(_trained(record, role) for role in _ROLES.get(experiment, ("q_net",)))


def equivalent_lr_change(record: RunRecord, experiment: str = "baseline") -> float | None:
    """The relative learning-rate change x whose lr-tweak pair would drift as far as ``experiment``:
    ``Ē(tweak x) = a·x^b`` fitted by least squares in log-log to the record's lr-tweak pairs
    (:data:`YARDSTICK_TWEAKS`), solved for Ē(experiment). None without at least two tweaks.

    >>> record = RunRecord.from_json({"seed": 0, "spec": {"optimizer": "sgd"}, "nets": {}, "pairs": {
    ...     "baseline": {"E_bar": 0.004}, "lr_tweak_0.1pct": {"E_bar": 0.001}, "lr_tweak": {"E_bar": 0.002},
    ...     "lr_tweak_10pct": {"E_bar": 0.004}}})
    >>> round(equivalent_lr_change(record), 4)   # Ē doubles per decade: 0.004 is a 10% change
    0.1
    """
    points = [(x, record.pairs[name].E_bar) for name, x in YARDSTICK_TWEAKS.items() if name in record.pairs]
    points = [(x, y) for x, y in points if y is not None and y > 0]
    target = record.pair(experiment).E_bar
    if len(points) < 2 or not target or target <= 0:
        return None
    slope, intercept = np.polyfit(np.log([x for x, _ in points]), np.log([y for _, y in points]), 1)
    if slope <= 0:
        return None
    return float(np.exp((math.log(target) - intercept) / slope))


def _value(record: RunRecord, claim: str) -> float | None:
    pairs = record.pairs
    if claim == "A":
        base, tweak = pairs["baseline"].E_bar, pairs["lr_tweak"].E_bar
        return base / tweak if base is not None and tweak else None
    if claim == "B":
        if "unadjusted" not in pairs:
            return None
        base, unadjusted = pairs["baseline"].E_bar, pairs["unadjusted"].E_bar
        return unadjusted / base if unadjusted is not None and base else None
    q, ste = record.net("q_net").val_acc, record.net("ste_net").val_acc
    return q - ste if q is not None and ste is not None else None


def _experiments(claim: str) -> tuple[str, ...]:
    return {"A": ("baseline", "lr_tweak"), "B": ("baseline", "unadjusted"), "accuracy": ("baseline",)}[claim]


def decide(records: Iterable[RunRecord], optimizer: str, claim: str, steps: int | None = None) -> Decision:
    """The verdict on ``claim`` ("A", "B" or "accuracy") for ``optimizer`` over the seeds of ``records``."""
    chosen = select(records, optimizer, steps)
    if claim == "B" and not any("unadjusted" in r.pairs for r in chosen):
        chosen = []
    if not chosen:
        return Decision(optimizer, claim, None, "not measured")
    untrained = tuple(r.seed for r in chosen if not all(_pair_trained(r, e) for e in _experiments(claim)))
    values = [v for r in chosen if r.seed not in untrained and (v := _value(r, claim)) is not None]
    if untrained:
        value = (difference_interval(values) if claim == "accuracy" else ratio_interval(values)) if values else None
        return Decision(optimizer, claim, value, "not trained", untrained)
    value = difference_interval(values) if claim == "accuracy" else ratio_interval(values)
    return Decision(optimizer, claim, value, _verdict(claim, value))


def _verdict(claim: str, value: Interval) -> str:
    if value.n < 2:
        return "undecided"
    if claim == "A":
        holds, fails = value.high <= CLAIM_FACTOR, value.low > CLAIM_FACTOR
    elif claim == "B":
        holds, fails = value.low >= CLAIM_FACTOR, value.high < CLAIM_FACTOR
    else:
        holds = -ACCURACY_TOLERANCE <= value.low and value.high <= ACCURACY_TOLERANCE
        fails = value.low > ACCURACY_TOLERANCE or value.high < -ACCURACY_TOLERANCE
    return "holds" if holds else "fails" if fails else "undecided"


def decide_all(records: Iterable[RunRecord], steps: int | None = None) -> list[Decision]:
    """Every claim of :data:`CLAIMS` (those whose optimizer the records have)."""
    records = list(records)
    present = {r.optimizer for r in records}
    return [decide(records, optimizer, claim, steps) for optimizer, claim in CLAIMS if optimizer in present]


def claims(artefact: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The claims of one run (the first seed of each optimizer), in the shape the older chapters read:
    ``{optimizer: {"A": bool, "A_ratio", "B", "B_ratio", "accuracy", "val_acc_difference"}}``.

    >>> stored = {
    ...     "sgd": {"baseline": {"E_bar": 0.01}, "lr_tweak": {"E_bar": 0.02}, "unadjusted": {"E_bar": 0.05}},
    ...     "accuracy": {"sgd": {"q_net": {"val_acc": 0.97}, "ste_net": {"val_acc": 0.969}}},
    ... }
    >>> v = claims(stored)["sgd"]
    >>> v["A"], v["A_ratio"], v["B"], v["B_ratio"], v["accuracy"]
    (True, 0.5, True, 5.0, True)
    """
    verdicts: dict[str, dict[str, Any]] = {}
    from qatlib.report.artefacts import run_records

    records = run_records(artefact)
    for optimizer in ("sgd", "adam"):
        chosen = select(records, optimizer)
        if not chosen:
            continue
        record = chosen[0]
        ratio_a = _value(record, "A")
        entry: dict[str, Any] = {"A": ratio_a is not None and ratio_a <= CLAIM_FACTOR, "A_ratio": ratio_a if ratio_a is not None else float("inf")}
        ratio_b = _value(record, "B")
        if "unadjusted" in record.pairs:
            entry["B"] = ratio_b is not None and ratio_b >= CLAIM_FACTOR
            entry["B_ratio"] = ratio_b if ratio_b is not None else float("inf")
        difference = _value(record, "accuracy")
        entry["accuracy"] = difference is not None and abs(difference) <= ACCURACY_TOLERANCE
        entry["val_acc_difference"] = difference
        verdicts[optimizer] = entry
    return verdicts
