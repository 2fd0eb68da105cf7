"""The paper's claims, checked on a results JSON (Section 6.2): A (Q̂-net ≈ STE-net), B (M matters), accuracy.

>>> stored = {
...     "sgd": {"baseline": {"E_bar": 0.01}, "lr_tweak": {"E_bar": 0.02}, "unadjusted": {"E_bar": 0.05}},
...     "accuracy": {"sgd": {"q_net": {"val_acc": 0.97}, "ste_net": {"val_acc": 0.969}}},
... }
>>> v = claims(stored)["sgd"]
>>> v["A"], v["A_ratio"], v["B"], v["B_ratio"], v["accuracy"]
(True, 0.5, True, 5.0, True)
"""

from __future__ import annotations

from typing import Any

__all__ = ["CLAIM_FACTOR", "ACCURACY_TOLERANCE", "claims"]

#: A baseline E_bar within this factor of the lr-tweak one counts as "comparable" (claim A);
#: an unadjusted E_bar at least this factor above the baseline counts as "clearly worse" (claim B).
CLAIM_FACTOR = 2.0
#: |val acc (Q-hat-net) - val acc (STE-net)| below this counts as "a fraction of a percent".
ACCURACY_TOLERANCE = 0.005


def claims(metrics_json: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The paper's claims checked on one results JSON (per optimizer present).

    * ``A``: E_bar(baseline) <= CLAIM_FACTOR * E_bar(lr_tweak) -- Q-hat -> STE is "a small change";
    * ``B`` (SGD): E_bar(unadjusted) >= CLAIM_FACTOR * E_bar(baseline) -- M matters;
    * ``accuracy``: |val_acc(Q-hat-net) - val_acc(STE-net)| <= ACCURACY_TOLERANCE.
    """
    verdicts: dict[str, dict[str, Any]] = {}
    for optimizer in ("sgd", "adam"):
        if optimizer not in metrics_json:
            continue
        table = metrics_json[optimizer]
        base, tweak = table["baseline"]["E_bar"], table["lr_tweak"]["E_bar"]
        entry: dict[str, Any] = {"A": base <= CLAIM_FACTOR * tweak, "A_ratio": base / tweak if tweak else float("inf")}
        if "unadjusted" in table:
            unadjusted = table["unadjusted"]["E_bar"]
            entry["B"] = unadjusted >= CLAIM_FACTOR * base
            entry["B_ratio"] = unadjusted / base if base else float("inf")
        acc = metrics_json["accuracy"][optimizer]
        difference = acc["q_net"]["val_acc"] - acc["ste_net"]["val_acc"]
        entry["accuracy"] = abs(difference) <= ACCURACY_TOLERANCE
        entry["val_acc_difference"] = difference
        verdicts[optimizer] = entry
    return verdicts

