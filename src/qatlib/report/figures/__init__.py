"""Figures of the book, drawn from :mod:`qatlib` objects (never from hand-typed curves).

* :mod:`qatlib.report.figures.estimators` — Figure 1 (estimators with α), the funhouse mirror (Figure 2)
  from a real Q̂-net / STE-net run, and the per-step bound and η-scaling figures of Section 5.
* :mod:`qatlib.report.figures.training` — training curves and weight-alignment figures (Section 6).
* :mod:`qatlib.report.figures.beyond` — the sweeps of the chapter "When is the STE enough?".

Submodules are imported on demand so that ``import qatlib.report.figures`` stays cheap.
"""

from __future__ import annotations

__all__ = ["beyond", "estimators", "training"]
