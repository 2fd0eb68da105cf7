"""Typed results of a comparison run: which nets, which pairs, and what was measured of each.

A run of the paper's comparison (Section 6.1, one seed x optimizer x run length) returns a
:class:`RunRecord`: its spec, one :class:`PairRecord` per experiment of Table 3 ("baseline",
"lr_tweak", ...) and one :class:`NetRecord` per net (Table 5), keyed by the net's role. A net's
identity is a :class:`NetId` (the optimizer's label and the net's role), never a string to split.
The metrics of a pair that are logged along training are one :class:`PairMetrics`: Ē (Eq. 5) and
the quantized weight agreement (Section 6.2), over all quantized kernels and over the conv kernels.

A run of the Beyond chapter's sweeps is a :class:`SweepRecord`: where it sits in the sweep (section,
series, x, seed, spec), its :class:`SweepPair` per experiment (Ē^(t) only, as a list) and its nets.

The types turn into JSON (:meth:`RunRecord.to_json`) only where a result leaves the process: the
sweep cache of :mod:`qatlib.experiments.sweep` and the artefacts of :mod:`qatlib.report`.
:meth:`RunRecord.from_json` reads them back and refuses a field it does not know. A field a run did
not measure is ``None`` and is left out of the JSON.

>>> pair = PairRecord(E_bar=0.004, agreement=0.99, nets=(NetId("sgd", "q_net"), NetId("sgd", "ste_net")))
>>> pair.to_json()
{'E_bar': 0.004, 'agreement': 0.99, 'nets': ['sgd/q_net', 'sgd/ste_net']}
>>> PairRecord.from_json(pair.to_json()) == pair
True
>>> PairRecord.from_json({"E_bar": 0.1, "E_bra": 0.2})
Traceback (most recent call last):
...
ValueError: PairRecord: unknown field 'E_bra' (known: E_bar, E_bar_conv, agreement, agreement_conv, E_t, nets, trained, authors_measure, path_length_conv, E_bar_per_layer, agreement_per_layer, prediction_agreement, mirror_room)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

__all__ = [
    "NetId", "PairMetrics", "PairRecord", "NetRecord", "RunRecord", "SweepPair", "SweepRecord",
    "METRICS", "E_BAR", "E_BAR_CONV", "AGREEMENT", "AGREEMENT_CONV", "E_BAR_MAPPED_SCALE",
]

T = TypeVar("T")


@dataclasses.dataclass(frozen=True, order=True)
class NetId:
    """A net of a comparison: the optimizer's label (``"sgd"``, or a section's own label) and the
    net's role (``"q_net"``, ``"ste_net"``, ``"q_net_lr_tweak"``, ...).

    >>> NetId("sgd", "q_net").name, NetId.parse("adam/ste_net")
    ('sgd/q_net', NetId(label='adam', role='ste_net'))
    """

    label: str
    role: str

    @property
    def name(self) -> str:
        """The net's name in a lock-step run and in the JSON: ``label/role``."""
        return f"{self.label}/{self.role}"

    @classmethod
    def parse(cls, name: str) -> "NetId":
        """The id whose :attr:`name` is ``name`` (the JSON's form of a pair's nets)."""
        label, sep, role = name.partition("/")
        if not sep or not role:
            raise ValueError(f"a net's name is 'label/role', got {name!r}")
        return cls(label, role)


@dataclasses.dataclass(frozen=True)
class PairMetrics(Generic[T]):
    """The metrics of a pair logged along training: Ē (Eq. 5, through M for the SGD baseline) and the
    quantized weight agreement, over all quantized kernels and over the convolution kernels. ``T``
    is ``float`` for one point and ``list[float]`` for E^(t) along training."""

    E_bar: T
    E_bar_conv: T
    agreement: T
    agreement_conv: T

    def items(self) -> list[tuple[str, T]]:
        """``(metric name, value)`` in field order."""
        return [(field.name, getattr(self, field.name)) for field in dataclasses.fields(self)]


#: The names of the logged metrics, in the order of :class:`PairMetrics`.
METRICS: tuple[str, ...] = tuple(field.name for field in dataclasses.fields(PairMetrics))

#: Each metric's name as the JSON, the logs, the paper's printed tables and the report's frames key
#: it: the name of its field in :class:`PairMetrics`, so a name is spelt once, where it is declared.
E_BAR, E_BAR_CONV, AGREEMENT, AGREEMENT_CONV = METRICS


def _to_json(value: Any) -> Any:
    if isinstance(value, _Record):
        return value.to_json()
    if isinstance(value, NetId):
        return value.name
    if isinstance(value, PairMetrics):
        return {name: _to_json(v) for name, v in value.items()}
    if isinstance(value, Mapping):
        return {key: _to_json(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    return value


class _Record:
    """JSON conversion shared by the record types: fields in declaration order, ``None`` left out."""

    def to_json(self) -> dict[str, Any]:
        return {field.name: _to_json(value) for field in dataclasses.fields(self)  # type: ignore[arg-type]
                if (value := getattr(self, field.name)) is not None}

    @classmethod
    def _fields(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        known = [field.name for field in dataclasses.fields(cls)]  # type: ignore[arg-type]
        for key in data:
            if key not in known:
                raise ValueError(f"{cls.__name__}: unknown field {key!r} (known: {', '.join(known)})")
        return dict(data)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Any:
        return cls(**cls._fields(data))


@dataclasses.dataclass(frozen=True)
class NetRecord(_Record):
    """One net at the end of a run (paper Table 5): whether its weights stayed finite, its mean
    training loss over the last tenth of the steps, accuracy and loss on the training and test
    images (eval mode), and whether it trained (:func:`qatlib.metrics.trained`)."""

    finite: bool | None = None
    final_train_loss: float | None = None
    train_acc: float | None = None
    train_loss: float | None = None
    val_acc: float | None = None
    val_loss: float | None = None
    trained: bool | None = None

    def has_trained(self) -> bool:
        """Whether the net trained: its record's verdict, else decided from its test accuracy."""
        from qatlib import metrics

        if self.trained is not None:
            return self.trained
        return metrics.trained(self.val_acc, True if self.finite is None else self.finite)


@dataclasses.dataclass(frozen=True)
class PairRecord(_Record):
    """One pair of nets at the end of a run (paper Table 4): the :class:`PairMetrics` at the last
    step, their history ``E_t`` at the logging points, the two nets, whether both trained, the
    authors' path-normalised measure (conv kernels), net b's conv path length, Ē and agreement per
    layer, the test prediction agreement and the tracked weights' crossing statistics
    (:func:`qatlib.metrics.crossing_statistics`)."""

    E_bar: float | None = None
    E_bar_conv: float | None = None
    agreement: float | None = None
    agreement_conv: float | None = None
    E_t: PairMetrics[list[float]] | None = None
    nets: tuple[NetId, NetId] | None = None
    trained: bool | None = None
    authors_measure: float | None = None
    path_length_conv: float | None = None
    E_bar_per_layer: dict[str, float] | None = None
    agreement_per_layer: dict[str, float] | None = None
    prediction_agreement: float | None = None
    mirror_room: dict[str, float] | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "PairRecord":
        fields = cls._fields(data)
        if fields.get("E_t") is not None:
            fields["E_t"] = PairMetrics(**fields["E_t"])
        if fields.get("nets") is not None:
            a, b = fields["nets"]
            fields["nets"] = (NetId.parse(a), NetId.parse(b))
        return cls(**fields)


def _with_pairs_and_nets(fields: dict[str, Any], pair_type: type) -> dict[str, Any]:
    """A run's JSON fields with its pairs read as ``pair_type`` and its nets as :class:`NetRecord`."""
    fields["pairs"] = {name: pair_type.from_json(pair) for name, pair in fields.get("pairs", {}).items()}
    fields["nets"] = {role: NetRecord.from_json(net) for role, net in fields.get("nets", {}).items()}
    return fields


@dataclasses.dataclass(frozen=True)
class RunRecord(_Record):
    """One run (a seed x optimizer x run length): its ``spec`` (the config fields that set its numbers,
    with ``optimizer``, ``steps`` and ``lr``), the pairs by experiment, the nets by role, the logging
    steps, α and w_max per quantized layer, the estimators' reprs, what was tracked and evaluated,
    and its wall times."""

    seed: int
    spec: dict[str, Any]
    pairs: dict[str, PairRecord]
    nets: dict[str, NetRecord]
    log_steps: list[int] | None = None
    alpha: dict[str, float] | None = None
    w_max: dict[str, float] | None = None
    estimator: dict[str, str] | None = None
    tracked_weights: int | None = None
    train_eval_examples: int | None = None
    train_seconds: float | None = None
    first_step_seconds: float | None = None
    resumed_from_step: int | None = None
    seconds: float | None = None

    @property
    def optimizer(self) -> str:
        return self.spec["optimizer"]

    @property
    def steps(self) -> int | None:
        return self.spec.get("steps")

    def net(self, role: str) -> NetRecord:
        """The record of the net with ``role`` (an empty record where the run has no such net)."""
        return self.nets.get(role, NetRecord())

    def pair(self, experiment: str) -> PairRecord:
        """The record of ``experiment`` (an empty record where the run has no such pair)."""
        return self.pairs.get(experiment, PairRecord())

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "RunRecord":
        return cls(**_with_pairs_and_nets(cls._fields(data), PairRecord))


@dataclasses.dataclass(frozen=True)
class SweepPair(_Record):
    """One pair of a sweep run: the :class:`PairMetrics` at the end, Ē in units of the range in
    STE-net's coordinates (``scale="mapped"`` of :func:`qatlib.metrics.E_bar`) and Ē^(t) at the
    logging points. The end values are ``None`` where a net's weights did not stay finite."""

    E_bar: float | None = None
    E_bar_conv: float | None = None
    agreement: float | None = None
    agreement_conv: float | None = None
    E_bar_mapped_scale: float | None = None
    E_t: list[float] | None = None


#: The name of :attr:`SweepPair.E_bar_mapped_scale`, as the Beyond chapter's frames key it.
E_BAR_MAPPED_SCALE = "E_bar_mapped_scale"


@dataclasses.dataclass(frozen=True)
class SweepRecord(_Record):
    """One run of a Beyond sweep: its place in the sweep (``section``, ``series``, ``x``, ``seed``),
    its spec (optimizer, learning rate, estimator, ...), the pairs by experiment, the nets by role
    (test accuracy and loss, mean training loss over the last tenth, finite), the distinct α of its
    quantized layers, the logging steps and its wall time."""

    section: str
    series: str
    x: float
    seed: int
    spec: dict[str, Any]
    pairs: dict[str, SweepPair] = dataclasses.field(default_factory=dict)
    nets: dict[str, NetRecord] = dataclasses.field(default_factory=dict)
    alpha: list[float] | None = None
    log_steps: list[int] | None = None
    seconds: float | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "SweepRecord":
        return cls(**_with_pairs_and_nets(cls._fields(data), SweepPair))
