"""The book's experiments: one module per chapter, each with its config, presets and ``run(config)``.

* :mod:`qatlib.experiments.config` — the typed, validated config base and preset resolution;
* :mod:`qatlib.experiments.comparison` — which nets train side by side (Tables 1-3) and the paper's Q̂;
* :mod:`qatlib.experiments.records` — the typed results of a run (pairs, nets, runs, sweep runs);
* :mod:`qatlib.experiments.twins` — Q̂-net and STE-net twins on softmax regression, with the
  per-step bounds of Section 5 (the Intuition and Theorems chapters);
* :mod:`qatlib.experiments.intuition`, :mod:`~qatlib.experiments.theorems`,
  :mod:`~qatlib.experiments.mnist`, :mod:`~qatlib.experiments.resnet50` — each chapter's config,
  ``PRESETS`` and run function.

Nothing here writes results: :mod:`qatlib.report` turns results into artefacts, tables and figures
(a record becomes JSON there, and in the sweep cache below).
The one file an experiment writes is its sweep cache (:mod:`qatlib.experiments.sweep`: each
finished run as JSON, so that an interrupted sweep resumes), through :mod:`qatlib.files`.
Submodules are imported on demand.
"""

from __future__ import annotations

__all__ = ["comparison", "config", "intuition", "mnist", "records", "resnet50", "sweep", "theorems", "twins"]
