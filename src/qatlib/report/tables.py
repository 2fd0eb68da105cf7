"""The book's tables as pandas DataFrames: Tables 4 and 5 beside the paper's, the mirror room, the claims.

Every table takes results JSON (dicts, as written by :mod:`qatlib.report.artefacts`) and the
paper's printed numbers (:func:`qatlib.report.paper.paper_tables`); none computes a result.
"""

from __future__ import annotations

from typing import Any

from qatlib.experiments.comparison import EXPERIMENTS
from qatlib.report.artefacts import percent
from qatlib.report.claims import claims

__all__ = ["LABELS", "SHORT", "table4_frame", "table5_frame", "mirror_room_frame", "claims_frame", "provenance_frame"]


def _percent(value: float | None, decimals: int = 3) -> str:
    return "–" if value is None else percent(value, decimals)


LABELS = {"baseline": "baseline", "lr_tweak": "lr-tweak", "unadjusted": "unadjusted"}
SHORT = {"sgd": "S", "adam": "A"}


def _frame(header: list[str], rows: list[list[str]]) -> Any:
    import pandas as pd

    return pd.DataFrame(rows, columns=header).set_index(header[0])


def table4_frame(ours: dict[str, Any], paper: dict[str, Any]) -> Any:
    """Table 4 (MNIST half) as a pandas DataFrame: Ē and agreement, ours beside the paper's.

    Ours three ways: Ē over all quantized kernels, Ē over the conv kernels (the authors compared
    only those) and the authors' code's measure (Σ|M(w_a) − w_b|/w_max over conv kernels divided by
    net b's path length), so a reader sees which of them the printed values resemble.
    ``paper`` is ``paper_tables()["table4"]["mnist"]``.
    """
    header = [
        "experiment", "Ē (paper)", "Ē, all kernels", "Ē, conv kernels", "authors' measure",
        "agreement (paper)", "agreement, all", "agreement, conv", "prediction agreement",
    ]
    rows = []
    for optimizer in ("sgd", "adam"):
        for experiment in EXPERIMENTS[optimizer]:
            mine = ours.get(optimizer, {}).get(experiment)
            theirs = paper.get(optimizer, {}).get(experiment, {})
            if mine is None:
                continue
            rows.append([
                f"{LABELS[experiment]} ({SHORT[optimizer]})",
                _percent(theirs.get("E_bar")),
                _percent(mine["E_bar"]),
                _percent(mine.get("E_bar_conv")),
                _percent(mine.get("authors_measure"), 2),
                _percent(theirs.get("agreement"), 2),
                _percent(mine["agreement"], 2),
                _percent(mine.get("agreement_conv"), 2),
                _percent(mine.get("prediction_agreement"), 1),
            ])
    return _frame(header, rows)


def table5_frame(ours: dict[str, Any], paper: dict[str, Any]) -> Any:
    """Table 5 (MNIST half) as a DataFrame: accuracy and loss of STE-net and Q-hat-net, ours and the paper's.

    Diff = Q-hat-net - STE-net (the paper's sign). ``paper`` is ``paper_tables()["table5"]["mnist"]``.
    """
    columns = ("train_acc", "train_loss", "val_acc", "val_loss")

    def cell(column: str, value: float | None) -> str:
        if value is None:
            return "–"
        return f"{100 * value:.2f}%" if column.endswith("acc") else f"{value:.4f}"

    header = ["net", "train acc", "train loss", "val acc", "val loss",
              "paper: train acc", "paper: train loss", "paper: val acc", "paper: val loss"]
    rows = []
    for optimizer in ("sgd", "adam"):
        mine = ours.get(optimizer)
        if mine is None:
            continue
        theirs = paper.get(optimizer, {})
        for label, key, paper_key in (("STE", "ste_net", "ste"), ("Q̂", "q_net", "q_hat")):
            rows.append(
                [f"{label} ({SHORT[optimizer]})"]
                + [cell(c, mine[key][c]) for c in columns]
                + [cell(c, theirs.get(paper_key, {}).get(c)) for c in columns]
            )
        diffs = []
        for c in columns:
            diffs.append(cell(c, mine["q_net"][c] - mine["ste_net"][c]))
        for c in columns:
            a, b = theirs.get("q_hat", {}).get(c), theirs.get("ste", {}).get(c)
            diffs.append("–" if a is None or b is None else cell(c, a - b))
        rows.append([f"Diff ({SHORT[optimizer]})"] + diffs)
    return _frame(header, rows)


def mirror_room_frame(ours: dict[str, Any]) -> Any:
    """Per pair: do tracked weights visit the same quantized levels, and how far apart do they cross?"""
    header = ["experiment", "tracked weights", "moved (either net)", "same level sequence (of moved)",
              "crossings paired", "mean offset (steps)", "median", "90th pct", "same step"]
    rows = []
    for optimizer in ("sgd", "adam"):
        for experiment in EXPERIMENTS[optimizer]:
            entry = ours.get(optimizer, {}).get(experiment, {}).get("mirror_room")
            if entry is None:
                continue
            rows.append([
                f"{LABELS[experiment]} ({SHORT[optimizer]})",
                f"{entry['weights']:,}",
                f"{entry['moving_weights']:,}",
                _percent(entry["same_sequence_among_moving"], 1),
                f"{entry['crossings']:,}",
                f"{entry['mean_offset']:.2f}",
                f"{entry['median_offset']:.0f}",
                f"{entry['p90_offset']:.0f}",
                _percent(entry["same_step_share"], 1),
            ])
    return _frame(header, rows)


def claims_frame(runs: dict[str, dict[str, Any]]) -> Any:
    """One row per results JSON (``{label: metrics_json}``): the verdict on each claim, with its ratio."""
    header = ["run", "A (SGD): Ē base / tweak", "A (Adam): Ē base / tweak", "B (SGD): Ē unadj / base",
              "accuracy (SGD): Δ val acc", "accuracy (Adam): Δ val acc"]
    rows = []
    for label, metrics_json in runs.items():
        verdicts = claims(metrics_json)

        def ratio(optimizer: str, key: str) -> str:
            v = verdicts.get(optimizer)
            if v is None or key not in v:
                return "–"
            return f"{'holds' if v[key] else 'fails'} ({v[key + '_ratio']:.2f})"

        def accuracy(optimizer: str) -> str:
            v = verdicts.get(optimizer)
            if v is None:
                return "–"
            return f"{'holds' if v['accuracy'] else 'fails'} ({100 * v['val_acc_difference']:+.2f} pp)"

        rows.append(
            [label, ratio("sgd", "A"), ratio("adam", "A"), ratio("sgd", "B"), accuracy("sgd"), accuracy("adam")]
        )
    return _frame(header, rows)


def provenance_frame(metrics_json: dict[str, Any]) -> Any:
    """A results JSON's provenance (data, model, steps, device, time, versions) as a one-column DataFrame."""
    import pandas as pd

    source = metrics_json["provenance"]
    config = source.get("config", {})
    device = source.get("device", {})
    model = metrics_json.get("model", {})
    rows = [
        ("preset", source.get("preset")),
        ("data", metrics_json.get("data", {}).get("note")),
        ("model", f"{model.get('name')} ({model.get('parameters', 0):,} parameters, "
                  f"{model.get('quantized_weights', 0):,} quantized weights)"),
        ("steps", f"{source.get('steps'):,} of batch {config.get('batch_size')}, "
                  f"the first {metrics_json.get('E_t', {}).get('shared_steps')} shared"),
        ("device", f"{device.get('backend')} ({', '.join(device.get('devices', []))}; "
                   f"{device.get('cpu')}, {device.get('cpu_count')} cores)"),
        ("wall time", f"{source.get('seconds', 0) / 60:.1f} minutes"),
        ("versions", ", ".join(f"{k} {v}" for k, v in source.get("versions", {}).items() if v)),
        ("git commit", source.get("git_commit")),
        ("created (UTC)", source.get("created_utc")),
    ]
    return pd.DataFrame({"run": [str(value) for _, value in rows]}, index=[name for name, _ in rows])
