"""What every section of the chapter "When is the STE enough?" shares: its names for the optimizers,
the at-a-glance :class:`Answer`, a section's rows and source, and the page's own run values."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from qatlib.report import artefacts, markup
from qatlib.report.beyond.analysis import Source, pairs_frame, section_source, value_at
from qatlib.report.seeds import Page

#: The optimizers of the learning-rate sweep as the chapter names them.
TITLES = {"sgd": "SGD", "momentum": "SGD + momentum 0.9", "adam": "Adam"}
#: The optimizers the paper did not try, as the chapter names them, in the chapter's order.
OPTIMIZER_NAMES = {"nesterov": "Nesterov", "adamw": "AdamW", "signsgd": "signSGD", "lion": "Lion"}
RATIO_LABEL = "Ē(recipe) / Ē(1.01η)"


class Answer(NamedTuple):
    """One row of the chapter's "At a glance" table: a section's question, the answer its sweep
    gives, and the figure that shows it (a ``{numref}`` role)."""

    question: str
    answer: str
    figure: str


def rows_frame(rows: Sequence[dict[str, Any]]):
    import pandas as pd

    return pd.DataFrame(rows)


def section_frame(section: str, sweep: dict[str, Any], preset: str) -> tuple[Any, Source]:
    """The pairs of one section's :func:`section_source` (that section's rows only) and the source."""
    source = section_source(section, sweep, preset)
    frame = pairs_frame(source.runs)
    return frame[frame.section == section], source


def sd_bars(stats: Any, keys: Sequence[tuple[str, float]]) -> tuple[list[float], list[float]]:
    """Means and sds (NaN sd as 0, for error bars) of ``(series, x)`` entries of a :func:`summarise` table."""
    cells = [value_at(stats, series, x) for series, x in keys]
    return [mean for mean, _ in cells], [float(np.nan_to_num(sd)) for _, sd in cells]


def run_values(config: Any, preset: str, sweep: dict[str, Any]) -> Any:
    """The page's own quick sweep: a Page whose values are the preset's name, the number of runs,
    their steps and wall time and the device (``beyond_preset``, ``beyond_fresh_*``, ``beyond_device``)."""
    device = artefacts.device_info()
    return Page({
        "beyond_preset": preset,
        "beyond_fresh_runs": len(sweep["runs"]),
        "beyond_fresh_steps": config.steps,
        "beyond_fresh_wall": artefacts.duration(sweep["provenance"]["seconds"]),
        "beyond_device": f"{device['backend'].upper()} ({device['cpu']}, {device['cpu_count']} cores)",
    }, {}, {})


def glance(answers: Sequence[Answer]) -> Any:
    """Table tab-beyond-glance: each section's question, the answer its sweep gives and its figure."""
    frame = rows_frame([{"question": a.question, "answer measured here": a.answer, "figure": a.figure} for a in answers])
    return markup.table(frame, "When is the STE enough? Each section's question and the answer its committed sweep gives (ratios are "
                        "$\\bar E(\\text{recipe})/\\bar E(1.01\\eta)$, mean ± sd over seeds).", "tab-beyond-glance")
