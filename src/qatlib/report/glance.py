"""The introduction's "claims at a glance": each claim of Section 6, the paper's value, ours per run.

The claims and their criteria are those of :func:`qatlib.report.claims.claims` (one home); this
module only lines them up across runs. The paper's values are computed by the same function from
the paper's printed Tables 4 and 5 (:func:`paper_metrics`), so "paper" and "ours" are the same
statistic. A run that lacks an optimizer (e.g. an SGD-only control) shows "–".

>>> paper = {"table4": {"mnist": {"sgd": {"baseline": {"E_bar": 0.01}, "lr_tweak": {"E_bar": 0.02},
...                                       "unadjusted": {"E_bar": 0.05}}}},
...          "table5": {"mnist": {"sgd": {"ste": {"val_acc": 0.97}, "q_hat": {"val_acc": 0.971}}}}}
>>> frame = glance_frame({"MNIST": {"sgd": {"baseline": {"E_bar": 0.03}, "lr_tweak": {"E_bar": 0.01},
...                                         "unadjusted": {"E_bar": 0.2}},
...                                 "accuracy": {"sgd": {"q_net": {"val_acc": 0.95}, "ste_net": {"val_acc": 0.951}}}}},
...                      paper)
>>> frame.loc[:, "paper (MNIST)"].tolist()
['0.50 ✓', '–', '5.00 ✓', '+0.10 pp ✓', '–']
>>> frame.loc[:, "MNIST"].tolist()
['3.00 ✗', '–', '6.67 ✓', '−0.10 pp ✓', '–']
>>> paper["table5"]["mnist"]["sgd"]["diff_printed"] = {"val_acc": "-0.07%"}   # quoted, not recomputed
>>> glance_frame({}, paper).iloc[3, 0]
'−0.07 pp ✓'
>>> frame.loc[:, "verdict"].tolist()
['fails on 1 of 1', '–', 'holds on 1 of 1', 'holds on 1 of 1', '–']
"""

from __future__ import annotations

from typing import Any

from qatlib.report.claims import ACCURACY_TOLERANCE, CLAIM_FACTOR, claims

__all__ = ["CLAIMS", "paper_metrics", "glance_frame"]

#: (optimizer, claims() key, the claim and its criterion) per row.
CLAIMS: tuple[tuple[str, str, str], ...] = (
    ("sgd", "A", f"**A**, SGD + momentum: Q̂-net trains like STE-net; $\\bar E$ baseline / lr-tweak ≤ {CLAIM_FACTOR:g}"),
    ("adam", "A", f"**A**, Adam: the same with no change at all; $\\bar E$ baseline / lr-tweak ≤ {CLAIM_FACTOR:g}"),
    ("sgd", "B", f"**B**, SGD + momentum: without $M$ and $\\alpha$ it does not; $\\bar E$ unadjusted / baseline ≥ {CLAIM_FACTOR:g}"),
    ("sgd", "accuracy", f"**accuracy**, SGD + momentum: Δ val acc (Q̂ − STE) within ±{100 * ACCURACY_TOLERANCE:g} pp"),
    ("adam", "accuracy", f"**accuracy**, Adam: Δ val acc (Q̂ − STE) within ±{100 * ACCURACY_TOLERANCE:g} pp"),
)
#: The paper's two models, as keyed in its tables.
PAPER_MODELS = {"mnist": "MNIST", "imagenet_resnet50": "ResNet50"}


def paper_metrics(paper: dict[str, Any], model: str) -> dict[str, Any]:
    """The paper's printed Tables 4 and 5 for ``model`` ("mnist" or "imagenet_resnet50") in the
    shape :func:`claims` reads (Ē per experiment; the validation-accuracy difference Q̂-net − STE-net
    from the printed Diff row where there is one, else from the two printed accuracies)."""
    table4, table5 = paper["table4"][model], paper["table5"][model]
    metrics: dict[str, Any] = {"accuracy": {}}
    for optimizer, experiments in table4.items():
        if optimizer.startswith("_"):
            continue
        metrics[optimizer] = {name: {"E_bar": entry["E_bar"]} for name, entry in experiments.items()}
        printed = table5[optimizer]
        if "diff_printed" in printed:
            # The paper's Diff row as printed (it is not always the difference of the rounded rows
            # above it): claims() reads only the difference, so STE-net stands at 0.
            difference = float(printed["diff_printed"]["val_acc"].rstrip("%")) / 100
            metrics["accuracy"][optimizer] = {"q_net": {"val_acc": difference}, "ste_net": {"val_acc": 0.0}}
        else:
            metrics["accuracy"][optimizer] = {
                "q_net": {"val_acc": printed["q_hat"]["val_acc"]},
                "ste_net": {"val_acc": printed["ste"]["val_acc"]},
            }
    return metrics


def _cell(verdicts: dict[str, Any], optimizer: str, key: str) -> tuple[str, bool | None]:
    entry = verdicts.get(optimizer, {})
    if key not in entry:
        return "–", None
    mark = "✓" if entry[key] else "✗"
    if key == "accuracy":
        pp = 100 * entry["val_acc_difference"]
        return f"{pp:+.2f} pp {mark}".replace("-", "−"), bool(entry[key])
    return f"{entry[key + '_ratio']:.2f} {mark}", bool(entry[key])


def glance_frame(runs: dict[str, dict[str, Any]], paper: dict[str, Any]) -> Any:
    """One row per claim: the paper's value for each of its models present in ``paper``
    ("MNIST / ResNet50"), ours per run (``{column label: results JSON}``), and a verdict counted
    over our runs."""
    import pandas as pd

    models = [model for model in PAPER_MODELS if model in paper["table4"]]
    paper_verdicts = [claims(paper_metrics(paper, model)) for model in models]
    paper_label = "paper (" + " / ".join(PAPER_MODELS[model] for model in models) + ")"
    ours = {label: claims(metrics) for label, metrics in runs.items()}
    rows = []
    for optimizer, key, claim in CLAIMS:
        cells = {label: _cell(verdicts, optimizer, key) for label, verdicts in ours.items()}
        decided = [ok for _, ok in cells.values() if ok is not None]
        if not decided:
            verdict = "–"
        elif all(decided):
            verdict = f"holds on {len(decided)} of {len(decided)}"
        else:
            verdict = f"fails on {decided.count(False)} of {len(decided)}"
        printed = [_cell(verdicts, optimizer, key)[0] for verdicts in paper_verdicts]
        rows.append({"claim": claim, paper_label: " / ".join(printed),
                     **{label: text for label, (text, _) in cells.items()}, "verdict": verdict})
    return pd.DataFrame(rows).set_index("claim")
