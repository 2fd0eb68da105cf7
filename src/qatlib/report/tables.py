"""The book's tables as pandas DataFrames of formatted cells, each narrow enough for the text column.

Every table takes results JSON (dicts, as written by :mod:`qatlib.report.artefacts`) and, where it
sets ours beside the paper's, the paper's printed numbers (:func:`qatlib.report.paper.paper_tables`);
none computes a result. A chapter shows a frame with :func:`qatlib.report.markup.table`, so headers
and cells may hold inline MyST maths (``$\\bar E$``). No frame has more than six columns (the index,
a named first column, included): the paper's Tables 4 and 5 are each shown as two tables.

>>> paper = {"sgd": {"baseline": {"E_bar": 0.00515, "agreement": 0.9831}}}
>>> ours = {"sgd": {"baseline": {"E_bar": 0.0042, "agreement": 0.98765}}}
>>> table4_error_frame(ours, paper).loc["baseline (S)"].tolist()
['0.515%', '0.420%']
>>> significant_percent(5.2e-6), significant_percent(0.0252), significant_percent(0.0)
('0.000520%', '2.52%', '0%')
"""

from __future__ import annotations

import math
from typing import Any

from qatlib.experiments.comparison import EXPERIMENTS
from qatlib.experiments.records import AGREEMENT, E_BAR
from qatlib.report import artefacts, markup
from qatlib.report.claims import claims

__all__ = [
    "LABELS",
    "SHORT",
    "MISSING",
    "significant_percent",
    "printed_percent",
    "table4_error_frame",
    "table4_agreement_frame",
    "table5_frame",
    "paper_table5_frame",
    "mirror_room_frame",
    "claims_frame",
    "provenance_frame",
    "note_frame",
]

#: A cell with no value.
MISSING = "–"
LABELS = {"baseline": "baseline", "lr_tweak": "lr-tweak", "unadjusted": "unadjusted"}
SHORT = {"sgd": "S", "adam": "A"}
_COLUMNS5 = ("train_acc", "train_loss", "val_acc", "val_loss")
_HEADER5 = ["train acc", "train loss", "val acc", "val loss"]


def significant_percent(fraction: float | None, digits: int = 3) -> str:
    """A fraction as a percentage with ``digits`` significant digits (no exponent), for small errors."""
    if fraction is None:
        return MISSING
    value = 100 * fraction
    if value == 0:
        return "0%"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}%"


def printed_percent(fraction: float | None) -> str:
    """A fraction from the paper as it printed it (``0.954`` -> ``'95.4%'``, ``0.0252`` -> ``'2.52%'``)."""
    return MISSING if fraction is None else f"{round(100 * fraction, 4):g}%"


def _percent(value: float | None, digits: int = 4) -> str:
    """A share as the prose prints it (:func:`qatlib.report.markup.percent`): ``'99.87%'``,
    ``'100%'`` only when it is exactly one, ``'> 99.99%'`` just below."""
    return MISSING if value is None else markup.percent(value, digits)


def _frame(header: list[str], rows: list[list[str]]) -> Any:
    """A DataFrame indexed by its first column, with the columns that hold no value at all dropped."""
    import pandas as pd

    frame = pd.DataFrame(rows, columns=header).set_index(header[0])
    empty = [column for column in frame.columns if len(frame) and (frame[column] == MISSING).all()]
    return frame.drop(columns=empty)


def _pairs(ours: dict[str, Any]):
    """Each pair of a single-run artefact, as read by :func:`qatlib.report.artefacts.run_records`,
    in Table 4's order: ``(optimizer, experiment, row label, PairRecord)``."""
    pairs = {record.spec["optimizer"]: record.pairs for record in artefacts.run_records(ours)}
    for optimizer in ("sgd", "adam"):
        for experiment in EXPERIMENTS[optimizer]:
            pair = pairs.get(optimizer, {}).get(experiment)
            if pair is not None:
                yield optimizer, experiment, f"{LABELS[experiment]} ({SHORT[optimizer]})", pair


def table4_error_frame(ours: dict[str, Any], paper: dict[str, Any]) -> Any:
    """Table 4, alignment error: the paper's Ē beside ours, over all quantized kernels and over conv kernels.

    The last column is the measure the authors' code computes (Σ|M(w_a) − w_b| / w_max over the conv
    kernels divided by net b's path length), where the run recorded it. ``paper`` is one model's half
    of the paper's Table 4, e.g. ``paper_tables()["table4"]["mnist"]``.
    """
    header = ["experiment", "$\\bar E$, paper", "$\\bar E$, ours", "$\\bar E$, ours (conv kernels)",
              "authors' measure, ours"]
    rows = [
        [
            label,
            printed_percent(paper.get(optimizer, {}).get(experiment, {}).get(E_BAR)),
            significant_percent(pair.E_bar),
            significant_percent(pair.E_bar_conv),
            significant_percent(pair.authors_measure),
        ]
        for optimizer, experiment, label, pair in _pairs(ours)
    ]
    return _frame(header, rows)


def table4_agreement_frame(ours: dict[str, Any], paper: dict[str, Any]) -> Any:
    """Table 4, agreement: the share of quantized weights equal in both nets, the paper's beside ours,
    and the share of test images on which both nets predict the same class."""
    header = ["experiment", "agreement, paper", "agreement, ours", "agreement, ours (conv kernels)",
              "same prediction, ours"]
    rows = [
        [
            label,
            printed_percent(paper.get(optimizer, {}).get(experiment, {}).get(AGREEMENT)),
            _percent(pair.agreement),
            _percent(pair.agreement_conv),
            _percent(pair.prediction_agreement, 3),
        ]
        for optimizer, experiment, label, pair in _pairs(ours)
    ]
    return _frame(header, rows)


def _cell5(column: str, value: float | None) -> str:
    if value is None:
        return MISSING
    text = f"{100 * value:.2f}%" if column.endswith("acc") else f"{value:.4f}"
    negative_zero = text.startswith("-") and text.strip("-0.%") == ""
    return text[1:] if negative_zero else text  # "-0.0000" reads as 0.0000


def table5_frame(ours: dict[str, Any]) -> Any:
    """Table 5, ours: accuracy and loss of STE-net and Q̂-net at the end of training, per optimizer.

    ``ours`` is a results JSON's ``"accuracy"``; Diff = Q̂-net − STE-net, the paper's sign.
    """
    rows = []
    for optimizer in ("sgd", "adam"):
        mine = ours.get(optimizer)
        if mine is None:
            continue
        tag = SHORT[optimizer]
        rows.append([f"STE ({tag})"] + [_cell5(c, mine["ste_net"][c]) for c in _COLUMNS5])
        rows.append([f"$\\hat Q$ ({tag})"] + [_cell5(c, mine["q_net"][c]) for c in _COLUMNS5])
        rows.append([f"Diff ({tag})"] + [_cell5(c, mine["q_net"][c] - mine["ste_net"][c]) for c in _COLUMNS5])
    return _frame(["net"] + _HEADER5, rows)


def paper_table5_frame(paper: dict[str, Any]) -> Any:
    """Table 5, the paper's: one model's half exactly as printed, Diff rows included.

    The Diff rows are the paper's printed ones (``diff_printed``), not recomputed from the printed
    rows above them, which are themselves rounded. Columns the source text cuts off (``truncated``)
    end in "…". ``paper`` is e.g. ``paper_tables()["table5"]["imagenet_resnet50"]``.
    """
    truncated = set(paper.get("truncated", ()))

    def cell(column: str, value: Any) -> str:
        if value is None:
            return MISSING
        if column in truncated:
            return f"{value}…" if isinstance(value, str) else f"{value:.2f}…"
        return value if isinstance(value, str) else _cell5(column, value)

    rows = []
    for optimizer in ("sgd", "adam"):
        theirs = paper.get(optimizer)
        if theirs is None:
            continue
        tag = SHORT[optimizer]
        rows.append([f"STE ({tag})"] + [cell(c, theirs["ste"].get(c)) for c in _COLUMNS5])
        rows.append([f"$\\hat Q$ ({tag})"] + [cell(c, theirs["q_hat"].get(c)) for c in _COLUMNS5])
        rows.append([f"Diff ({tag})"] + [cell(c, theirs["diff_printed"].get(c)) for c in _COLUMNS5])
    return _frame(["net"] + _HEADER5, rows)


def mirror_room_frame(ours: dict[str, Any]) -> Any:
    """Per pair: how many tracked weights changed level in either net, the share of those that visit the
    same levels in both nets, and how many steps apart their paired crossings of a bin boundary are
    (mean and 90th percentile) or the share of crossings at the same step."""
    header = ["experiment", "moved", "same levels", "mean offset", "90th pct.", "same step"]
    rows = []
    for optimizer, experiment, label, pair in _pairs(ours):
        room = pair.mirror_room
        if room is None:
            continue
        rows.append([
            label,
            f"{room['moving_weights']:,}",
            _percent(room["same_sequence_among_moving"], 3),
            f"{room['mean_offset']:.1f}",
            f"{room['p90_offset']:.0f}",
            _percent(room["same_step_share"], 3),
        ])
    return _frame(header, rows)


def claims_frame(runs: dict[str, dict[str, Any]]) -> Any:
    """One row per results JSON (``{label: metrics_json}``): the verdict on each claim, with its ratio
    (A: Ē(baseline) / Ē(lr-tweak); B: Ē(unadjusted) / Ē(baseline)) or accuracy difference (pp)."""
    header = ["run", "A (SGD)", "A (Adam)", "B (SGD)", "accuracy (SGD)", "accuracy (Adam)"]
    rows = []
    for label, metrics_json in runs.items():
        verdicts = claims(metrics_json)

        def ratio(optimizer: str, key: str) -> str:
            v = verdicts.get(optimizer)
            if v is None or key not in v:
                return MISSING
            return f"{'holds' if v[key] else 'fails'} ({v[key + '_ratio']:.2f})"

        def accuracy(optimizer: str) -> str:
            v = verdicts.get(optimizer)
            if v is None:
                return MISSING
            return f"{'holds' if v['accuracy'] else 'fails'} ({100 * v['val_acc_difference']:+.2f})"

        rows.append(
            [label, ratio("sgd", "A"), ratio("adam", "A"), ratio("sgd", "B"), accuracy("sgd"), accuracy("adam")]
        )
    import pandas as pd

    frame = pd.DataFrame(rows, columns=header).set_index("run")  # keep the columns that are all "–"
    return frame


def provenance_frame(metrics_json: dict[str, Any]) -> Any:
    """A results JSON's provenance (data, model, steps, device, time, versions) as ``field | value`` rows."""
    import pandas as pd

    source = metrics_json["provenance"]
    config = source.get("config", {})
    device = source.get("device", {})
    model = metrics_json.get("model", {})
    rows = [
        ("preset", f"`{source.get('preset')}`"),
        ("data", metrics_json.get("data", {}).get("note")),
        ("model", f"{model.get('name')} ({model.get('parameters', 0):,} parameters, "
                  f"{model.get('quantized_weights', 0):,} quantized weights)"),
        ("steps", f"{source.get('steps'):,} of batch {config.get('batch_size')}, "
                  f"the first {metrics_json.get('E_t', {}).get('shared_steps')} shared"),
        ("device", f"{markup.device(str(device.get('backend')), device.get('devices', []), len(device.get('devices', [])) or None)}"
                   f" of a {device.get('cpu_count')}-core {device.get('cpu')} machine"),
        ("wall time", f"{source.get('seconds', 0) / 60:.1f} minutes"),
        ("versions", ", ".join(f"{k} {v}" for k, v in source.get("versions", {}).items() if v)),
        ("git commit", f"`{str(source.get('git_commit'))[:12]}`"),
        ("created (UTC)", source.get("created_utc")),
    ]
    return pd.DataFrame(
        {"value": [str(value).replace("|", "\\|") for _, value in rows]},
        index=pd.Index([name for name, _ in rows], name="field"),
    )


def note_frame(message: str) -> Any:
    """A one-cell table that stands in for a table whose results artefact is not in this checkout,
    so that the chapter's numbered reference to it still resolves and says why it is empty."""
    import pandas as pd

    return pd.DataFrame({"note": [message]})
