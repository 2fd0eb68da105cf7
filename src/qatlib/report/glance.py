"""The paper's printed Tables 4 and 5 in the shape :mod:`qatlib.report.claims` reads, so that the
paper's values and ours are the same statistic (the claims at a glance, :mod:`qatlib.report.mnist`).

>>> paper = {"table4": {"mnist": {"sgd": {"baseline": {"E_bar": 0.01}, "lr_tweak": {"E_bar": 0.02},
...                                       "unadjusted": {"E_bar": 0.05}}}},
...          "table5": {"mnist": {"sgd": {"ste": {"val_acc": 0.97}, "q_hat": {"val_acc": 0.971}}}}}
>>> from qatlib.report.claims import claims
>>> verdicts = claims(paper_metrics(paper, "mnist"))["sgd"]
>>> verdicts["A_ratio"], verdicts["B_ratio"], round(100 * verdicts["val_acc_difference"], 2)
(0.5, 5.0, 0.1)
>>> paper["table5"]["mnist"]["sgd"]["diff_printed"] = {"val_acc": "-0.07%"}   # quoted, not recomputed
>>> round(100 * claims(paper_metrics(paper, "mnist"))["sgd"]["val_acc_difference"], 2)
-0.07
"""

from __future__ import annotations

from typing import Any

from qatlib.experiments.records import E_BAR

__all__ = ["PAPER_MODELS", "paper_metrics"]

#: The paper's two models, as keyed in its tables.
PAPER_MODELS = {"mnist": "MNIST", "imagenet_resnet50": "ResNet50"}


def paper_metrics(paper: dict[str, Any], model: str) -> dict[str, Any]:
    """The paper's printed Tables 4 and 5 for ``model`` ("mnist" or "imagenet_resnet50") in the
    shape :func:`qatlib.report.claims.claims` reads (Ē per experiment; the validation-accuracy difference Q̂-net − STE-net
    from the printed Diff row where there is one, else from the two printed accuracies)."""
    table4, table5 = paper["table4"][model], paper["table5"][model]
    metrics: dict[str, Any] = {"accuracy": {}}
    for optimizer, experiments in table4.items():
        if optimizer.startswith("_"):
            continue
        metrics[optimizer] = {name: {E_BAR: entry[E_BAR]} for name, entry in experiments.items()}
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
