"""The MNIST chapter's report, from the committed seeded artefacts: tables, verdicts and short phrases.

Every page that shows an MNIST result reads it through this module, from ``results/mnist/<preset>/``
(:func:`stored`), so every page shows the same numbers. A book build's own run is a reproduction
check of one committed seed (:func:`reproduction`), never a second set of results.

Formats: a ratio over seeds reads ``2.85 [2.41, 3.37]`` (geometric mean and its 95% interval, see
:mod:`qatlib.report.claims`), an accuracy difference ``+0.05 pp [−0.10, +0.20]``.

>>> ratio_text(claims.ratio_interval([2.0, 2.2, 2.4]))
'2.19 [1.75, 2.75]'
>>> ratio_text(claims.ratio_interval([2.0]))
'2.00 (one seed)'
>>> pp_text(claims.difference_interval([0.001, -0.002, 0.0005]))
'−0.02 pp [−0.42, +0.38]'
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from collections.abc import Iterable
from typing import Any

from qatlib.report import artefacts, claims

__all__ = [
    "stored",
    "ratio_text",
    "pp_text",
    "percent_number",
    "percent_text",
    "lr_change_text",
    "verdict_text",
    "glance_frame",
    "error_frame",
    "accuracy_frame",
    "yardstick_frame",
    "lengths_frame",
    "reproduction",
    "EXPERIMENT_LABELS",
    "ARTEFACTS",
    "claim_phrase",
    "cell_text",
    "setups_frame",
    "mirror_room_frame",
    "mean_history",
    "length_series",
    "paper_finding",
    "Page",
    "chapter",
    "lr_change_interval",
    "paper_metrics",
    "MISSING",
]

#: Row labels of the pairs, as the paper's Table 3 names them (S = SGD + momentum, A = Adam).
EXPERIMENT_LABELS = {
    "baseline": "baseline",
    "lr_tweak": "lr-tweak 1%",
    "unadjusted": "unadjusted",
    "lr_tweak_0.1pct": "lr-tweak 0.1%",
    "lr_tweak_10pct": "lr-tweak 10%",
    "rounding": "rounding twin",
}
_OPTIMIZER = {"sgd": "S", "adam": "A"}
_CLAIM_NAMES = {
    ("sgd", "A"): "A, SGD + momentum: Q̂-net trains like STE-net",
    ("adam", "A"): "A, Adam: the same with nothing changed",
    ("sgd", "B"): "B, SGD + momentum: without M and α it does not",
    ("sgd", "accuracy"): "accuracy, SGD + momentum",
    ("adam", "accuracy"): "accuracy, Adam",
}


def stored(preset: str, chapter: str = "mnist") -> list[dict[str, Any]] | None:
    """The records of the committed artefact ``results/<chapter>/<preset>/`` (None where absent)."""
    path = artefacts.metrics_path(chapter, preset)
    return claims.records_of(artefacts.read_json(path)) if path.is_file() else None


def _minus(text: str) -> str:
    return text.replace("-", "−")


def ratio_text(interval: claims.Interval | None) -> str:
    """``mean [low, high]`` of a ratio over seeds, two decimals."""
    if interval is None:
        return "–"
    if interval.n < 2:
        return f"{interval.mean:.2f} (one seed)"
    return f"{interval.mean:.2f} [{interval.low:.2f}, {interval.high:.2f}]"


def pp_text(interval: claims.Interval | None) -> str:
    """An accuracy difference in percentage points with its interval."""
    if interval is None:
        return "–"
    if interval.n < 2:
        return _minus(f"{100 * interval.mean:+.2f} pp (one seed)")
    return _minus(f"{100 * interval.mean:+.2f} pp [{100 * interval.low:+.2f}, {100 * interval.high:+.2f}]")


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def percent_number(fraction: float, digits: int = 2) -> str:
    """A fraction as a percentage with ``digits`` significant digits; below 0.001% as ``6.5×10⁻⁸``.

    >>> percent_number(0.00515), percent_number(0.9831, 4), percent_number(6.5e-10), percent_number(0.0)
    ('0.52', '98.31', '6.5×10⁻⁸', '0')
    """
    value = 100 * fraction
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else "–"
    exponent = math.floor(math.log10(abs(value)))
    if exponent < -3:
        mantissa = value / 10**exponent
        return _minus(f"{mantissa:.{digits - 1}f}×10{str(exponent).translate(_SUPERSCRIPT)}")
    return f"{value:.{max(0, digits - 1 - exponent)}f}"


def percent_text(interval: claims.Interval | None, digits: int = 2, *, at_most: float | None = None) -> str:
    """A small fraction (Ē, agreement) over seeds as a percentage with ``digits`` significant digits
    and its interval (clipped at ``at_most``, e.g. 1 for an agreement)."""
    if interval is None:
        return "–"
    high = interval.high if at_most is None else min(interval.high, at_most)
    low = interval.low if at_most is None else max(interval.low, 0.0)  # a share: clipped to [0, at_most]
    if interval.n < 2:
        return f"{percent_number(interval.mean, digits)}% (one seed)"
    return f"{percent_number(interval.mean, digits)}% [{percent_number(low, digits)}, {percent_number(high, digits)}]"


def lr_change_text(interval: claims.Interval | None) -> str:
    """The equivalent learning-rate change in percent with its interval."""
    return "–" if interval is None else percent_text(interval, 2)


def verdict_text(decision: claims.Decision) -> str:
    """The verdict as the tables print it ("holds", "fails", "undecided", "not trained on seed 2")."""
    if decision.verdict == "not trained":
        seeds = ", ".join(str(s) for s in decision.untrained_seeds)
        return f"not trained (seed {seeds})"
    return decision.verdict


def _pair_interval(records: list[dict[str, Any]], experiment: str, key: str, *, ratio: bool = True) -> claims.Interval | None:
    values = [r["pairs"][experiment][key] for r in records if experiment in r["pairs"] and r["pairs"][experiment].get(key) is not None]
    if not values:
        return None
    if ratio and all(v > 0 for v in values):
        return claims.ratio_interval(values)
    return claims.difference_interval(values)


def lr_change_interval(records: list[dict[str, Any]]) -> claims.Interval | None:
    """The baseline pair's equivalent lr change over seeds (:func:`qatlib.report.claims.equivalent_lr_change`)."""
    values = [v for r in records if (v := claims.equivalent_lr_change(r)) is not None]
    return claims.ratio_interval(values) if values else None


def _paper_value(paper: dict[str, Any], optimizer: str, claim: str) -> str:
    verdicts = claims.claims(paper_metrics(paper))
    entry = verdicts.get(optimizer, {})
    if claim == "accuracy":
        return _minus(f"{100 * entry['val_acc_difference']:+.2f} pp") if "val_acc_difference" in entry else "–"
    key = f"{claim}_ratio"
    return f"{entry[key]:.2f}" if key in entry else "–"


def paper_metrics(paper: dict[str, Any]) -> dict[str, Any]:
    """The paper's printed MNIST Tables 4 and 5 in the shape :func:`qatlib.report.claims.claims` reads."""
    from qatlib.report import glance

    return glance.paper_metrics(paper, "mnist")


def glance_frame(records: list[dict[str, Any]], paper: dict[str, Any]) -> Any:
    """The claims at a glance: per claim the paper's value, ours over seeds (mean and 95% interval),
    the equivalent lr change of the baseline pair, and the verdict."""
    import pandas as pd

    rows = []
    for decision in claims.decide_all(records):
        chosen = claims.select(records, decision.optimizer)
        text = pp_text(decision.value) if decision.claim == "accuracy" else ratio_text(decision.value)
        rows.append({
            "claim": _CLAIM_NAMES[decision.optimizer, decision.claim],
            "paper": _paper_value(paper, decision.optimizer, decision.claim),
            "ours (mean [95% interval])": text,
            "equivalent lr change": lr_change_text(lr_change_interval(chosen)) if decision.claim == "A" else "–",
            "verdict": verdict_text(decision),
        })
    return pd.DataFrame(rows).set_index("claim")


def error_frame(records: list[dict[str, Any]], paper: dict[str, Any] | None = None) -> Any:
    """Paper Table 4 with intervals: per pair, Ē over all quantized kernels and over the conv
    kernels, the authors' path-normalised measure and the agreement, each over seeds."""
    import pandas as pd

    rows = []
    for optimizer in ("sgd", "adam"):
        chosen = claims.select(records, optimizer)
        if not chosen:
            continue
        printed = (paper or {}).get("table4", {}).get("mnist", {}).get(optimizer, {})
        for experiment, label in EXPERIMENT_LABELS.items():
            if not any(experiment in r["pairs"] for r in chosen):
                continue
            entry = printed.get(experiment, {})
            rows.append({
                "pair": f"{label} ({_OPTIMIZER[optimizer]})",
                "Ē, paper": f"{100 * entry['E_bar']:.3g}%" if "E_bar" in entry else "–",
                "Ē, ours": percent_text(_pair_interval(chosen, experiment, "E_bar")),
                "Ē conv kernels": percent_text(_pair_interval(chosen, experiment, "E_bar_conv")),
                "authors' measure": percent_text(_pair_interval(chosen, experiment, "authors_measure")),
                "agreement, paper": f"{100 * entry['agreement']:.2f}%" if "agreement" in entry else "–",
                "agreement, ours": percent_text(_pair_interval(chosen, experiment, "agreement", ratio=False), 4, at_most=1.0),
            })
    return pd.DataFrame(rows).set_index("pair")


def accuracy_frame(records: list[dict[str, Any]]) -> Any:
    """Paper Table 5 over seeds: each net's test and training accuracy, and Q̂-net − STE-net."""
    import pandas as pd

    rows = []
    for optimizer in ("sgd", "adam"):
        chosen = claims.select(records, optimizer)
        if not chosen:
            continue
        for role, label in (("ste_net", "STE-net"), ("q_net", "Q̂-net")):
            row = {"net": f"{label} ({_OPTIMIZER[optimizer]})"}
            for column, key in (("test acc", "val_acc"), ("train acc", "train_acc"), ("test loss", "val_loss")):
                values = [r["nets"][role][key] for r in chosen if r["nets"].get(role, {}).get(key) is not None]
                interval = claims.difference_interval(values) if values else None
                if interval is None:
                    row[column] = "–"
                elif key == "val_loss":
                    row[column] = f"{interval.mean:.4f}" + (f" ± {(interval.high - interval.low) / 2:.4f}" if interval.n > 1 else "")
                else:
                    row[column] = f"{100 * interval.mean:.2f}%" + (f" ± {50 * (interval.high - interval.low):.2f}" if interval.n > 1 else "")
            rows.append(row)
        decision = claims.decide(chosen, optimizer, "accuracy")
        rows.append({"net": f"Q̂ − STE ({_OPTIMIZER[optimizer]})", "test acc": pp_text(decision.value), "train acc": "", "test loss": ""})
    return pd.DataFrame(rows).set_index("net")


def yardstick_frame(records: list[dict[str, Any]]) -> Any:
    """The yardsticks of the baseline pair: Ē of the rounding twin and of the lr-tweak pairs beside
    the baseline's, and the lr change the baseline pair is equivalent to (each over seeds)."""
    import pandas as pd

    rows = []
    for optimizer in ("sgd", "adam"):
        chosen = claims.select(records, optimizer)
        if not chosen:
            continue
        row = {"optimizer": {"sgd": "SGD + momentum", "adam": "Adam"}[optimizer]}
        for experiment in ("rounding", "lr_tweak_0.1pct", "lr_tweak", "lr_tweak_10pct", "baseline"):
            row[f"Ē {EXPERIMENT_LABELS[experiment]}"] = percent_text(_pair_interval(chosen, experiment, "E_bar"))
        row["baseline ≈ lr change of"] = lr_change_text(lr_change_interval(chosen))
        rows.append(row)
    return pd.DataFrame(rows).set_index("optimizer")


def lengths_frame(setups: dict[str, list[dict[str, Any]]]) -> Any:
    """Claim A against run length: per setup and length, the ratio over seeds for SGD and Adam
    (Ē over all quantized kernels) and SGD's ratio of the authors' path-normalised measure."""
    import pandas as pd

    rows = []
    for label, records in setups.items():
        for steps in sorted({r["spec"]["steps"] for r in records}):
            at = [r for r in records if r["spec"]["steps"] == steps]
            row = {"setup": label, "steps": f"{steps:,}", "seeds": str(len({r["seed"] for r in at}))}
            for optimizer, name in (("sgd", "A, SGD"), ("adam", "A, Adam")):
                row[name] = ratio_text(claims.decide(at, optimizer, "A").value)
            sgd = claims.select(at, "sgd")
            authors = [r["pairs"]["baseline"]["authors_measure"] / r["pairs"]["lr_tweak"]["authors_measure"] for r in sgd
                       if r["pairs"]["lr_tweak"].get("authors_measure")]
            row["A, SGD, authors' measure"] = ratio_text(claims.ratio_interval(authors)) if authors else "–"
            rows.append(row)
    return pd.DataFrame(rows).set_index(["setup", "steps"])


def _pair_values(records: Iterable[dict[str, Any]]) -> dict[tuple[int, str, str], float]:
    return {
        (r["seed"], r["spec"]["optimizer"], experiment): pair["E_bar"]
        for r in records for experiment, pair in r["pairs"].items() if pair.get("E_bar") is not None
    }


def reproduction(run_records: list[dict[str, Any]], committed: list[dict[str, Any]] | None) -> str:
    """How this build's run (one seed) compares with the committed artefact's record of that seed:
    "equal bit for bit", or the largest relative difference of Ē over the pairs, and whether each
    of this run's claim ratios lies inside the committed interval over seeds."""
    if not committed:
        return "no committed artefact to compare with"
    seed = run_records[0]["seed"]
    steps = run_records[0]["spec"]["steps"]
    same_seed = [r for r in committed if r["seed"] == seed and r["spec"].get("steps") == steps]
    ours, theirs = _pair_values(run_records), _pair_values(same_seed)
    shared = sorted(set(ours) & set(theirs))
    if not shared:
        return f"the committed artefact has no run of seed {seed} at {steps:,} steps"
    largest = max(abs(ours[k] - theirs[k]) / max(abs(theirs[k]), 1e-30) for k in shared)
    if largest == 0:
        head = f"this build's seed-{seed} run equals the committed one bit for bit (Ē of {len(shared)} pairs)"
    else:
        head = f"this build's seed-{seed} run differs from the committed one by up to {100 * largest:.2g}% in Ē"
    inside, outside = [], []
    for optimizer, claim in claims.CLAIMS:
        mine = claims.decide(run_records, optimizer, claim).value
        committed_value = claims.decide([r for r in committed if r["spec"].get("steps") == steps], optimizer, claim).value
        if mine is None or committed_value is None or committed_value.n < 2:
            continue
        (inside if committed_value.contains(mine.mean) else outside).append(f"{claim} ({optimizer})")
    tail = ""
    if inside or outside:
        tail = "; its ratios lie inside the committed 95% intervals" if not outside else (
            f"; outside the committed 95% interval: {', '.join(outside)}")
    return head + tail


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
MISSING = "not in this checkout"


def claim_phrase(decision: claims.Decision) -> str:
    """The verdict as a predicate with the statistic over seeds: ``fails (2.85 [2.41, 3.37])``,
    ``is undecided (1.9 [1.2, 3.0])``, ``has no verdict: a net did not train (seed 2)``."""
    if decision.verdict == "not trained":
        return f"has no verdict: a net did not train (seed {', '.join(str(s) for s in decision.untrained_seeds)})"
    if decision.value is None:
        return f"is {decision.verdict}"
    text = pp_text(decision.value) if decision.claim == "accuracy" else ratio_text(decision.value)
    verb = decision.verdict if decision.verdict in ("holds", "fails") else f"is {decision.verdict}"
    return f"{verb} ({text})"


def cell_text(decision: claims.Decision) -> str:
    """A claim in a table cell: ``2.85 [2.41, 3.37] fails``, or ``not trained (seed 2)``."""
    if decision.verdict == "not trained" or decision.value is None:
        return verdict_text(decision)
    text = pp_text(decision.value) if decision.claim == "accuracy" else ratio_text(decision.value)
    return f"{text} {decision.verdict}"


def setups_frame(setups: dict[str, list[dict[str, Any]] | None]) -> Any:
    """The claims on several committed setups: per setup, each claim's statistic over seeds and
    its verdict (a dash where the setup did not train that optimizer)."""
    import pandas as pd

    rows = []
    for label, records in setups.items():
        row = {"setup": label, "seeds": "–"}
        if records:
            steps = max(r["spec"].get("steps") or 0 for r in records)
            at = [r for r in records if (r["spec"].get("steps") or 0) == steps]
            row["seeds"] = str(len({r["seed"] for r in at}))
            decided = {(d.optimizer, d.claim): d for d in claims.decide_all(at)}
        else:
            decided = {}
        for key, name in ((("sgd", "A"), "A, SGD"), (("adam", "A"), "A, Adam"), (("sgd", "B"), "B, SGD")):
            row[name] = cell_text(decided[key]) if key in decided and decided[key].verdict != "not measured" else "–"
        rows.append(row)
    return pd.DataFrame(rows).set_index("setup")


def mirror_room_frame(records: list[dict[str, Any]]) -> Any:
    """Per pair, over seeds: tracked weights that changed level, the share of them visiting the same
    sequence of levels in both nets, and the mean steps between paired crossings."""
    import pandas as pd

    rows = []
    for optimizer in ("sgd", "adam"):
        chosen = claims.select(records, optimizer)
        for experiment in ("baseline", "lr_tweak", "unadjusted", "rounding"):
            rooms = [r["pairs"][experiment]["mirror_room"] for r in chosen if "mirror_room" in r["pairs"].get(experiment, {})]
            if not rooms:
                continue
            same = claims.difference_interval([room["same_sequence_among_moving"] for room in rooms])
            offset = claims.difference_interval([room["mean_offset"] for room in rooms])
            rows.append({
                "pair": f"{EXPERIMENT_LABELS[experiment]} ({_OPTIMIZER[optimizer]})",
                "moved": f"{np.mean([room['moving_weights'] for room in rooms]):,.0f}",
                "same sequence": percent_text(same, 3, at_most=1.0),
                "steps apart": f"{offset.mean:.1f}" + (f" [{max(offset.low, 0.0):.1f}, {offset.high:.1f}]" if offset.n > 1 else ""),
            })
    return pd.DataFrame(rows).set_index("pair")


def mean_history(records: list[dict[str, Any]]) -> dict[str, Any]:
    """E^(t) of every pair as the geometric mean over seeds (zeros kept), in the history shape of
    :func:`qatlib.report.figures.training.error_curves`."""
    history: dict[str, Any] = {"steps": records[0]["log_steps"]}
    for optimizer in ("sgd", "adam"):
        chosen = claims.select(records, optimizer)
        for experiment in ("baseline", "lr_tweak", "unadjusted"):
            curves = [r["pairs"][experiment]["E_t"]["E_bar"] for r in chosen if experiment in r["pairs"]]
            if curves:
                values = np.asarray(curves, np.float64)
                with np.errstate(divide="ignore"):
                    mean = np.where(np.all(values > 0, axis=0), np.exp(np.log(np.where(values > 0, values, 1)).mean(axis=0)), 0.0)
                history.setdefault(optimizer, {})[experiment] = {"E_bar": mean.tolist()}
    return history


def length_series(setups: dict[str, list[dict[str, Any]]], optimizer: str) -> dict[str, dict[int, claims.Interval]]:
    """Claim A's interval at each run length of each setup, for the figure."""
    out: dict[str, dict[int, claims.Interval]] = {}
    for label, records in setups.items():
        for steps in sorted({r["spec"]["steps"] for r in records}):
            value = claims.decide(records, optimizer, "A", steps).value
            if value is not None:
                out.setdefault(label, {})[steps] = value
    return out


def paper_finding(setups: dict[str, list[dict[str, Any]]], printed: float) -> str:
    """Which (setup, length) settings have an SGD claim-A interval that contains the paper's printed
    ratio, and in which the claim holds (interval at most the threshold)."""
    containing, holding, total = [], [], 0
    for label, records in setups.items():
        for steps in sorted({r["spec"]["steps"] for r in records}):
            value = claims.decide(records, "sgd", "A", steps).value
            if value is None or value.n < 2:
                continue
            total += 1
            name = f"{label} at {steps:,} steps"
            if value.contains(printed):
                containing.append(name)
            if value.high <= claims.CLAIM_FACTOR:
                holding.append(name)
    if not total:
        return MISSING
    parts = [
        f"the interval contains the paper's {printed:.2f} in {len(containing)} of {total} settings"
        + (f" ({'; '.join(containing)})" if containing else ""),
        f"claim A holds in {len(holding)} of {total}" + (f" ({'; '.join(holding)})" if holding else ""),
    ]
    return ", and ".join(parts)


@dataclasses.dataclass
class Page:
    """What the MNIST chapter shows: glued phrases, tables (MyST markup) and figures, by name."""

    values: dict[str, str]
    tables: dict[str, Any]
    figures: dict[str, Any]

    def glue_all(self) -> None:
        """Glue every value and figure (``myst_nb.glue``, not displayed)."""
        import matplotlib.pyplot as plt
        from myst_nb import glue

        for name, value in {**self.values, **self.figures}.items():
            glue(name, value, display=False)
        for figure in self.figures.values():
            plt.close(figure)


def _device_text(provenance: dict[str, Any]) -> str:
    device = provenance["device"]
    if device["backend"] == "gpu":
        return ", ".join(device["devices"])
    isa = f", {device['isa']}" if device.get("isa") else ""
    return f"{device['cpu']}{isa}, {device['cpu_count']} cores"


def _headline_values(records: list[dict[str, Any]] | None, provenance: dict[str, Any] | None) -> dict[str, str]:
    if not records or provenance is None:
        return dict.fromkeys(("mnist_headline_runs", "mnist_headline_seeds", "mnist_headline_nets", "mnist_headline_device",
                              "mnist_headline_hours", "mnist_headline_commit"), MISSING)
    nets = sum(len(r["nets"]) for r in records if r["seed"] == records[0]["seed"])
    return {
        "mnist_headline_runs": f"{len(records)}",
        "mnist_headline_seeds": f"{len({r['seed'] for r in records})}",
        "mnist_headline_nets": f"{nets}",
        "mnist_headline_device": _device_text(provenance),
        "mnist_headline_hours": artefacts.duration(provenance["seconds"]),
        "mnist_headline_commit": (provenance.get("git_commit") or "unknown")[:7],
    }


def chapter(config: Any, preset: str) -> Page:
    """Everything the MNIST chapter shows: the committed seeded artefacts (:data:`ARTEFACTS`), and
    this build's own run of ``config``'s first seed as a reproduction check and for the figures
    that need weights."""
    from qatlib.report import markup, measure, tables
    from qatlib.report.figures import seeds as seed_plots
    from qatlib.report.figures import training as training_plots
    from qatlib.report.paper import paper_tables
    from qatlib.training.recipe import ste_partner

    paper = paper_tables()
    stores = {role: stored(name) for role, name in ARTEFACTS.items()}
    headline = stores["headline"]
    head_path = artefacts.metrics_path("mnist", HEADLINE)
    head_provenance = artefacts.read_json(head_path)["provenance"] if head_path.is_file() else None
    run = measure.check_mnist(config)
    values: dict[str, str] = {"mnist_preset": preset, "mnist_build_steps": f"{run.config.steps:,}", "mnist_build_seed": str(run.seed)}
    values["mnist_check"] = reproduction(run.records, stored(CHECKED_AGAINST.get(preset, preset)))
    values["mnist_check_against"] = CHECKED_AGAINST.get(preset, preset)
    values.update(_headline_values(headline, head_provenance))
    alphas = sorted({round(a, 4) for a in run.records[0]["alpha"].values()})
    values["mnist_alpha"] = ", ".join(f"{a:.4f}" for a in alphas)
    layer_q = next(iter(run.layer_quantizers().values()))
    grid = np.linspace(-layer_q.delta / 2, layer_q.delta / 2, 2001)
    slope = np.asarray(run.estimator.derivative(grid, layer_q))
    values["mnist_qhat_spread"] = f"{slope.max() / slope.min():.1f}"
    values["mnist_claim_factor"] = f"{claims.CLAIM_FACTOR:g}"
    values["mnist_accuracy_tolerance"] = f"{100 * claims.ACCURACY_TOLERANCE:g}"
    values["mnist_confidence"] = f"{100 * claims.CONFIDENCE:g}%"
    paper_verdicts = claims.claims(paper_metrics(paper))
    values["mnist_paper_a_sgd"] = f"{paper_verdicts['sgd']['A_ratio']:.2f}"
    values["mnist_paper_a_adam"] = f"{paper_verdicts['adam']['A_ratio']:.2f}"
    values["mnist_paper_b"] = f"{paper_verdicts['sgd']['B_ratio']:.2f}"

    for optimizer in ("sgd", "adam"):
        for key in ("a", "accuracy", "a_{}_verdict", "accuracy_{}_verdict", "lr_change", "floor", "base", "agreement", "q_acc"):
            values["mnist_" + (key.format(optimizer) if "{}" in key else f"{key}_{optimizer}")] = MISSING
    values.update(mnist_b_sgd=MISSING, mnist_b_sgd_verdict=MISSING, mnist_room_same=MISSING)
    tabs: dict[str, Any] = {}
    figs: dict[str, Any] = {}
    def missing(name: str) -> Any:  # a table whose artefact is absent keeps its name, so references resolve
        return markup.table(tables.note_frame(f"The committed artefact is {MISSING}."), "Not in this checkout.", name)


    # The verdicts on the authors' schedule, over seeds.
    if headline:
        decided = {(d.optimizer, d.claim): d for d in claims.decide_all(headline)}
        for (optimizer, claim), decision in decided.items():
            values[f"mnist_{claim.lower()}_{optimizer}"] = claim_phrase(decision)
            values[f"mnist_{claim.lower()}_{optimizer}_verdict"] = verdict_text(decision)
        for optimizer in ("sgd", "adam"):
            chosen = claims.select(headline, optimizer)
            values[f"mnist_lr_change_{optimizer}"] = lr_change_text(lr_change_interval(chosen))
            values[f"mnist_floor_{optimizer}"] = percent_text(_pair_interval(chosen, "rounding", "E_bar"))
            values[f"mnist_base_{optimizer}"] = percent_text(_pair_interval(chosen, "baseline", "E_bar"))
            values[f"mnist_agreement_{optimizer}"] = percent_text(_pair_interval(chosen, "baseline", "agreement", ratio=False), 4, at_most=1.0)
            values[f"mnist_q_acc_{optimizer}"] = percent_text(claims.difference_interval([r["nets"]["q_net"]["val_acc"] for r in chosen]), 4, at_most=1.0)
        tabs["tab-mnist-glance"] = markup.table(glance_frame(headline, paper), (
            f"The claims on the authors' schedule ({HEADLINE}: 1,000 steps of batch 600, {values['mnist_headline_seeds']} seeds): "
            f"the paper's ratio, ours as the geometric mean over seeds with its {values['mnist_confidence']} interval, "
            "the learning-rate change whose Q̂-net pair drifts as far as the baseline pair, and the verdict."), "tab-mnist-glance")
        tabs["tab-mnist-error"] = markup.table(error_frame(headline, paper), (
            "Paper Table 4 over seeds: Ē at the end of training (percent of the range) over all quantized kernels "
            "and over the convolution kernels, the authors' path-normalised measure, and the quantized weight "
            "agreement; each the geometric (Ē) or arithmetic (agreement) mean over seeds with its 95% interval."), "tab-mnist-error")
        tabs["tab-mnist-yardstick"] = markup.table(yardstick_frame(headline), (
            "Yardsticks of the baseline pair (percent of the range, over seeds): Q̂-net against its rounding twin, "
            "against Q̂-nets at learning rates 0.1%, 1% and 10% higher, the baseline pair itself, and the "
            "learning-rate change a power law through the three lr-tweak pairs puts at the baseline's Ē."), "tab-mnist-yardstick")
        tabs["tab-mnist-accuracy"] = markup.table(accuracy_frame(headline), (
            "Paper Table 5 over seeds: test and training accuracy (± the half-width of the 95% interval) and "
            "test loss of STE-net and Q̂-net, and Q̂-net − STE-net in test accuracy."), "tab-mnist-accuracy")
        tabs["tab-mnist-mirror-room"] = markup.table(mirror_room_frame(headline), (
            "The mirror room over seeds: of the tracked weights that changed level in either net (moved, mean over "
            "seeds), the share that visit the same sequence of levels in both nets, and the mean number of steps "
            "between paired crossings."), "tab-mnist-mirror-room")
        figs["fig_mnist_error_curves"] = training_plots.error_curves(mean_history(headline), paper["table4"]["mnist"])
        sgd_rooms = [r["pairs"]["baseline"]["mirror_room"] for r in claims.select(headline, "sgd") if "mirror_room" in r["pairs"]["baseline"]]
        values["mnist_room_same"] = percent_text(claims.difference_interval([m["same_sequence_among_moving"] for m in sgd_rooms]), 3, at_most=1.0) if sgd_rooms else MISSING
    else:
        for name in ("tab-mnist-glance", "tab-mnist-error", "tab-mnist-yardstick", "tab-mnist-accuracy", "tab-mnist-mirror-room"):
            tabs[name] = missing(name)
        figs["fig_mnist_error_curves"] = training_plots.error_curves(mean_history(run.records), paper["table4"]["mnist"])
    tabs["tab-mnist-accuracy-paper"] = markup.table(tables.paper_table5_frame(paper["table5"]["mnist"]),
        "The paper's MNIST accuracy and loss (the left half of paper Table 5), as printed, its Diff rows included.",
        "tab-mnist-accuracy-paper")

    # Controls and other setups, each over its own seeds.
    setups = {
        "authors' schedule (paper_seeds)": headline,
        "the same without momentum (paper_no_momentum)": stores["no_momentum"],
        "400 steps of batch 128 (default_seeds)": stores["default"],
        "the same without momentum (sgd_no_momentum_seeds)": stores["default_no_momentum"],
        "400 steps, level-centred Q̂' (level_centred_control)": stores["phase"],
        "authors' schedule on a GPU (paper_gpu)": stores["gpu"],
    }
    tabs["tab-mnist-setups"] = markup.table(setups_frame(setups), (
        "The claims on each committed setup: ratio over seeds (geometric mean and 95% interval) and verdict; "
        "one seed gives no interval, so no verdict."), "tab-mnist-setups")
    for key, role in (("nomom", "no_momentum"), ("default", "default"), ("default_nomom", "default_no_momentum"), ("phase", "phase"), ("gpu", "gpu")):
        records = stores[role]
        values[f"mnist_{key}_a_sgd"] = claim_phrase(claims.decide(records, "sgd", "A")) if records else MISSING
        values[f"mnist_{key}_b"] = claim_phrase(claims.decide(records, "sgd", "B")) if records else MISSING
    if stores["gpu"] and headline:
        inside = [f"{claim} ({optimizer})" for optimizer, claim in claims.CLAIMS[:3]
                  if (g := claims.decide(stores["gpu"], optimizer, claim).value) is not None
                  and (h := claims.decide(headline, optimizer, claim).value) is not None and h.n > 1 and h.contains(g.mean)]
        values["mnist_gpu_inside"] = f"{len(inside)} of 3"
    else:
        values["mnist_gpu_inside"] = MISSING

    # Run length and the authors' setup.
    length_setups = {label: records for label, records in (("paper preset", stores["lengths"]), ("authors' setup", stores["authors"])) if records}
    if length_setups:
        tabs["tab-mnist-lengths"] = markup.table(lengths_frame(length_setups), (
            "Claim A against run length, in this book's setup (paper_lengths: Chollet's net, all kernels quantized, "
            "HTGE 5.5/w_max, α on the learning rate) and the authors' code's (authors_setup: the Flax example's CNN, "
            "conv kernels quantized, HTGE 6.5/w_max, α on the slope); each length its own warm-up + cosine "
            "schedule; ratio over seeds with its 95% interval, on Ē and, for SGD, on the authors' measure."), "tab-mnist-lengths")
        figs["fig_mnist_lengths"] = seed_plots.ratio_against_length(
            {"SGD + momentum": length_series(length_setups, "sgd"), "Adam": length_series(length_setups, "adam")},
            threshold=claims.CLAIM_FACTOR, paper=paper_verdicts["sgd"]["A_ratio"])
        values["mnist_length_finding"] = paper_finding(length_setups, paper_verdicts["sgd"]["A_ratio"])
    else:
        tabs["tab-mnist-lengths"] = missing("tab-mnist-lengths")
        figs["fig_mnist_lengths"] = seed_plots.ratio_against_length(
            {"SGD + momentum": length_series({"this build": run.records}, "sgd")}, threshold=claims.CLAIM_FACTOR)
        values["mnist_length_finding"] = MISSING

    # Figures that need weights: this build's run.
    figs["fig_mnist_derivative"] = training_plots.derivative_per_layer(run.layer_quantizers(), run.estimator, ste_partner(run.estimator, run.quantizers))
    if "sgd" in run.config.optimizers:
        panels = [("(a) baseline (SGD)", run.params["sgd/q_net"], run.params["sgd/ste_net"], run.estimator),
                  ("(b) unadjusted (SGD)", run.params["sgd/q_net"], run.params["sgd/ste_net_unadjusted"], None)]
    else:
        panels = [("baseline (Adam)", run.params["adam/q_net"], run.params["adam/ste_net"], None)]
    figs["fig_mnist_alignment"] = training_plots.alignment_scatter(panels, run.quantizers)
    return Page(values, tabs, figs)
