"""The chapter's learning-rate and momentum sections (Ē's order in η, where the recipe breaks, and
whether momentum changes the order or the constant)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


from qatlib.experiments.beyond import REFERENCE_LR
from qatlib.experiments.records import SweepRecord
from qatlib.report import artefacts, markup
from qatlib.report.beyond.analysis import EXPERIMENT_LABELS, Source, breaking_points, format_ratio, momentum_finding, momentum_verdict, order_verdict, pair_history, pairs_frame, preset_source, provenance_markdown, quick_ratios, ratio_stats, ratio_text, section_source, slope_summary, slope_text, value_at
from qatlib.report.beyond.common import Answer, TITLES, rows_frame
from qatlib.report.seeds import Page


def _lr_runs(sweep: dict[str, Any], preset: str) -> tuple[list[SweepRecord], str]:
    """The learning-rate section's runs (the committed sweep continued to 1000× the reference by
    ``learning_rate_large`` where both are committed) and their provenance line."""
    source = section_source("learning_rate", sweep, preset)
    large = preset_source("learning_rate_large", sweep, preset)
    provenance = provenance_markdown("learning_rate", source)
    runs = source.runs
    if preset == "learning_rate_large":
        provenance = provenance_markdown("learning_rate_large", large)
    elif source.origin == "the committed artefact" and large is not None:
        runs = runs + large.runs
        provenance += " " + provenance_markdown("learning_rate_large", large)
    return runs, provenance


def _lr_frame(series: Sequence[str], slope_table: Any, breaks: Any, ratio: Any, reference: dict[str, float]):
    """Table tab-beyond-lr: per optimizer the slopes, the ratio at the reference η and the breaking points."""
    rows = []
    for name in series:
        b = breaks[breaks.series == name].iloc[0]
        rows.append({
            "optimizer": TITLES[name],
            "slope, recipe": slope_text(slope_table, name, "baseline"),
            "slope, 1.01η": slope_text(slope_table, name, "lr_tweak"),
            "slope, no M/α": slope_text(slope_table, name, "unadjusted") if name != "adam" else "–",
            "ratio at reference η": ratio_text(ratio, name, reference[name]),
            "ratio > 1 from": "never" if math.isnan(b.ratio_above_1) else f"{markup.short(b.ratio_above_1 / reference[name])}× ref.",
            "training breaks at": "not in sweep" if math.isnan(b.training_breaks) else f"{markup.short(b.training_breaks / reference[name])}× ref.",
        })
    return rows_frame(rows)


def _lr_ends(lr: Any, reference: dict[str, float]) -> dict[str, str]:
    """The unadjusted STE-net's Ē over the recipe's at the sweep's smallest and largest η, and those
    η relative to the reference (``beyond_lr_unadj_{low,high}_*``, ``beyond_lr_{low,high}_*``)."""
    unadjusted = ratio_stats(lr, "unadjusted", "baseline")
    values = {}
    for name in ("sgd", "momentum"):
        part = unadjusted[unadjusted.series == name].sort_values("x")
        values[f"beyond_lr_unadj_low_{name}"] = format_ratio(float(part["mean"].iloc[0])) if len(part) else "n/a"
        values[f"beyond_lr_unadj_high_{name}"] = format_ratio(float(part["mean"].iloc[-1])) if len(part) else "n/a"
        values[f"beyond_lr_low_{name}"] = markup.short(part.x.iloc[0] / reference[name]) if len(part) else "n/a"
        values[f"beyond_lr_high_{name}"] = markup.short(part.x.iloc[-1] / reference[name]) if len(part) else "n/a"
    return values


def _lr_breaks(breaks: Any, reference: dict[str, float]) -> dict[str, str]:
    """Where Q̂-net's training breaks and where the ratio exceeds 1, per optimizer, as two phrases."""
    def at(x: float, none: str) -> str:
        return none if math.isnan(x) else "from " + markup.short(x) + "× the reference"

    return {
        "beyond_lr_breaks": "; ".join(f"{TITLES[b.series]} {at(b.training_breaks / reference[b.series], 'never in the sweep')}"
                                      for b in breaks.itertuples()),
        "beyond_lr_above": "; ".join(f"{TITLES[b.series]} {at(b.ratio_above_1 / reference[b.series], 'never')}"
                                     for b in breaks.itertuples()),
    }


def learning_rate(sweep: dict[str, Any], preset: str) -> tuple[Any, Answer]:
    """Section "Learning rate": a Page with the slopes, ratios and breaking points (``beyond_lr_*``),
    table ``tab-beyond-lr``, figure ``fig_beyond_lr`` and note ``beyond_lr_provenance``; and its answer."""
    from qatlib.report.figures import beyond as figures

    runs, provenance = _lr_runs(sweep, preset)
    lr = pairs_frame(runs)
    lr = lr[lr.section == "learning_rate"]
    series = [name for name in ("sgd", "momentum", "adam") if name in set(lr.series)]
    slope_table = slope_summary(lr, ["baseline", "lr_tweak", "unadjusted"], x_max=REFERENCE_LR)
    breaks = breaking_points(lr, reference=REFERENCE_LR)
    ratio = ratio_stats(lr, "baseline")
    order = order_verdict(slope_table)
    values = {"beyond_lr_order": order}
    for name in ("sgd", "momentum", "adam"):
        values[f"beyond_lr_slope_{name}"] = slope_text(slope_table, name, "baseline")
        values[f"beyond_lr_tweak_slope_{name}"] = slope_text(slope_table, name, "lr_tweak")
        values[f"beyond_lr_ratio_{name}"] = ratio_text(ratio, name, REFERENCE_LR[name])
    fresh = pairs_frame(artefacts.sweep_records(sweep))
    values["beyond_lr_quick"] = quick_ratios(fresh[fresh.section == "learning_rate"], "learning_rate", TITLES, "η")
    values.update(_lr_ends(lr, REFERENCE_LR))
    values.update(_lr_breaks(breaks, REFERENCE_LR))
    table = markup.table(_lr_frame(series, slope_table, breaks, ratio, REFERENCE_LR), (
        "Slopes of $\\log \\bar E$ against $\\log\\eta$ (mean ± sd over seeds, fitted over η ≤ the reference), the ratio "
        "$\\bar E(\\text{recipe})/\\bar E(1.01\\eta)$ at the reference η, the smallest η at which that ratio exceeds 1, and "
        "the smallest η above the reference at which Q̂-net's test accuracy falls below half its best (or diverges)."), "tab-beyond-lr")
    answer = Answer(
        "Is the recipe's error second order in η?",
        f"Slope of log Ē(recipe) against log η up to the paper's η: plain SGD {values['beyond_lr_slope_sgd']}, Adam {values['beyond_lr_slope_adam']} "
        f"(a 1% learning-rate change: {values['beyond_lr_tweak_slope_sgd']}, {values['beyond_lr_tweak_slope_adam']}); momentum 0.9: {values['beyond_lr_slope_momentum']}, "
        f"{'the same order as' if order.startswith('the same') else 'a different order from'} plain SGD, and {values['beyond_lr_ratio_momentum']} times the lr-tweak's Ē at the paper's η",
        "{numref}`fig-beyond-lr`",
    )
    figure = figures.learning_rate(lr, series, TITLES, REFERENCE_LR)
    return Page(values, {"tab-beyond-lr": table}, {"fig_beyond_lr": figure}, {"beyond_lr_provenance": provenance}), answer


def momentum(sweep: dict[str, Any], preset: str) -> tuple[Any, Answer]:
    """Section "Momentum": a Page with the diagnostic's and the recipe's ratios at β = 0.9 (or the
    largest β swept) and the finding (``beyond_momentum_*``), table ``tab-beyond-momentum``, figure
    ``fig_beyond_momentum`` and note ``beyond_momentum_provenance``; and its answer."""
    from qatlib.report.figures import beyond as figures

    source = section_source("momentum", sweep, preset)
    mo = pairs_frame(source.runs)
    mo = mo[(mo.section == "momentum") & (mo.series == "sgd")]
    betas = sorted(set(mo.x))
    beta_show = 0.9 if 0.9 in betas else betas[-1]
    figure = figures.momentum(mo, pair_history(source.runs, "momentum", beta_show, ["baseline", "diagnostic", "lr_tweak"]))
    base, diag, unadjusted = (ratio_stats(mo, experiment) for experiment in ("baseline", "diagnostic", "unadjusted"))
    frame = rows_frame([
        {
            "β": f"{beta:g}",
            "η": markup.number(1e-2 * (1 - beta), 1),
            "recipe / 1.01η": ratio_text(base, "sgd", beta),
            "diagnostic / 1.01η": ratio_text(diag, "sgd", beta),
            "no M, α / 1.01η": ratio_text(unadjusted, "sgd", beta),
        }
        for beta in betas
    ])
    fresh = pairs_frame(artefacts.sweep_records(sweep))
    values = {
        "beyond_momentum_finding": momentum_finding(base, diag, beta_show),
        "beyond_momentum_diag": ratio_text(diag, "sgd", beta_show),
        "beyond_momentum_base": ratio_text(base, "sgd", beta_show),
        "beyond_momentum_beta": f"{beta_show:g}",
        "beyond_momentum_quick": quick_ratios(fresh[fresh.section == "momentum"], "momentum", {"sgd": "SGD"}, "β", "diagnostic"),
    }
    table = markup.table(frame, "The ratio to the lr-tweak's $\\bar E$ (mean ± sd over seeds) against momentum β at a fixed step size "
                         "$\\eta/(1-\\beta) = 10^{-2}$.", "tab-beyond-momentum")
    verdict = momentum_verdict(base, diag, beta_show)
    answer = Answer("Does the momentum lag cause the gap?", verdict[0].upper() + verdict[1:], "{numref}`fig-beyond-momentum`")
    notes = {"beyond_momentum_provenance": provenance_markdown("momentum", source)}
    return Page(values, {"tab-beyond-momentum": table}, {"fig_beyond_momentum": figure}, notes), answer


_ETA_CAPTION = ("At momentum 0.9, the slope of $\\log\\bar E$ against $\\log\\eta$ (mean ± sd over seeds, η from 1/100 of the "
                "paper's $10^{-3}$ up to it, 200 steps) for the recipe, the diagnostic and the lr-tweak, and the ratio to the "
                "lr-tweak at both ends.")


def _eta_frame(eta: Any, slopes_by_experiment: Any, reference: float):
    """Table tab-beyond-momentum-eta: per pair, its slope against η and its ratio to the lr-tweak at both ends."""
    rows = []
    for experiment in ("baseline", "diagnostic", "lr_tweak"):
        row = slopes_by_experiment.loc[experiment]
        stats = ratio_stats(eta, experiment) if experiment != "lr_tweak" else None
        rows.append({
            "pair": EXPERIMENT_LABELS[experiment],
            "slope of log Ē vs log η": f"{float(row['mean']):.2f} ± {float(row['std']):.2f}",
            "ratio to 1.01η at 1/100 of η": ratio_text(stats, "eta", float(eta.x.min())) if stats is not None else "1",
            "ratio to 1.01η at the paper's η": ratio_text(stats, "eta", reference) if stats is not None else "1",
        })
    return rows_frame(rows)


def _eta_missing() -> Any:
    """The order-or-constant paragraph's Page when neither a ``momentum_lr`` artefact nor a quick run exists."""
    empty = rows_frame([{"pair": "not measured", "slope of log Ē vs log η": "", "ratio to 1.01η at 1/100 of η": "",
                     "ratio to 1.01η at the paper's η": ""}])
    values = dict.fromkeys(("beyond_eta_recipe_slope", "beyond_eta_diag_slope", "beyond_eta_constant_low",
                            "beyond_eta_constant_ref", "beyond_eta_verdict"), "not measured")
    notes = {"beyond_eta_provenance": "Not measured: no `momentum_lr` artefact and no quick run of it."}
    return Page(values, {"tab-beyond-momentum-eta": markup.table(empty, _ETA_CAPTION, "tab-beyond-momentum-eta")}, {}, notes)


def momentum_eta(sweep: dict[str, Any], preset: str) -> Any:
    """Section "Momentum", order or constant (preset ``momentum_lr``, else this page's quick runs of
    that series): a Page with the recipe's and the diagnostic's slopes against η at β = 0.9, the
    recipe's Ē over the diagnostic's at both ends of η and the verdict (``beyond_eta_*``), table
    ``tab-beyond-momentum-eta`` and note ``beyond_eta_provenance``."""
    found = preset_source("momentum_lr", sweep, preset)
    if found is None:
        found = Source([run for run in artefacts.sweep_records(sweep) if run.section == "momentum" and run.series == "eta"],
                       sweep["provenance"], "this page's quick run")
    eta = pairs_frame(found.runs) if found.runs else None
    if eta is None or not len(eta):
        return _eta_missing()
    eta = eta[eta.series == "eta"]
    reference = REFERENCE_LR["momentum"]
    slopes_by = slope_summary(eta, ["baseline", "diagnostic", "lr_tweak"], x_max=reference).set_index("experiment")
    constant = ratio_stats(eta, "baseline", "diagnostic")
    low, _ = value_at(constant, "eta", float(eta.x.min()))
    ref, _ = value_at(constant, "eta", reference)
    shift = float(slopes_by.loc["diagnostic", "mean"] - slopes_by.loc["baseline", "mean"])
    values = {
        "beyond_eta_recipe_slope": f"{float(slopes_by.loc['baseline', 'mean']):.2f} ± {float(slopes_by.loc['baseline', 'std']):.2f}",
        "beyond_eta_diag_slope": f"{float(slopes_by.loc['diagnostic', 'mean']):.2f} ± {float(slopes_by.loc['diagnostic', 'std']):.2f}",
        "beyond_eta_constant_low": format_ratio(low),
        "beyond_eta_constant_ref": format_ratio(ref),
        "beyond_eta_verdict": (f"momentum's lag mostly multiplies the error (the constant) and lowers its order only by {shift:.2f}"
                               if abs(shift) < 0.25 and min(low, ref) > 2 else
                               f"momentum's lag changes the order of the error (the diagnostic's slope differs by {shift:+.2f})"),
    }
    table = markup.table(_eta_frame(eta, slopes_by, reference), _ETA_CAPTION, "tab-beyond-momentum-eta")
    notes = {"beyond_eta_provenance": provenance_markdown("momentum_lr", found)}
    return Page(values, {"tab-beyond-momentum-eta": table}, {}, notes)
