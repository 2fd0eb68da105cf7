"""The sweep artefacts of the chapter "When is the STE enough?" as tables, ratios, slopes and phrases.

A sweep artefact (:func:`qatlib.report.measure.measure_beyond`) lists runs; each run holds, per
pair of nets, Ē (Eq. 5 normalised by the layer's range, with E⁽⁰⁾ = 0) over all quantized kernels
and over the convolutions, and the quantized-weight agreement. Here they become one table
(:func:`pairs_frame`), ratios per seed (:func:`ratios`), log-log slopes per seed (:func:`slopes`),
breaking points (:func:`breaking_points`), verdict phrases and each section's source (the page's
own sweep or the committed artefact). Nothing here trains a net.

>>> runs = [SweepRecord.from_json({"section": "s", "series": "sgd", "x": x, "seed": 0, "spec": {}, "nets": {"q_net": {"val_acc": 0.9}},
...          "pairs": {"baseline": {"E_bar": x ** 2, "E_bar_conv": x ** 2, "agreement": 1.0},
...                    "lr_tweak": {"E_bar": x, "E_bar_conv": x, "agreement": 1.0}}}) for x in (0.1, 1.0)]
>>> frame = pairs_frame(runs)
>>> round(float(slopes(frame, "baseline", x_max=1.0)["slope"].iloc[0]), 6)
2.0
>>> [round(float(v), 3) for v in ratios(frame, "baseline", "lr_tweak")["ratio"]]
[0.1, 1.0]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from qatlib.experiments.records import AGREEMENT, E_BAR, E_BAR_CONV, E_BAR_MAPPED_SCALE, NetRecord, SweepRecord
from qatlib.report import artefacts, markup

# The figures (qatlib.report.figures.beyond) import this module, so the functions below import them.

__all__ = [
    "EXPERIMENT_LABELS",
    "pairs_frame",
    "nets_frame",
    "ratios",
    "summarise",
    "slopes",
    "slope_summary",
    "breaking_points",
    "format_ratio",
    "pair_history",
    "ratio_stats",
    "value_at",
    "ratio_text",
    "momentum_verdict",
    "momentum_finding",
    "bits_finding",
    "order_verdict",
    "Source",
    "preset_source",
    "section_source",
    "provenance_markdown",
    "quick_ratios",
    "slope_text",
]


EXPERIMENT_LABELS = {
    "baseline": "Q̂-net vs STE-net (the recipe)",
    "lr_tweak": "Q̂-net vs Q̂-net at 1.01η",
    "unadjusted": "Q̂-net vs STE-net without M, α",
    "diagnostic": "diagnostic Q̂-net vs STE-net",
    "slope_alpha": "Q̂-net vs STE-net, α on the slope",
}


def _number(value: Any) -> float:
    return float("nan") if value is None else float(value)


def pairs_frame(runs: Sequence[SweepRecord]):
    """One row per (run, pair): section, series, x, seed, experiment, E_bar, E_bar_conv, agreement,
    E_bar_mapped_scale (Ē in STE-net's coordinates; = E_bar where M fixes the range's ends), q_acc."""
    import pandas as pd

    rows = []
    for run in runs:
        q_acc = _number(run.nets.get("q_net", NetRecord()).val_acc)
        for experiment, pair in run.pairs.items():
            mapped_scale = pair.E_bar_mapped_scale if pair.E_bar_mapped_scale is not None else pair.E_bar
            rows.append({
                "section": run.section, "series": run.series, "x": float(run.x), "seed": int(run.seed),
                "experiment": experiment, E_BAR: _number(pair.E_bar), E_BAR_CONV: _number(pair.E_bar_conv),
                AGREEMENT: _number(pair.agreement), E_BAR_MAPPED_SCALE: _number(mapped_scale), "q_acc": q_acc,
            })
    return pd.DataFrame(rows)


def nets_frame(runs: Sequence[SweepRecord]):
    """One row per (run, net): section, series, x, seed, role, val_acc, train_loss, finite."""
    import pandas as pd

    return pd.DataFrame([
        {"section": run.section, "series": run.series, "x": float(run.x), "seed": int(run.seed), "role": role,
         "val_acc": _number(net.val_acc), "train_loss": _number(net.train_loss), "finite": bool(net.finite)}
        for run in runs for role, net in run.nets.items()
    ])


def ratios(frame: Any, numerator: str, denominator: str, column: str = E_BAR):
    """Per (series, x, seed): ``column`` of experiment ``numerator`` over that of ``denominator``."""
    keys = ["series", "x", "seed"]
    top = frame[frame.experiment == numerator].set_index(keys)[column]
    bottom = frame[frame.experiment == denominator].set_index(keys)[column]
    out = (top / bottom).rename("ratio").reset_index()
    return out.sort_values(keys).reset_index(drop=True)


def summarise(values: Any, by: Sequence[str] = ("series", "x"), column: str = "ratio"):
    """Mean, standard deviation (over seeds, ddof 1), min, max and count of ``column`` per group."""
    grouped = values.groupby(list(by))[column]
    out = grouped.agg(["mean", "std", "min", "max", "count"]).reset_index()
    return out


def slopes(frame: Any, experiment: str, *, x_max: float | dict[str, float], column: str = E_BAR):
    """The slope of log10 ``column`` against log10 x per (series, seed), over the runs with x <= ``x_max``
    (one number, or one per series) and a finite positive value (at least 3 points, else NaN)."""
    import pandas as pd

    rows = []
    part = frame[frame.experiment == experiment]
    for (series, seed), group in part.groupby(["series", "seed"]):
        limit = x_max[series] if isinstance(x_max, dict) else x_max
        use = group[(group.x <= limit * (1 + 1e-9)) & np.isfinite(group[column]) & (group[column] > 0)]
        slope = float(np.polyfit(np.log10(use.x), np.log10(use[column]), 1)[0]) if len(use) >= 2 else float("nan")
        rows.append({"series": series, "seed": seed, "experiment": experiment, "slope": slope, "points": len(use)})
    return pd.DataFrame(rows)


def slope_summary(frame: Any, experiments: Sequence[str], *, x_max: float | dict[str, float]):
    """Mean ± sd over seeds of each experiment's slope, per series."""
    import pandas as pd

    parts = [slopes(frame, experiment, x_max=x_max) for experiment in experiments]
    every = pd.concat(parts, ignore_index=True)
    return every.groupby(["series", "experiment"])["slope"].agg(["mean", "std", "min", "max", "count"]).reset_index()


def breaking_points(frame: Any, *, reference: dict[str, float], accuracy_drop: float = 0.5):
    """Per series: the smallest x at which the mean baseline/lr-tweak ratio exceeds 1, and the smallest x
    above ``reference[series]`` at which Q̂-net's mean test accuracy falls below ``accuracy_drop`` times
    its best (or its weights stop being finite). NaN where it does not happen in the sweep."""
    import pandas as pd

    ratio = summarise(ratios(frame, "baseline", "lr_tweak"))
    accuracy = frame[frame.experiment == "baseline"].groupby(["series", "x"])["q_acc"].mean().reset_index()
    rows = []
    for series in sorted(set(frame.series)):
        r = ratio[ratio.series == series].sort_values("x")
        above = r[~(r["mean"] <= 1.0)]  # NaN (diverged) counts as broken
        a = accuracy[accuracy.series == series].sort_values("x")
        best = a.q_acc.max()
        broken = a[(a.x > reference[series]) & ~(a.q_acc >= accuracy_drop * best)]
        rows.append({
            "series": series,
            "ratio_above_1": float(above.x.min()) if len(above) else float("nan"),
            "training_breaks": float(broken.x.min()) if len(broken) else float("nan"),
            "best_accuracy": float(best),
        })
    return pd.DataFrame(rows)


def format_ratio(mean: float, std: float | None = None) -> str:
    """``'3.1 ± 0.4'``-style text (two significant digits, every digit of the integer part with
    commas for thousands, ``2.4 × 10⁻⁸`` below 10⁻³; 'diverged' for NaN)."""
    if not math.isfinite(mean):
        return "diverged"

    def fmt(value: float) -> str:
        if value == 0:
            return "0"
        if abs(value) < 1e-3:
            return markup.number(value, 2)
        digits = max(0, 1 - int(math.floor(math.log10(abs(value)))))
        return f"{value:,.{digits}f}"

    if std is None or not math.isfinite(std):
        return fmt(mean)
    return f"{fmt(mean)} ± {fmt(std)}"


def pair_history(runs: Sequence[SweepRecord], section: str, x: float, experiments: Sequence[str]) -> dict[str, Any]:
    """Ē along training at one x of a section: ``{"steps", "x", experiment: array (seeds, points)}``."""
    chosen = [run for run in runs if run.section == section and math.isclose(run.x, x)]
    if not chosen:
        raise ValueError(f"no runs of section {section!r} at x = {x}")
    out: dict[str, Any] = {"steps": chosen[0].log_steps, "x": x}
    for experiment in experiments:
        out[experiment] = np.array([[_number(v) for v in run.pairs[experiment].E_t] for run in chosen])
    return out


def ratio_stats(frame: Any, numerator: str, denominator: str = "lr_tweak", column: str = E_BAR):
    """:func:`summarise` of :func:`ratios`: mean, sd, min, max and count over seeds per (series, x)."""
    return summarise(ratios(frame, numerator, denominator, column))


def _row(stats: Any, series: str, x: float) -> Any:
    return stats[(stats.series == series) & np.isclose(stats.x, x)]


def value_at(stats: Any, series: str, x: float) -> tuple[float, float]:
    """(mean, sd) of one (series, x) of a :func:`summarise` table; NaNs when the sweep lacks it."""
    row = _row(stats, series, x)
    if not len(row):
        return float("nan"), float("nan")
    return float(row["mean"].iloc[0]), float(row["std"].iloc[0])


def ratio_text(stats: Any, series: str, x: float) -> str:
    """The mean ± sd ratio of one (series, x) as text ('n/a' when the sweep lacks it)."""
    if not len(_row(stats, series, x)):
        return "n/a"
    return format_ratio(*value_at(stats, series, x))


def momentum_verdict(stats_baseline: Any, stats_diagnostic: Any, beta: float = 0.9) -> str:
    """Does the diagnostic Q̂-net (Q̂' on the momentum buffer) close the gap at ``beta``?"""
    base, _ = value_at(stats_baseline, "sgd", beta)
    diag, _ = value_at(stats_diagnostic, "sgd", beta)
    if not (math.isfinite(base) and math.isfinite(diag)):
        return "not measured"
    if diag <= 1.0 < base:
        return (f"yes: at β = {beta:g} the diagnostic's ratio is {format_ratio(diag)} against the recipe's "
                f"{format_ratio(base)}, below the 1% learning-rate change; the momentum lag explains the gap")
    if diag < base / 2:
        return (f"mostly: at β = {beta:g} the diagnostic's ratio falls from {format_ratio(base)} to "
                f"{format_ratio(diag)}, but stays above 1")
    return (f"no: at β = {beta:g} the diagnostic's ratio is {format_ratio(diag)} against the recipe's "
            f"{format_ratio(base)}; the momentum lag does not explain the gap")


def order_verdict(summary: Any, series: Sequence[str] = ("sgd", "momentum"), experiment: str = "baseline") -> str:
    """Whether two series' slopes of ``experiment`` agree within two standard deviations (the order is the same)."""
    rows = summary[summary.experiment == experiment].set_index("series")
    if not all(name in rows.index for name in series):
        return "not measured"
    (m1, s1), (m2, s2) = ((float(rows.loc[n, "mean"]), float(rows.loc[n, "std"])) for n in series)
    spread = 2 * math.hypot(s1 if math.isfinite(s1) else 0.0, s2 if math.isfinite(s2) else 0.0)
    same = abs(m1 - m2) <= max(spread, 0.1)
    return (f"the same order (slopes {m1:.2f} and {m2:.2f})" if same else f"a different order (slopes {m1:.2f} and {m2:.2f})")


def momentum_finding(stats_baseline: Any, stats_diagnostic: Any, beta: float = 0.9) -> str:
    """:func:`momentum_verdict` as a short phrase for the prose, without its numbers: does the
    diagnostic Q̂-net close the gap at ``beta``?"""
    base, _ = value_at(stats_baseline, "sgd", beta)
    diag, _ = value_at(stats_diagnostic, "sgd", beta)
    if not (math.isfinite(base) and math.isfinite(diag)):
        return "not measured"
    if diag <= 1.0 < base:
        return "the momentum lag explains the gap"
    if diag < base / 2:
        return "the momentum lag explains most of the gap, though the ratio stays above 1"
    return "the momentum lag does not explain the gap"


def bits_finding(stats: Any, series: str, bits: Sequence[float], *, reference: float = 2, factor: float = 2.0) -> str:
    """Is the paper's "similar" at other bit widths true for ``series``? Each bit width's mean ratio
    Ē(recipe)/Ē(1.01η) (a :func:`ratio_stats` table) against the ``reference`` width's: "similar"
    when every one lies within ``factor`` of it (the factor-2 yardstick of claim A), else which
    width is how many times the reference's."""
    ref, _ = value_at(stats, series, reference)
    if not math.isfinite(ref) or ref <= 0:
        return "not measured"
    far = []
    for b in bits:
        mean, _ = value_at(stats, series, b)
        if not math.isfinite(mean):
            return "not measured"
        if not 1 / factor <= mean / ref <= factor:
            far.append(f"{mean / ref:.2g}× the {reference:g}-bit ratio at {b:g} bit")
    if not far:
        return f"similar (every bit width within a factor {factor:g} of {reference:g} bits)"
    return "not similar: " + ", ".join(far)


class Source(NamedTuple):
    """The runs a section of the chapter shows, their provenance, and where they come from."""

    runs: list[SweepRecord]
    provenance: dict[str, Any]
    origin: str


def preset_source(preset: str, sweep: dict[str, Any], sweep_preset: str) -> Source | None:
    """A sweep preset's runs: the page's own ``sweep`` when it ran ``preset`` (``sweep_preset``), else
    the committed artefact ``results/beyond/<preset>/metrics.json``; ``None`` when there is neither."""
    if sweep_preset == preset:
        return Source(artefacts.sweep_records(sweep), sweep["provenance"], "this page's run")
    path = artefacts.metrics_path("beyond", preset)
    if path.is_file():
        stored = artefacts.read_json(path)
        return Source(artefacts.sweep_records(stored), stored["provenance"], "the committed artefact")
    return None


def section_source(section: str, sweep: dict[str, Any], sweep_preset: str) -> Source:
    """A section's runs: :func:`preset_source` of its preset, else the page's quick runs of that
    section; an error naming the command that makes them when there are none."""
    found = preset_source(section, sweep, sweep_preset)
    if found is not None:
        return found
    quick = [run for run in artefacts.sweep_records(sweep) if run.section == section]
    if not quick:
        raise FileNotFoundError(f"{artefacts.metrics_path('beyond', section)} is missing and this page's sweep has no "
                                f"{section!r} runs: run `python -m qatlib run beyond --preset {section}` first")
    return Source(quick, sweep["provenance"], "this page's quick run (no committed artefact)")


def provenance_markdown(section: str, source: Source) -> str:
    """One line of MyST saying where a figure's numbers come from (glue it as Markdown):

    >>> runs = [SweepRecord("bits", "sgd", 2.0, seed, {}) for seed in (0, 1)]
    >>> print(provenance_markdown("bits", Source(runs, {"steps": 200, "config": {"batch_size": 128},
    ...     "seconds": 600, "device": {"cpu": "AMD EPYC", "cpu_count": 2}, "git_commit": "0123456789abcdef",
    ...     "created_utc": "2026-01-02T03:04:05"}, "the committed artefact")))
    Source: the committed artefact `results/beyond/bits/metrics.json`, 2 runs of 200 steps of batch 128, seeds 0 and 1, 10.0 minutes on AMD EPYC (2 cores), commit `0123456789`, 2026-01-02.
    """
    provenance = source.provenance
    seeds = sorted({int(run.seed) for run in source.runs})
    commit = (provenance.get("git_commit") or "unknown")[:10]
    return (f"Source: {source.origin} `results/beyond/{section}/metrics.json`, {markup.plural(len(source.runs), 'run')} of "
            f"{markup.plural(provenance['steps'], 'step')} of batch {provenance['config']['batch_size']}, "
            f"{'seed' if len(seeds) == 1 else 'seeds'} {markup.listing(seeds)}, "
            f"{artefacts.duration(provenance['seconds'])} on {provenance['device']['cpu']} "
            f"({provenance['device']['cpu_count']} cores), commit `{commit}`, {provenance['created_utc'][:10]}.")


def quick_ratios(fresh: Any, section: str, labels: dict[str, str], x_name: str, numerator: str = "baseline") -> str:
    """The ratios of a page's own quick run of one section, as a phrase: ``'0.95 (SGD, η = 0.01) and
    1.3 (Adam, η = 0.0001)'``; ``'none (no quick run of this section)'`` when there is none."""
    part = fresh[fresh.section == section]
    if not len(part) or "lr_tweak" not in set(part.experiment) or numerator not in set(part.experiment):
        return "none (no quick run of this section)"
    stats = ratio_stats(part, numerator)
    return markup.listing([f"{format_ratio(row['mean'])} ({labels.get(row.series, row.series)}, {x_name} = {row.x:g})"
                           for _, row in stats.iterrows()])


def slope_text(summary: Any, series: str, experiment: str) -> str:
    """A :func:`slope_summary` entry as ``'1.95 ± 0.03'`` (the mean alone with one seed; 'n/a' when absent)."""
    row = summary[(summary.series == series) & (summary.experiment == experiment)]
    if not len(row):
        return "n/a"
    mean, std = float(row["mean"].iloc[0]), float(row["std"].iloc[0])
    return f"{mean:.2f} ± {std:.2f}" if math.isfinite(std) else f"{mean:.2f}"
