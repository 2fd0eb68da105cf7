"""Verdicts over seeds as a page shows them: the tables, phrases and checks every chapter uses.

A chapter reads its committed seeded artefact with :func:`stored` (so every page shows the same
numbers), decides the claims with :mod:`qatlib.report.claims`, and prints them with these: a ratio
over seeds reads ``2.85 [2.41, 3.37]`` (geometric mean and its 95% interval), an accuracy
difference ``+0.05 pp [−0.10, +0.20]``. A build's own run is a reproduction check of one committed
seed (:func:`reproduction`), never a second set of results.

>>> ratio_text(claims.ratio_interval([2.0, 2.2, 2.4]))
'2.19 [1.75, 2.75]'
>>> ratio_text(claims.ratio_interval([2.0]))
'2.00 (one seed)'
>>> pp_text(claims.difference_interval([0.001, -0.002, 0.0005]))
'−0.02 pp [−0.42, +0.38]'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from qatlib.experiments.records import AGREEMENT, E_BAR, PairRecord, RunRecord
from qatlib.report import artefacts, claims, markup

__all__ = ["pair_interval", "EXPERIMENT_LABELS", "MISSING", "MISSING_CLAIM", "missing_table", "Page", "accuracy_frame", "cell_text", "claim_phrase", "device_text", "error_frame", "glance_frame", "lr_change_interval", "lr_change_text", "mean_history", "mirror_room_frame", "paper_metrics", "percent_number", "percent_text", "pp_text", "ratio_text", "reproduction", "setups_frame", "stored", "verdict_text", "yardstick_frame"]

MISSING = "not in this checkout"
#: In a claim-phrase slot ("claim A ..."), where a phrase starts with a verb.
MISSING_CLAIM = "is not measured in this checkout"

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


def missing_table(name: str) -> Any:
    """A table whose committed artefact is absent: it keeps its name, so references to it resolve."""
    from qatlib.report import tables

    return markup.table(tables.note_frame(f"The committed artefact is {MISSING}."), "Not in this checkout.", name)


def stored(preset: str, chapter: str = "mnist") -> list[RunRecord] | None:
    """The records of the committed artefact ``results/<chapter>/<preset>/`` (None where absent)."""
    path = artefacts.metrics_path(chapter, preset)
    return artefacts.run_records(artefacts.read_json(path)) if path.is_file() else None


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


def percent_number(fraction: float, digits: int = 2) -> str:
    """A fraction as a percentage without its sign, as :func:`qatlib.report.markup.percent` writes it
    (``digits`` significant digits, at most two decimals above 1%, ``m × 10ⁿ`` below 0.001%).

    >>> percent_number(0.00515), percent_number(0.9831, 4), percent_number(6.5e-10), percent_number(0.0)
    ('0.52', '98.31', '6.5 × 10⁻⁸', '0')
    """
    return markup.percent(fraction, digits).removesuffix("%").strip()


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


def pair_interval(records: list[RunRecord], experiment: str, metric: Callable[[PairRecord], float | None], *,
                  ratio: bool = True) -> claims.Interval | None:
    """``metric`` of ``experiment``'s pair (e.g. ``lambda pair: pair.E_bar``) over the records' seeds:
    a ratio interval where every value is positive (``ratio``), else a difference interval."""
    values = [v for r in records if experiment in r.pairs and (v := metric(r.pairs[experiment])) is not None]
    if not values:
        return None
    if ratio and all(v > 0 for v in values):
        return claims.ratio_interval(values)
    return claims.difference_interval(values)


def lr_change_interval(records: list[RunRecord]) -> claims.Interval | None:
    """The baseline pair's equivalent lr change over seeds (:func:`qatlib.report.claims.equivalent_lr_change`)."""
    values = [v for r in records if (v := claims.equivalent_lr_change(r)) is not None]
    return claims.ratio_interval(values) if values else None


def _paper_value(paper: dict[str, Any], optimizer: str, claim: str, model: str) -> str:
    verdicts = claims.claims(paper_metrics(paper, model))
    entry = verdicts.get(optimizer, {})
    if claim == "accuracy":
        return _minus(f"{100 * entry['val_acc_difference']:+.2f} pp") if "val_acc_difference" in entry else "–"
    key = f"{claim}_ratio"
    return f"{entry[key]:.2f}" if key in entry else "–"


def paper_metrics(paper: dict[str, Any], model: str = "mnist") -> dict[str, Any]:
    """The paper's printed Tables 4 and 5 for ``model`` ("mnist" or "imagenet_resnet50") in the shape
    :func:`qatlib.report.claims.claims` reads."""
    from qatlib.report import glance

    return glance.paper_metrics(paper, model)


def glance_frame(records: list[RunRecord], paper: dict[str, Any], model: str = "mnist") -> Any:
    """The claims at a glance: per claim the paper's value, ours over seeds (mean and 95% interval),
    the equivalent lr change of the baseline pair, and the verdict."""
    import pandas as pd

    rows = []
    for decision in claims.decide_all(records):
        chosen = claims.select(records, decision.optimizer)
        text = pp_text(decision.value) if decision.claim == "accuracy" else ratio_text(decision.value)
        rows.append({
            "claim": _CLAIM_NAMES[decision.optimizer, decision.claim],
            "paper": _paper_value(paper, decision.optimizer, decision.claim, model),
            "ours (mean [95% interval])": text,
            "equivalent lr change": lr_change_text(lr_change_interval(chosen)) if decision.claim == "A" else "–",
            "verdict": verdict_text(decision),
        })
    return pd.DataFrame(rows).set_index("claim")


def error_frame(records: list[RunRecord], paper: dict[str, Any] | None = None, model: str = "mnist") -> Any:
    """Paper Table 4 with intervals: per pair, Ē over all quantized kernels and over the conv
    kernels, the authors' path-normalised measure and the agreement, each over seeds."""
    import pandas as pd

    rows = []
    for optimizer in ("sgd", "adam"):
        chosen = claims.select(records, optimizer)
        if not chosen:
            continue
        printed = (paper or {}).get("table4", {}).get(model, {}).get(optimizer, {})
        for experiment, label in EXPERIMENT_LABELS.items():
            if not any(experiment in r.pairs for r in chosen):
                continue
            entry = printed.get(experiment, {})
            rows.append({
                "pair": f"{label} ({_OPTIMIZER[optimizer]})",
                "Ē, paper": f"{100 * entry[E_BAR]:.3g}%" if E_BAR in entry else "–",
                "Ē, ours": percent_text(pair_interval(chosen, experiment, lambda p: p.E_bar)),
                "Ē conv kernels": percent_text(pair_interval(chosen, experiment, lambda p: p.E_bar_conv)),
                "authors' measure": percent_text(pair_interval(chosen, experiment, lambda p: p.authors_measure)),
                "agreement, paper": f"{100 * entry[AGREEMENT]:.2f}%" if AGREEMENT in entry else "–",
                "agreement, ours": percent_text(pair_interval(chosen, experiment, lambda p: p.agreement, ratio=False), 4, at_most=1.0),
            })
    return pd.DataFrame(rows).set_index("pair")


def accuracy_frame(records: list[RunRecord]) -> Any:
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
                values = [v for r in chosen if (v := getattr(r.net(role), key)) is not None]
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


def yardstick_frame(records: list[RunRecord]) -> Any:
    """The yardsticks of the baseline pair: Ē of the rounding twin and of the lr-tweak pairs beside
    the baseline's, and the lr change the baseline pair is equivalent to (each over seeds)."""
    import pandas as pd

    rows = []
    for optimizer in ("sgd", "adam"):
        chosen = claims.select(records, optimizer)
        if not chosen:
            continue
        momentum = any(r.spec.get("sgd_momentum", 0.0) for r in chosen)
        row = {"optimizer": {"sgd": "SGD + momentum" if momentum else "SGD", "adam": "Adam"}[optimizer]}
        for experiment in ("rounding", "lr_tweak_0.1pct", "lr_tweak", "lr_tweak_10pct", "baseline"):
            row[f"Ē {EXPERIMENT_LABELS[experiment]}"] = percent_text(pair_interval(chosen, experiment, lambda p: p.E_bar))
        row["baseline ≈ lr change of"] = lr_change_text(lr_change_interval(chosen))
        rows.append(row)
    return pd.DataFrame(rows).set_index("optimizer")


def _pair_values(records: Iterable[RunRecord]) -> dict[tuple[int, str, str], float]:
    return {
        (r.seed, r.optimizer, experiment): pair.E_bar
        for r in records for experiment, pair in r.pairs.items() if pair.E_bar is not None
    }


def reproduction(run_records: list[RunRecord], committed: list[RunRecord] | None) -> str:
    """How this build's run (one seed) compares with the committed artefact's record of that seed:
    "equal bit for bit", or the largest relative difference of Ē over the pairs, and whether each
    of this run's claim ratios lies inside the committed interval over seeds."""
    if not committed:
        return "no committed artefact to compare with"
    seed = run_records[0].seed
    steps = run_records[0].steps
    same_seed = [r for r in committed if r.seed == seed and r.steps == steps]
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
        committed_value = claims.decide([r for r in committed if r.steps == steps], optimizer, claim).value
        if mine is None or committed_value is None or committed_value.n < 2:
            continue
        (inside if committed_value.contains(mine.mean) else outside).append(f"{claim} ({optimizer})")
    tail = ""
    if inside or outside:
        tail = "; its ratios lie inside the committed 95% intervals" if not outside else (
            f"; outside the committed 95% interval: {', '.join(outside)}")
    return head + tail


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


def setups_frame(setups: dict[str, list[RunRecord] | None]) -> Any:
    """The claims on several committed setups: per setup, each claim's statistic over seeds and
    its verdict (a dash where the setup did not train that optimizer)."""
    import pandas as pd

    rows = []
    for label, records in setups.items():
        row = {"setup": label, "seeds": "–"}
        if records:
            steps = max(r.steps or 0 for r in records)
            at = [r for r in records if (r.steps or 0) == steps]
            row["seeds"] = str(len({r.seed for r in at}))
            decided = {(d.optimizer, d.claim): d for d in claims.decide_all(at)}
        else:
            decided = {}
        for key, name in ((("sgd", "A"), "A, SGD"), (("adam", "A"), "A, Adam"), (("sgd", "B"), "B, SGD")):
            row[name] = cell_text(decided[key]) if key in decided and decided[key].verdict != "not measured" else "–"
        rows.append(row)
    return pd.DataFrame(rows).set_index("setup")


def mirror_room_frame(records: list[RunRecord]) -> Any:
    """Per pair, over seeds: tracked weights that changed level, the share of them visiting the same
    sequence of levels in both nets, and the mean steps between paired crossings."""
    import pandas as pd

    rows = []
    for optimizer in ("sgd", "adam"):
        chosen = claims.select(records, optimizer)
        for experiment in ("baseline", "lr_tweak", "unadjusted", "rounding"):
            rooms = [room for r in chosen if (room := r.pair(experiment).mirror_room) is not None]
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


def mean_history(records: list[RunRecord]) -> dict[str, Any]:
    """E^(t) of every pair as the geometric mean over seeds (zeros kept), in the history shape of
    :func:`qatlib.report.figures.training.error_curves`."""
    history: dict[str, Any] = {"steps": records[0].log_steps}
    for optimizer in ("sgd", "adam"):
        chosen = claims.select(records, optimizer)
        for experiment in ("baseline", "lr_tweak", "unadjusted"):
            curves = [r.pairs[experiment].E_t.E_bar for r in chosen if experiment in r.pairs]
            if curves:
                values = np.asarray(curves, np.float64)
                with np.errstate(divide="ignore"):
                    mean = np.where(np.all(values > 0, axis=0), np.exp(np.log(np.where(values > 0, values, 1)).mean(axis=0)), 0.0)
                history.setdefault(optimizer, {})[experiment] = {E_BAR: mean.tolist()}
    return history


@dataclasses.dataclass
class Page:
    """What a chapter shows: glued phrases (or numbers glued as numbers), tables (MyST markup),
    figures, and one-line MyST notes (a figure's provenance, glued as Markdown for ``{glue:md}``),
    by name."""

    values: dict[str, Any]
    tables: dict[str, Any]
    figures: dict[str, Any]
    markdown: dict[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def merge(cls, pages: Iterable["Page"]) -> "Page":
        """One page holding every page's values, tables, figures and notes (a later page's name wins)."""
        out = cls({}, {}, {}, {})
        for part in pages:
            out.values.update(part.values)
            out.tables.update(part.tables)
            out.figures.update(part.figures)
            out.markdown.update(part.markdown)
        return out

    def glue_all(self) -> None:
        """Glue every value, figure and note (``myst_nb.glue``, not displayed)."""
        import matplotlib.pyplot as plt
        from IPython.display import Markdown
        from myst_nb import glue

        for name, value in {**self.values, **self.figures}.items():
            glue(name, value, display=False)
        for name, text in self.markdown.items():
            glue(name, Markdown(text), display=False)
        for figure in self.figures.values():
            plt.close(figure)


def device_text(provenance: dict[str, Any]) -> str:
    device = provenance["device"]
    if device["backend"] == "gpu":
        return ", ".join(device["devices"])
    isa = f", {device['isa']}" if device.get("isa") else ""
    return f"{device['cpu']}{isa}, {device['cpu_count']} cores"


