"""The introduction's report: the verdicts first, each finding's headline computed from its interval.

Every number the introduction shows is read from the committed seeded artefacts through
:mod:`qatlib.report.mnist` (so it is the number the chapters show) and decided by
:mod:`qatlib.report.claims`; a headline is chosen by the verdict, never written by hand.

>>> from qatlib.report.claims import Decision, ratio_interval
>>> headline(Decision("adam", "A", ratio_interval([1.0, 1.1, 0.9]), "holds"))
'With Adam, the STE is enough'
>>> headline(Decision("sgd", "A", ratio_interval([3.0, 2.8, 3.2]), "fails"))
"With SGD and momentum, 'almost exactly the same' is too strong"
"""

from __future__ import annotations

from typing import Any

from qatlib.experiments.records import RunRecord
from qatlib.report import claims, markup
from qatlib.report import tables as tables_lib
from qatlib.report import mnist as mnist_report
from qatlib.report import seeds

__all__ = ["HEADLINES", "headline", "convexity_check", "page"]

#: The headline of each claim's bullet, by verdict.
HEADLINES: dict[tuple[str, str], dict[str, str]] = {
    ("adam", "A"): {
        "holds": "With Adam, the STE is enough",
        "fails": "With Adam, the STE is not enough",
        "undecided": "With Adam, the seeds do not decide whether the STE is enough",
    },
    ("sgd", "A"): {
        "holds": "With SGD and momentum, M and α make the STE enough",
        "fails": "With SGD and momentum, 'almost exactly the same' is too strong",
        "undecided": "With SGD and momentum, the seeds do not decide whether M and α make the STE enough",
    },
    ("sgd", "B"): {
        "holds": "M and α matter",
        "fails": "Without M and α the nets drift no further apart",
        "undecided": "The seeds do not decide whether M and α matter",
    },
}
_NOT_TRAINED = "Some nets did not train, so the claim has no verdict"


def headline(decision: claims.Decision) -> str:
    """The bullet's headline for a decided claim."""
    if decision.verdict == "not trained":
        return _NOT_TRAINED
    if decision.verdict == "not measured":
        return "Not measured in this checkout"
    return HEADLINES[decision.optimizer, decision.claim][decision.verdict]


def convexity_check(preset: str | None = None) -> dict[str, str]:
    """The Theorems chapter's finding, measured: Q̂-net and STE-net twins (float64 softmax regression,
    the Theorems chapter's ``preset``) with the un-normalised HTGE, whose α > 1; the share of
    checked (weight, step) pairs where the per-step bound with the factor α holds, and where the
    bound as printed in the paper (without it) fails."""
    from qatlib.experiments import config, theorems, twins
    from qatlib.report import theorems as theorems_report

    cfg = config.resolve(theorems.PRESETS, preset)
    problem = twins.mnist_problem(cfg.n_examples, seed=cfg.seed)
    pair = theorems_report.pair_configs(cfg)[theorems_report.UNNORMALISED]
    summary = twins.summarize(twins.run_pair(pair, problem), pair, problem)
    holds = summary.holds >= 1.0 - 1e-12
    return {
        "thm_head": "The theorems hold where they are stated, with one correction" if holds
        else "The per-step bound fails even with the correction",
        "thm_alpha_raw": f"{summary.alpha:.1f}",
        "thm_rigorous_holds": seeds.percent_number(summary.holds, 4) + "%",
        "thm_printed_fails": seeds.percent_number(1.0 - summary.holds_printed, 2) + "%",
        "thm_checked": f"{summary.checked:,}",
    }


def page() -> seeds.Page:
    """The introduction's glued phrases and its two tables."""
    from qatlib.report.paper import paper_tables

    paper = paper_tables()
    headline_records = seeds.stored(mnist_report.ARTEFACTS["headline"])
    values: dict[str, str] = {
        **convexity_check(),
        "claim_factor": f"{claims.CLAIM_FACTOR:g}",
        "accuracy_tolerance": f"{100 * claims.ACCURACY_TOLERANCE:g}",
        "confidence": f"{100 * claims.CONFIDENCE:g}%",
    }
    glance = _headline(headline_records, paper, values)
    paper_verdicts = claims.claims(seeds.paper_metrics(paper))
    values["paper_a_sgd"] = f"{paper_verdicts['sgd']['A_ratio']:.2f}"
    setups = _setups(headline_records, paper_verdicts["sgd"]["A_ratio"], values)
    table = markup.table(
        seeds.setups_frame(setups),
        "The claims on every committed setup: the ratio over seeds (geometric mean and 95% interval) and the "
        "verdict. The ResNet50 stand-in counts for or against a claim only where its interval decides it.",
        "tab-setups",
    )
    return seeds.Page(values, {"tab-glance": glance, "tab-setups": table}, {})


def _headline(records: list[RunRecord] | None, paper: Any, values: dict[str, str]) -> Any:
    """The headline artefact's phrases into ``values`` (each claim's verdict and interval, the
    equivalent learning-rate change) and the at-a-glance table."""
    missing = seeds.MISSING
    if not records:
        values["headline_seeds"] = missing
        for key in ("a_sgd", "a_adam", "b_sgd", "accuracy_sgd", "accuracy_adam"):
            values[f"head_{key}"] = values[f"claim_{key}"] = missing
        values["lr_change_sgd"] = values["lr_change_adam"] = missing
        return markup.table(
            tables_lib.note_frame("Not in this checkout."), "The committed artefact of the paper_seeds preset is not in this checkout.", "tab-glance")
    n_seeds = len({r.seed for r in records})
    values["headline_seeds"] = str(n_seeds)
    decided = {(d.optimizer, d.claim): d for d in claims.decide_all(records)}
    for (optimizer, claim), decision in decided.items():
        key = f"{claim.lower()}_{optimizer}"
        values[f"head_{key}"] = headline(decision) if (optimizer, claim) in HEADLINES else decision.verdict
        values[f"claim_{key}"] = seeds.claim_phrase(decision)
    for optimizer in ("sgd", "adam"):
        values[f"lr_change_{optimizer}"] = seeds.lr_change_text(seeds.lr_change_interval(claims.select(records, optimizer)))
    return markup.table(
        seeds.glance_frame(records, paper),
        f"The paper's claims on its own MNIST schedule (1,000 steps of batch 600, {n_seeds} seeds): the paper's "
        f"ratio as printed, ours as the geometric mean over seeds with its {values['confidence']} interval, the "
        "learning-rate change whose Q̂-net pair drifts as far as the baseline pair, and the verdict.",
        "tab-glance",
    )


def _setups(headline_records: list[RunRecord] | None, printed: float, values: dict[str, str]) -> dict[str, Any]:
    """The other committed setups' phrases into ``values`` (the control without momentum, the
    run-length finding against the paper's ``printed`` ratio, the ResNet50 stand-in) and every
    setup's records by the name the setups table gives it."""
    nomom = seeds.stored(mnist_report.ARTEFACTS["no_momentum"])
    values["nomom_a_sgd"] = seeds.claim_phrase(claims.decide(nomom, "sgd", "A")) if nomom else seeds.MISSING_CLAIM
    lengths = mnist_report.length_setups({role: seeds.stored(mnist_report.ARTEFACTS[role]) for role in mnist_report.LENGTH_SETUPS})
    missing = {"contains": seeds.MISSING, "holds": seeds.MISSING}
    finding = mnist_report.paper_finding(lengths, printed, article="the ") if lengths else missing
    values["length_contains"], values["length_holds"] = finding["contains"], finding["holds"]
    resnet = seeds.stored("default_seeds", chapter="resnet50")
    for optimizer, claim in (("sgd", "A"), ("sgd", "B"), ("adam", "A")):
        key = f"resnet_{claim.lower()}_{optimizer}"
        values[key] = seeds.claim_phrase(claims.decide(resnet, optimizer, claim)) if resnet else seeds.MISSING_CLAIM
    return {
        "MNIST, the authors' schedule (paper_seeds)": headline_records,
        "MNIST, the same without momentum (paper_no_momentum)": nomom,
        "MNIST, 400 steps of batch 128 (default_seeds)": seeds.stored(mnist_report.ARTEFACTS["default"]),
        "MNIST, the authors' code's setup, 1,000 steps (authors_setup)": [
            r for r in (lengths.get("authors") or []) if r.steps == 1000] or None,
        "ResNet50 on MNIST at 32×32, 160 steps (default_seeds)": resnet,
    }
