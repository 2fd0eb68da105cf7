"""Reporting: results artefacts with provenance, the paper's claims, tables and figures.

* :mod:`qatlib.report.artefacts` — paths, atomic JSON, provenance (data, device, versions, commit);
* :mod:`qatlib.report.measure` — run a chapter's measurement and write its artefact;
* :mod:`qatlib.report.claims` — claims A, B and accuracy decided from a results JSON;
* :mod:`qatlib.report.tables` — Tables 4 and 5 beside the paper's, the mirror room, provenance;
* :mod:`qatlib.report.paper` — the paper's printed numbers;
* :mod:`qatlib.report.figures` — the book's figures.

Submodules are imported on demand.
"""

from __future__ import annotations

__all__ = ["artefacts", "measure", "claims", "tables", "paper", "figures"]
