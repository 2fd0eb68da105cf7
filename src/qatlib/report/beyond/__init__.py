"""The numbers of the chapter "When is the STE enough?", computed from its sweep artefacts.

* :mod:`~qatlib.report.beyond.analysis` -- the sweep as tables, ratios, slopes and phrases;
* :mod:`~qatlib.report.beyond.common` -- what the sections share (:class:`Answer`, the page's run values);
* :mod:`~qatlib.report.beyond.rates` -- :func:`learning_rate`, :func:`momentum`, :func:`momentum_eta`;
* :mod:`~qatlib.report.beyond.estimators` -- :func:`bits`, :func:`shape`;
* :mod:`~qatlib.report.beyond.training` -- :func:`weight_decay`, :func:`optimizers`, :func:`kernels`.

The chapter itself only calls :func:`page`, which assembles one
:class:`~qatlib.report.seeds.Page` from a function per section, each returning that section's
glued values, table, figure and provenance note, and an :class:`Answer` for the at-a-glance table
(:func:`glance`). Nothing here trains a net.
"""

from __future__ import annotations

from typing import Any

from qatlib.report.beyond.analysis import *  # noqa: F403
from qatlib.report.beyond.analysis import __all__ as _analysis
from qatlib.report.beyond.common import OPTIMIZER_NAMES, TITLES, Answer, glance, run_values
from qatlib.report.beyond.estimators import bits, shape
from qatlib.report.beyond.rates import learning_rate, momentum, momentum_eta
from qatlib.report.beyond.training import kernels, optimizers, weight_decay
from qatlib.report.seeds import Page

__all__ = [
    *_analysis,
    "TITLES",
    "OPTIMIZER_NAMES",
    "Answer",
    "run_values",
    "learning_rate",
    "momentum",
    "momentum_eta",
    "bits",
    "shape",
    "weight_decay",
    "optimizers",
    "kernels",
    "glance",
    "SECTION_PAGES",
    "page",
]


#: The chapter's sections in its order, each a function ``(sweep, preset) -> (Page, Answer)``.
SECTION_PAGES = (learning_rate, momentum, bits, shape, weight_decay, optimizers, kernels)


def page(config: Any, preset: str, sweep: dict[str, Any]) -> Any:
    """Everything the chapter shows, as one :class:`~qatlib.report.seeds.Page`: this page's own
    sweep ``sweep`` of preset ``preset`` run with ``config`` (:func:`run_values`), every section
    (:data:`SECTION_PAGES`, from its committed artefact where the page did not run that preset), the
    order-or-constant paragraph (:func:`momentum_eta`) and the at-a-glance table (:func:`glance`)."""
    parts, answers = [run_values(config, preset, sweep)], []
    for section in SECTION_PAGES:
        part, answer = section(sweep, preset)
        parts.append(part)
        answers.append(answer)
    out = Page.merge([*parts, momentum_eta(sweep, preset)])
    out.tables["tab-beyond-glance"] = glance(answers)
    return out
