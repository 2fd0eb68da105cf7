"""The chapter's sections on the training setup the paper did not try: weight decay, other
optimizers, and which kernels are quantized."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from qatlib.experiments.beyond import REFERENCE_LR
from qatlib.experiments.records import E_BAR, E_BAR_CONV
from qatlib.report import markup
from qatlib.report.beyond.analysis import format_ratio, provenance_markdown, ratio_stats, ratio_text, value_at
from qatlib.report.beyond.common import Answer, OPTIMIZER_NAMES, TITLES, RATIO_LABEL, rows_frame, sd_bars, section_frame
from qatlib.report.seeds import Page


def weight_decay(sweep: dict[str, Any], preset: str) -> tuple[Any, Answer]:
    """Section "Weight decay": a Page with the ratios of α on the learning rate and on the slope at
    the largest λ, the growth from the smallest λ and the paired ratio (``beyond_wd_*``), table
    ``tab-beyond-wd``, figure ``fig_beyond_wd`` and note ``beyond_wd_provenance``; and its answer."""
    from qatlib.report.figures import beyond as figures

    wd, source = section_frame("weight_decay", sweep, preset)
    lam = sorted(set(wd.x))
    low, high = lam[0], lam[-1]
    by_label = {"α on the learning rate": ratio_stats(wd, "baseline"), "α on the slope": ratio_stats(wd, "slope_alpha")}
    on_lr, on_slope = by_label.values()
    frame = rows_frame([{"λ": markup.short(x), **{label: ratio_text(stats, "momentum", x) for label, stats in by_label.items()}} for x in lam])
    bars = {label: sd_bars(stats, [("momentum", x) for x in lam]) for label, stats in by_label.items()}
    figure = figures.ratio_bars(
        [f"λ = {markup.short(x)}" for x in lam], {k: v[0] for k, v in bars.items()}, {k: v[1] for k, v in bars.items()},
        ylabel="Ē / Ē(1.01η)", colours={"α on the learning rate": figures.COLOURS["baseline"], "α on the slope": figures.COLOURS["slope_alpha"]},
    )
    paired = ratio_stats(wd, "slope_alpha", "baseline")
    positive = paired[paired.x > 0]
    values = {
        "beyond_wd_paired": markup.listing([format_ratio(row["mean"], row["std"]) for _, row in positive.iterrows()]),
        "beyond_wd_paired_at": markup.listing([markup.short(x) for x in positive.x]),
        "beyond_wd_on_lr_high": ratio_text(on_lr, "momentum", high),
        "beyond_wd_on_slope_high": ratio_text(on_slope, "momentum", high),
        "beyond_wd_growth": format_ratio(value_at(on_lr, "momentum", high)[0] / value_at(on_lr, "momentum", low)[0]),
        "beyond_wd_low": markup.short(low),
        "beyond_wd_high": markup.short(high),
    }
    table = markup.table(frame, "The ratio to the lr-tweak's $\\bar E$ (mean ± sd over seeds) of STE-net with α on its learning rate "
                         "and with α on its slope, against the L2 coefficient λ.", "tab-beyond-wd")
    answer = Answer(
        "With weight decay, α on the learning rate or on the slope?",
        f"Either: at λ = {markup.short(high)} the ratio is {ratio_text(on_lr, 'momentum', high)} (α on the learning rate) and "
        f"{ratio_text(on_slope, 'momentum', high)} (on the slope), against {ratio_text(on_lr, 'momentum', low)} at λ = {markup.short(low)}: "
        "the unmapped decay term matters, the placement of α hardly",
        "{numref}`fig-beyond-wd`",
    )
    notes = {"beyond_wd_provenance": provenance_markdown("weight_decay", source)}
    return Page(values, {"tab-beyond-wd": table}, {"fig_beyond_wd": figure}, notes), answer


def _optimizers_frame(op: Any, stats: Any, names: Sequence[str]):
    """Table tab-beyond-optimizers: per optimizer its recipe, Ē of the recipe and the lr-tweak, their ratio and the agreement."""
    rows = []
    for name in names:
        base = op[(op.series == name) & (op.experiment == "baseline")]
        tweak = op[(op.series == name) & (op.experiment == "lr_tweak")]
        rows.append({
            "optimizer": OPTIMIZER_NAMES[name],
            "recipe": "M, α" if name == "nesterov" else "none",
            "Ē recipe (max over seeds)": markup.number(base.E_bar.max(), 2),
            "Ē 1.01η (mean)": markup.number(tweak.E_bar.mean(), 2),
            "recipe / 1.01η": format_ratio(*value_at(stats, name, float(base.x.iloc[0]))),
            "agreement, recipe": markup.percent(base.agreement.min(), 4),
        })
    return rows_frame(rows)


def _sign_values(op: Any) -> tuple[dict[str, str], str]:
    """signSGD's check of the theory's exact prediction: the finding, how many seeds end
    bit-identical, the largest Ē and the lr-tweak's (``beyond_sign_*``), and the verdict sentence."""
    sign = op[(op.series == "signsgd") & (op.experiment == "baseline")]
    if not len(sign):
        return {"beyond_sign_identical": "n/a", "beyond_sign_max": "n/a", "beyond_sign_tweak": "n/a",
                "beyond_sign_finding": "not measured"}, "not measured"
    largest = float(sign.E_bar.max())
    tweak_mean = float(op[(op.series == "signsgd") & (op.experiment == "lr_tweak")].E_bar.mean())
    finding = "confirmed" if largest == 0 else "confirmed to float32 rounding" if largest < 1e-6 * tweak_mean else "not confirmed"
    identical = f"{int((sign.E_bar == 0).sum())} of {markup.plural(len(sign), 'seed')}"
    verdict = (f"{finding}: Q̂-net and STE-net end bit-identical in {identical}, "
               f"largest Ē {markup.number(largest)} against {markup.number(tweak_mean)} for 1.01η")
    return {"beyond_sign_identical": identical, "beyond_sign_max": markup.number(largest),
            "beyond_sign_tweak": markup.number(tweak_mean), "beyond_sign_finding": finding}, verdict


def optimizers(sweep: dict[str, Any], preset: str) -> tuple[Any, Answer]:
    """Section "Optimizers the paper did not try": a Page with signSGD's check, Lion's and Nesterov's
    ratios (``beyond_sign_*``, ``beyond_lion_ratio``, ``beyond_nesterov_ratio``), table
    ``tab-beyond-optimizers``, figure ``fig_beyond_optimizers`` and note ``beyond_op_provenance``; and its answer."""
    from qatlib.report.figures import beyond as figures

    op, source = section_frame("optimizers", sweep, preset)
    stats = ratio_stats(op, "baseline")
    names = [n for n in OPTIMIZER_NAMES if n in set(op.series)]
    means, errors = sd_bars(stats, [(n, float(op[op.series == n].x.iloc[0])) for n in names])
    figure = figures.ratio_bars([OPTIMIZER_NAMES[n] for n in names], {"baseline": means}, {"baseline": errors},
                                ylabel=RATIO_LABEL, floor=1e-4)
    values, sign_verdict = _sign_values(op)
    lion_mean = value_at(stats, "lion", REFERENCE_LR["lion"])[0]
    values["beyond_lion_ratio"] = format_ratio(lion_mean)
    values["beyond_nesterov_ratio"] = ratio_text(stats, "nesterov", REFERENCE_LR["nesterov"])
    table = markup.table(_optimizers_frame(op, stats, names), (
        "The recipe each optimizer follows, $\\bar E$ of the recipe (largest over seeds) and of the lr-tweak, their ratio "
        "(mean ± sd) and the smallest quantized-weight agreement over seeds."), "tab-beyond-optimizers")
    answer = Answer("Do sign-based optimizers need no M and no α?",
                    sign_verdict[0].upper() + sign_verdict[1:] + f"; Lion's ratio {format_ratio(lion_mean)}",
                    "{numref}`fig-beyond-optimizers`")
    notes = {"beyond_op_provenance": provenance_markdown("optimizers", source)}
    return Page(values, {"tab-beyond-optimizers": table}, {"fig_beyond_optimizers": figure}, notes), answer


def _kernels_frame(ke: Any):
    """Table tab-beyond-kernels: per (optimizer, dense kernel quantized or not) Ē of the recipe and
    its ratio to the lr-tweak's, over all quantized kernels and over the convolutions."""
    rows = []
    for (name, dense), part in ke.groupby(["series", "x"]):
        every = ratio_stats(part, "baseline")
        conv = ratio_stats(part, "baseline", column=E_BAR_CONV)
        base = part[part.experiment == "baseline"]
        rows.append({
            "optimizer": TITLES.get(name, name),
            "dense kernel": "quantized" if dense else "full precision",
            "Ē recipe, all": markup.percent(base.E_bar.mean()),
            "Ē recipe, convs": markup.percent(base.E_bar_conv.mean()),
            "ratio, all": format_ratio(float(every["mean"].iloc[0]), float(every["std"].iloc[0])),
            "ratio, convs": format_ratio(float(conv["mean"].iloc[0]), float(conv["std"].iloc[0])),
        })
    return rows_frame(rows)


def _kernels_figure(ke: Any) -> Any:
    """Figure fig-beyond-kernels: the ratio over all quantized kernels and over the convolutions per setup."""
    from qatlib.report.figures import beyond as figures

    groups, values, errors = [], {"all quantized kernels": [], "convolutions": []}, {"all quantized kernels": [], "convolutions": []}
    for (name, dense), part in ke.groupby(["series", "x"]):
        groups.append(f"{'Adam' if name == 'adam' else 'SGD, β = 0.9'}\ndense {'quantized' if dense else 'float'}")
        for label, column in (("all quantized kernels", E_BAR), ("convolutions", E_BAR_CONV)):
            stats = ratio_stats(part, "baseline", column=column)
            values[label].append(float(stats["mean"].iloc[0]))
            errors[label].append(float(np.nan_to_num(stats["std"].iloc[0])))
    return figures.ratio_bars(groups, values, errors, ylabel=RATIO_LABEL)


def kernels(sweep: dict[str, Any], preset: str) -> tuple[Any, Answer]:
    """Section "Which kernels are quantized": a Page with the ratios with the dense kernel quantized
    or in full precision (``beyond_ke_*``), table ``tab-beyond-kernels``, figure
    ``fig_beyond_kernels`` and note ``beyond_ke_provenance``; and its answer."""
    ke, source = section_frame("kernels", sweep, preset)
    by_column = {column: ratio_stats(ke, "baseline", column=column) for column in (E_BAR, E_BAR_CONV)}
    ratio = {(name, dense, column): format_ratio(value_at(stats, name, float(dense))[0])
             for column, stats in by_column.items() for name in ("momentum", "adam") for dense in (True, False)}
    values = {
        "beyond_ke_momentum_dense": ratio["momentum", True, E_BAR],
        "beyond_ke_momentum_convs": ratio["momentum", True, E_BAR_CONV],
        "beyond_ke_momentum_float": ratio["momentum", False, E_BAR],
        "beyond_ke_adam": ", ".join(ratio["adam", d, E_BAR] for d in (True, False)),
    }
    table = markup.table(_kernels_frame(ke), (
        "$\\bar E$ of the recipe over all quantized kernels and over the convolutions only, and the ratio to the lr-tweak's "
        "(mean ± sd over seeds), with the dense kernel quantized or in full precision."), "tab-beyond-kernels")
    answer = Answer(
        "Does quantizing the dense layer change the verdict?",
        f"With momentum: ratio {ratio['momentum', True, E_BAR]} with the dense kernel quantized "
        f"(convolutions alone {ratio['momentum', True, E_BAR_CONV]}), {ratio['momentum', False, E_BAR]} "
        f"in full precision; Adam {ratio['adam', True, E_BAR]} and {ratio['adam', False, E_BAR]}",
        "{numref}`fig-beyond-kernels`",
    )
    notes = {"beyond_ke_provenance": provenance_markdown("kernels", source)}
    return Page(values, {"tab-beyond-kernels": table}, {"fig_beyond_kernels": _kernels_figure(ke)}, notes), answer
