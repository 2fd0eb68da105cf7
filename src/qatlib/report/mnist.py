"""The MNIST chapter's report: everything its page shows, from the committed seeded artefacts.

:func:`chapter` reads the artefacts of :data:`ARTEFACTS` (tables and phrases through
:mod:`qatlib.report.seeds`), runs the build's own check of one committed seed, and returns the
page's glued phrases, tables and figures; the chapter itself is prose with short calls.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qatlib.experiments.records import NetId, RunRecord
from qatlib.report import artefacts, claims, seeds
from qatlib.report.seeds import (
    MISSING, Page, accuracy_frame, claim_phrase, device_text, error_frame, glance_frame, lr_change_interval,
    lr_change_text, mean_history, mirror_room_frame, paper_metrics, percent_text, ratio_text, reproduction,
    setups_frame, stored, verdict_text, yardstick_frame,
)

__all__ = ["HEADLINE", "ARTEFACTS", "CHECKED_AGAINST", "LENGTH_SETUPS", "length_setups", "lengths_frame", "length_series",
           "length_trend", "paper_finding", "chapter"]

#: The run-length setups by role (their artefacts are ``ARTEFACTS[role]``), as the pages name them.
LENGTH_SETUPS = {"lengths": "paper preset", "authors": "authors' setup"}


def length_setups(stores: dict[str, list[RunRecord] | None]) -> dict[str, list[RunRecord]]:
    """The committed run-length setups of ``stores`` (records by role), keyed by role (:data:`LENGTH_SETUPS`)."""
    return {role: stores[role] for role in LENGTH_SETUPS if stores.get(role)}


def _label(role: str, article: str = "") -> str:
    return article + LENGTH_SETUPS.get(role, role)


def _by_length(records: list[RunRecord], optimizer: str) -> dict[int, claims.Interval]:
    """Claim A's interval over seeds at each run length of ``records`` (lengths without one left out)."""
    out = {}
    for steps in sorted({r.steps for r in records}):
        value = claims.decide(records, optimizer, "A", steps).value
        if value is not None:
            out[steps] = value
    return out


def lengths_frame(setups: dict[str, list[RunRecord]]) -> Any:
    """Claim A against run length: per setup (by role, :data:`LENGTH_SETUPS`) and length, the ratio over seeds for SGD and Adam
    (Ē over all quantized kernels) and SGD's ratio of the authors' path-normalised measure."""
    import pandas as pd

    rows = []
    for role, records in setups.items():
        for steps in sorted({r.steps for r in records}):
            at = [r for r in records if r.steps == steps]
            row = {"setup": _label(role), "steps": f"{steps:,}", "seeds": str(len({r.seed for r in at}))}
            for optimizer, name in (("sgd", "A, SGD"), ("adam", "A, Adam")):
                row[name] = ratio_text(claims.decide(at, optimizer, "A").value)
            sgd = claims.select(at, "sgd")
            authors = [r.pairs["baseline"].authors_measure / r.pairs["lr_tweak"].authors_measure for r in sgd
                       if r.pairs["lr_tweak"].authors_measure]
            row["A, SGD, authors' measure"] = ratio_text(claims.ratio_interval(authors)) if authors else "–"
            rows.append(row)
    return pd.DataFrame(rows).set_index(["setup", "steps"])


# ------------------------------------------------------------------------------------ the chapter
#: The committed artefacts the chapter reads, by role.
HEADLINE = "paper_seeds"
ARTEFACTS = {
    "headline": "paper_seeds",
    "lengths": "paper_lengths",
    "authors": "authors_setup",
    "no_momentum": "paper_no_momentum",
    "default": "default_seeds",
    "default_no_momentum": "sgd_no_momentum_seeds",
    "phase": "level_centred_control",
    "gpu": "paper_gpu",
    "quick": "quick_seeds",
}
#: The committed artefact a preset's build run is checked against (its seeded twin).
CHECKED_AGAINST = {"quick": "quick_seeds", "default": "default_seeds", "paper": "paper_seeds", "sgd_no_momentum": "sgd_no_momentum_seeds"}


def length_series(setups: dict[str, list[RunRecord]], optimizer: str) -> dict[str, dict[int, claims.Interval]]:
    """Claim A's interval at each run length of each setup (by role), for the figure (by label)."""
    series = {_label(role): _by_length(records, optimizer) for role, records in setups.items()}
    return {label: by_steps for label, by_steps in series.items() if by_steps}


def _settings(names: list[tuple[str, int]], article: str) -> str:
    """'the authors' setup at 100 and 300 steps; ...' from (role, steps) pairs, grouped by setup."""
    grouped: dict[str, list[str]] = {}
    for role, steps in names:
        grouped.setdefault(_label(role, article), []).append(f"{steps:,}")
    return "; ".join(f"{label} at {' and '.join(steps)} steps" for label, steps in grouped.items())


def paper_finding(setups: dict[str, list[RunRecord]], printed: float, article: str = "") -> dict[str, str]:
    """In how many (setup, length) settings the SGD claim-A interval contains the paper's printed
    ratio (``"contains"``), and in how many the claim holds, its interval at most the threshold
    (``"holds"``); each with the settings named (``article`` before each setup's name).
    :data:`MISSING` where nothing has 2 seeds."""
    containing, holding, total = [], [], 0
    for role, records in setups.items():
        for steps, value in _by_length(records, "sgd").items():
            if value.n < 2:
                continue
            total += 1
            if value.contains(printed):
                containing.append((role, steps))
            if value.high <= claims.CLAIM_FACTOR:
                holding.append((role, steps))
    if not total:
        return {"contains": MISSING, "holds": MISSING}
    return {
        "contains": f"{len(containing)} of {total} settings" + (f" ({_settings(containing, article)})" if containing else ""),
        "holds": f"{len(holding)} of {total}" + (f" ({_settings(holding, article)})" if holding else ""),
    }


def length_trend(setups: dict[str, list[RunRecord]], optimizer: str = "sgd") -> dict[str, str]:
    """How claim A's ratio moves from each setup's shortest run to its longest (by role:
    "falls from 5.40 at 100 steps to 3.35 at 1,000"), and whether the setups' intervals at their
    longest common length (``"longest"``) overlap (``"overlap"``), so that the setup alone cannot
    explain a difference there."""
    series = {role: _by_length(records, optimizer) for role, records in setups.items()}
    series = {role: by_steps for role, by_steps in series.items() if by_steps}
    out = {"overlap": MISSING, "longest": MISSING}
    for role, by_steps in series.items():
        if len(by_steps) > 1:
            (first, a), (last, b) = min(by_steps.items()), max(by_steps.items())
            out[role] = f"{'rises' if b.mean > a.mean else 'falls'} from {a.mean:.2f} at {first:,} steps to {b.mean:.2f} at {last:,}"
    common = set.intersection(*(set(by_steps) for by_steps in series.values())) if len(series) > 1 else set()
    if common:
        at = [by_steps[max(common)] for by_steps in series.values()]
        out["longest"] = f"{max(common):,}"
        out["overlap"] = "overlap" if max(v.low for v in at) <= min(v.high for v in at) else "do not overlap"
    return out


def _run_summary(records: list[RunRecord] | None, provenance: dict[str, Any] | None) -> dict[str, str]:
    """How the headline artefact was made: runs, seeds, nets per seed, device, wall time, commit."""
    if not records or provenance is None:
        return dict.fromkeys(("mnist_headline_runs", "mnist_headline_seeds", "mnist_headline_nets", "mnist_headline_device",
                              "mnist_headline_hours", "mnist_headline_commit"), MISSING)
    nets = sum(len(r.nets) for r in records if r.seed == records[0].seed)
    return {
        "mnist_headline_runs": f"{len(records)}",
        "mnist_headline_seeds": f"{len({r.seed for r in records})}",
        "mnist_headline_nets": f"{nets}",
        "mnist_headline_device": device_text(provenance),
        "mnist_headline_hours": artefacts.duration(provenance["seconds"]),
        "mnist_headline_commit": (provenance.get("git_commit") or "unknown")[:7],
    }


def _constants(run: Any, printed: dict[str, dict[str, float]]) -> dict[str, str]:
    """The phrases that do not depend on the seeds: α and the spread of Q̂' across a bin (from this
    build's run), the claims' thresholds and the paper's own ratios ``printed`` (paper Table 4)."""
    alphas = sorted({round(a, 4) for a in run.records[0].alpha.values()})
    layer_q = next(iter(run.layer_quantizers().values()))
    grid = np.linspace(-layer_q.delta / 2, layer_q.delta / 2, 2001)
    slope = np.asarray(run.estimator.derivative(grid, layer_q))
    return {
        "mnist_alpha": ", ".join(f"{a:.4f}" for a in alphas),
        "mnist_qhat_spread": f"{slope.max() / slope.min():.1f}",
        "mnist_claim_factor": f"{claims.CLAIM_FACTOR:g}",
        "mnist_accuracy_tolerance": f"{100 * claims.ACCURACY_TOLERANCE:g}",
        "mnist_confidence": f"{100 * claims.CONFIDENCE:g}%",
        "mnist_paper_a_sgd": f"{printed['sgd']['A_ratio']:.2f}",
        "mnist_paper_a_adam": f"{printed['adam']['A_ratio']:.2f}",
        "mnist_paper_b": f"{printed['sgd']['B_ratio']:.2f}",
    }


_HEADLINE_TABLES = ("tab-mnist-glance", "tab-mnist-error", "tab-mnist-yardstick", "tab-mnist-accuracy", "tab-mnist-mirror-room")


def _headline_values(records: list[RunRecord]) -> dict[str, str]:
    """The verdict phrases and yardsticks of the headline artefact, per optimizer and claim."""
    values: dict[str, str] = {}
    for decision in claims.decide_all(records):
        values[f"mnist_{decision.claim.lower()}_{decision.optimizer}"] = claim_phrase(decision)
        values[f"mnist_{decision.claim.lower()}_{decision.optimizer}_verdict"] = verdict_text(decision)
    for optimizer in ("sgd", "adam"):
        chosen = claims.select(records, optimizer)
        values[f"mnist_lr_change_{optimizer}"] = lr_change_text(lr_change_interval(chosen))
        values[f"mnist_floor_{optimizer}"] = percent_text(seeds.pair_interval(chosen, "rounding", lambda p: p.E_bar))
        values[f"mnist_base_{optimizer}"] = percent_text(seeds.pair_interval(chosen, "baseline", lambda p: p.E_bar))
        values[f"mnist_agreement_{optimizer}"] = percent_text(seeds.pair_interval(chosen, "baseline", lambda p: p.agreement, ratio=False), 4, at_most=1.0)
        values[f"mnist_q_acc_{optimizer}"] = percent_text(claims.difference_interval([r.nets["q_net"].val_acc for r in chosen]), 4, at_most=1.0)
    rooms = [room for r in claims.select(records, "sgd") if (room := r.pairs["baseline"].mirror_room) is not None]
    values["mnist_room_same"] = percent_text(claims.difference_interval([m["same_sequence_among_moving"] for m in rooms]), 3, at_most=1.0) if rooms else MISSING
    return values


def _headline_page(headline: list[RunRecord] | None, paper: dict[str, Any], run: Any, seed_count: str, confidence: str) -> Page:
    """The verdicts on the authors' schedule over seeds (:data:`HEADLINE`): phrases, paper Tables 3-5
    over seeds, the yardsticks, the mirror room and the error curves; placeholders where the
    artefact is absent (the curves then come from this build's run)."""
    from qatlib.report import markup
    from qatlib.report.figures import training as training_plots

    values = {"mnist_" + (key.format(optimizer) if "{}" in key else f"{key}_{optimizer}"): MISSING
              for optimizer in ("sgd", "adam")
              for key in ("a", "accuracy", "a_{}_verdict", "accuracy_{}_verdict", "lr_change", "floor", "base", "agreement", "q_acc")}
    values.update(mnist_b_sgd=MISSING, mnist_b_sgd_verdict=MISSING, mnist_room_same=MISSING)
    if not headline:
        curves = training_plots.error_curves(mean_history(run.records), paper["table4"]["mnist"])
        return Page(values, {name: seeds.missing_table(name) for name in _HEADLINE_TABLES}, {"fig_mnist_error_curves": curves})
    values.update(_headline_values(headline))
    captions = {
        "tab-mnist-glance": (
            f"The claims on the authors' schedule ({HEADLINE}: 1,000 steps of batch 600, {seed_count} seeds): "
            f"the paper's ratio, ours as the geometric mean over seeds with its {confidence} interval, "
            "the learning-rate change whose Q̂-net pair drifts as far as the baseline pair, and the verdict."),
        "tab-mnist-error": (
            "Paper Table 4 over seeds: Ē at the end of training (percent of the range) over all quantized kernels "
            "and over the convolution kernels, the authors' path-normalised measure, and the quantized weight "
            "agreement; each the geometric (Ē) or arithmetic (agreement) mean over seeds with its 95% interval."),
        "tab-mnist-yardstick": (
            "Yardsticks of the baseline pair (percent of the range, over seeds): Q̂-net against its rounding twin, "
            "against Q̂-nets at learning rates 0.1%, 1% and 10% higher, the baseline pair itself, and the "
            "learning-rate change a power law through the three lr-tweak pairs puts at the baseline's Ē."),
        "tab-mnist-accuracy": (
            "Paper Table 5 over seeds: test and training accuracy (± the half-width of the 95% interval) and "
            "test loss of STE-net and Q̂-net, and Q̂-net − STE-net in test accuracy."),
        "tab-mnist-mirror-room": (
            "The mirror room over seeds: of the tracked weights that changed level in either net (moved, mean over "
            "seeds), the share that visit the same sequence of levels in both nets, and the mean number of steps "
            "between paired crossings."),
    }
    frames = {"tab-mnist-glance": glance_frame(headline, paper), "tab-mnist-error": error_frame(headline, paper),
              "tab-mnist-yardstick": yardstick_frame(headline), "tab-mnist-accuracy": accuracy_frame(headline),
              "tab-mnist-mirror-room": mirror_room_frame(headline)}
    tabs = {name: markup.table(frames[name], captions[name], name) for name in _HEADLINE_TABLES}
    return Page(values, tabs, {"fig_mnist_error_curves": training_plots.error_curves(mean_history(headline), paper["table4"]["mnist"])})


def _setups_page(stores: dict[str, list[RunRecord] | None]) -> Page:
    """The controls and other setups, each over its own seeds: their table, their claim phrases and
    how many of the GPU run's claims on Ē fall inside the CPU seeds' intervals."""
    from qatlib.report import markup

    headline = stores["headline"]
    setups = {
        "authors' schedule (paper_seeds)": headline,
        "the same without momentum (paper_no_momentum)": stores["no_momentum"],
        "400 steps of batch 128 (default_seeds)": stores["default"],
        "the same without momentum (sgd_no_momentum_seeds)": stores["default_no_momentum"],
        "400 steps, level-centred Q̂' (level_centred_control)": stores["phase"],
        "authors' schedule on a GPU (paper_gpu)": stores["gpu"],
    }
    table = markup.table(setups_frame(setups), (
        "The claims on each committed setup: ratio over seeds (geometric mean and 95% interval) and verdict; "
        "one seed gives no interval, so no verdict."), "tab-mnist-setups")
    values: dict[str, str] = {}
    for key, role in (("nomom", "no_momentum"), ("default", "default"), ("default_nomom", "default_no_momentum"), ("phase", "phase"), ("gpu", "gpu")):
        records = stores[role]
        values[f"mnist_{key}_a_sgd"] = claim_phrase(claims.decide(records, "sgd", "A")) if records else seeds.MISSING_CLAIM
        values[f"mnist_{key}_b"] = claim_phrase(claims.decide(records, "sgd", "B")) if records else seeds.MISSING_CLAIM
    values["mnist_gpu_inside"] = MISSING
    if stores["gpu"] and headline:
        inside = [f"{claim} ({optimizer})" for optimizer, claim in claims.CLAIMS[:3]
                  if (g := claims.decide(stores["gpu"], optimizer, claim).value) is not None
                  and (h := claims.decide(headline, optimizer, claim).value) is not None and h.n > 1 and h.contains(g.mean)]
        values["mnist_gpu_inside"] = f"{len(inside)} of 3"
    return Page(values, {"tab-mnist-setups": table}, {})


_LENGTH_VALUES = ("mnist_length_contains", "mnist_length_holds", "mnist_trend_paper", "mnist_trend_authors", "mnist_trend_overlap", "mnist_trend_longest")


def _lengths_page(stores: dict[str, list[RunRecord] | None], printed: float, run: Any) -> Page:
    """Claim A against run length in this book's setup and the authors' (:func:`lengths_frame`,
    :func:`paper_finding` against the paper's ``printed`` ratio); this build's run where neither
    artefact is committed."""
    from qatlib.report import markup
    from qatlib.report.figures import seeds as seed_plots

    setups = length_setups(stores)
    if not setups:
        figure = seed_plots.ratio_against_length({"SGD + momentum": length_series({"this build": run.records}, "sgd")}, threshold=claims.CLAIM_FACTOR)
        return Page(dict.fromkeys(_LENGTH_VALUES, MISSING), {"tab-mnist-lengths": seeds.missing_table("tab-mnist-lengths")}, {"fig_mnist_lengths": figure})
    table = markup.table(lengths_frame(setups), (
        "Claim A against run length, in this book's setup (paper_lengths: Chollet's net, all kernels quantized, "
        "HTGE 5.5/w_max, α on the learning rate) and the authors' code's (authors_setup: the Flax example's CNN, "
        "conv kernels quantized, HTGE 6.5/w_max, α on the slope); each length its own warm-up + cosine "
        "schedule; ratio over seeds with its 95% interval, on Ē and, for SGD, on the authors' measure."), "tab-mnist-lengths")
    figure = seed_plots.ratio_against_length(
        {"SGD + momentum": length_series(setups, "sgd"), "Adam": length_series(setups, "adam")},
        threshold=claims.CLAIM_FACTOR, paper=printed)
    finding, trend = paper_finding(setups, printed), length_trend(setups)
    values = {"mnist_length_contains": finding["contains"], "mnist_length_holds": finding["holds"],
              "mnist_trend_paper": trend.get("lengths", MISSING), "mnist_trend_authors": trend.get("authors", MISSING),
              "mnist_trend_overlap": trend["overlap"], "mnist_trend_longest": trend["longest"]}
    return Page(values, {"tab-mnist-lengths": table}, {"fig_mnist_lengths": figure})


def _build_figures(run: Any) -> dict[str, Any]:
    """The figures that need weights, from this build's run: Q̂' and its STE partner per layer, and
    the alignment of the two nets' weights."""
    from qatlib.report.figures import training as training_plots
    from qatlib.training.recipe import ste_partner

    def final(net: NetId) -> Any:
        return run.params[net.name]

    if "sgd" in run.config.optimizers:
        panels = [("(a) baseline (SGD)", final(NetId("sgd", "q_net")), final(NetId("sgd", "ste_net")), run.estimator),
                  ("(b) unadjusted (SGD)", final(NetId("sgd", "q_net")), final(NetId("sgd", "ste_net_unadjusted")), None)]
    else:
        panels = [("baseline (Adam)", final(NetId("adam", "q_net")), final(NetId("adam", "ste_net")), None)]
    return {
        "fig_mnist_derivative": training_plots.derivative_per_layer(run.layer_quantizers(), run.estimator, ste_partner(run.estimator, run.quantizers)),
        "fig_mnist_alignment": training_plots.alignment_scatter(panels, run.quantizers),
    }


def chapter(config: Any, preset: str) -> Page:
    """Everything the MNIST chapter shows: the committed seeded artefacts (:data:`ARTEFACTS`), and
    this build's own run of ``config``'s first seed as a reproduction check and for the figures
    that need weights."""
    from qatlib.report import markup, measure, tables
    from qatlib.report.paper import paper_tables

    paper = paper_tables()
    stores = {role: stored(name) for role, name in ARTEFACTS.items()}
    head_path = artefacts.metrics_path("mnist", HEADLINE)
    head_provenance = artefacts.read_json(head_path)["provenance"] if head_path.is_file() else None
    run = measure.check_mnist(config)
    values: dict[str, str] = {"mnist_preset": preset, "mnist_build_steps": f"{run.config.steps:,}", "mnist_build_seed": str(run.seed),
                              "mnist_check": reproduction(run.records, stored(CHECKED_AGAINST.get(preset, preset))),
                              "mnist_check_against": CHECKED_AGAINST.get(preset, preset)}
    values.update(_run_summary(stores["headline"], head_provenance))
    printed = claims.claims(paper_metrics(paper))
    values.update(_constants(run, printed))
    paper5 = markup.table(tables.paper_table5_frame(paper["table5"]["mnist"]),
                          "The paper's MNIST accuracy and loss (the left half of paper Table 5), as printed, its Diff rows included.",
                          "tab-mnist-accuracy-paper")
    return Page.merge([
        Page(values, {}, {}),
        _headline_page(stores["headline"], paper, run, values["mnist_headline_seeds"], values["mnist_confidence"]),
        Page({}, {"tab-mnist-accuracy-paper": paper5}, _build_figures(run)),
        _setups_page(stores),
        _lengths_page(stores, printed["sgd"]["A_ratio"], run),
    ])
