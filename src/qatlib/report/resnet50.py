"""The ResNet50 chapter's verdicts, from its committed seeded artefact (``results/resnet50/default_seeds``).

The page shows the claims over seeds from that artefact, as the introduction does (one set of
numbers per site); the build's own run is a reproduction check of its first seed
(:func:`qatlib.report.seeds.reproduction`) and draws the figures that need a run.
"""

from __future__ import annotations

from typing import Any

from qatlib.report import claims, markup, seeds
from qatlib.report import tables as tables_lib

__all__ = ["ARTEFACT", "verdicts"]

#: The committed seeded artefact the chapter shows.
ARTEFACT = "default_seeds"
_PAPER_MODEL = "imagenet_resnet50"


def _min_over(records: list[dict[str, Any]], key: str, experiments: tuple[str, ...]) -> float | None:
    values = [r["pairs"][e][key] for r in records for e in experiments if r["pairs"].get(e, {}).get(key) is not None]
    return min(values) if values else None


def verdicts(run_json: dict[str, Any], paper: dict[str, Any]) -> seeds.Page:
    """Phrases and tables of the claims over the committed seeds, and this build's check."""
    records = seeds.stored(ARTEFACT, chapter="resnet50")
    run_records = claims.records_of(run_json)
    values: dict[str, str] = {"resnet_check": seeds.reproduction(run_records, records), "resnet_artefact": ARTEFACT}
    printed = claims.claims(seeds.paper_metrics(paper, _PAPER_MODEL))
    mnist_printed = claims.claims(seeds.paper_metrics(paper, "mnist"))
    values.update(
        resnet_paper_a_sgd=f"{printed['sgd']['A_ratio']:.2f}", resnet_paper_a_adam=f"{printed['adam']['A_ratio']:.2f}",
        resnet_paper_b=f"{printed['sgd']['B_ratio']:.2f}", resnet_paper_b_mnist=f"{mnist_printed['sgd']['B_ratio']:.1f}",
        resnet_claim_factor=f"{claims.CLAIM_FACTOR:g}", resnet_accuracy_tolerance=f"{100 * claims.ACCURACY_TOLERANCE:g}",
    )
    tables: dict[str, Any] = {}
    names = ("tab-resnet-glance", "tab-resnet-error", "tab-resnet-accuracy")
    if not records:
        for key in ("resnet_seeds", "resnet_a_sgd", "resnet_a_adam", "resnet_b_sgd", "resnet_accuracy_sgd", "resnet_accuracy_adam",
                    "resnet_q_acc_sgd", "resnet_q_acc_adam", "resnet_weights_low", "resnet_same_baseline", "resnet_same_lr_tweak"):
            values[key] = seeds.MISSING
        for name in names:
            tables[name] = markup.table(tables_lib.note_frame(f"The committed artefact is {seeds.MISSING}."), "Not in this checkout.", name)
        return seeds.Page(values, tables, {})
    values["resnet_seeds"] = str(len({r["seed"] for r in records}))
    for decision in claims.decide_all(records):
        values[f"resnet_{decision.claim.lower()}_{decision.optimizer}"] = seeds.claim_phrase(decision)
    for optimizer in ("sgd", "adam"):
        chosen = claims.select(records, optimizer)
        accuracies = [r["nets"]["q_net"]["val_acc"] for r in chosen if r["nets"].get("q_net", {}).get("val_acc") is not None]
        values[f"resnet_q_acc_{optimizer}"] = seeds.percent_text(claims.difference_interval(accuracies), 3, at_most=1.0) if accuracies else seeds.MISSING
    for key, what, experiments in (
        ("resnet_weights_low", "agreement", ("baseline", "lr_tweak", "unadjusted")),
        ("resnet_same_baseline", "prediction_agreement", ("baseline",)),
        ("resnet_same_lr_tweak", "prediction_agreement", ("lr_tweak",)),
    ):
        lowest = _min_over(records, what, experiments)
        values[key] = markup.percent(lowest) if lowest is not None else seeds.MISSING
    steps = records[0]["spec"].get("steps")
    tables["tab-resnet-glance"] = markup.table(
        seeds.glance_frame(records, paper, _PAPER_MODEL),
        f"The claims on the ResNet50 stand-in ({ARTEFACT}: {steps} steps on MNIST at 32×32, {values['resnet_seeds']} seeds) "
        "beside the paper's ImageNet ratios: ours as the geometric mean over seeds with its 95% interval, and the verdict.",
        "tab-resnet-glance",
    )
    tables["tab-resnet-error"] = markup.table(
        seeds.error_frame(records, paper, _PAPER_MODEL),
        "Paper Table 4 (ResNet50 half) over seeds: Ē at the end of training (percent of the range) and the quantized "
        "weight agreement, the paper's on ImageNet after 100 epochs and ours on the stand-in.",
        "tab-resnet-error",
    )
    tables["tab-resnet-accuracy"] = markup.table(
        seeds.accuracy_frame(records),
        "Paper Table 5 (ResNet50 half) over seeds on the stand-in: test and training accuracy (± the half-width of the "
        "95% interval) and test loss of STE-net and Q̂-net, and Q̂-net − STE-net in test accuracy.",
        "tab-resnet-accuracy",
    )
    return seeds.Page(values, tables, {})
