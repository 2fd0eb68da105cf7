"""Figures of the book, drawn from :mod:`qatlib` objects (never from hand-typed curves).

* :mod:`qatlib.plots.estimators` — Figure 1 (estimators with α), the funhouse mirror (Figure 2)
  from a real Q̂-net / STE-net run, and the per-step bound and η-scaling figures of Section 5.
* :mod:`qatlib.plots.training` — training curves and weight-alignment figures (Section 6).

Submodules are imported on demand so that ``import qatlib.plots`` stays cheap.
"""

from __future__ import annotations

__all__ = ["estimators", "training"]
