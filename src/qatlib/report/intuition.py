"""The Intuition chapter's report: when the two twins of a funhouse-mirror run first change bins
(:func:`qatlib.experiments.twins.crossing_lags`), as the numbers its prose glues and the table it
shows; the chapter itself is prose with short calls.

>>> import numpy as np
>>> from qatlib.experiments.twins import CrossingLags
>>> stats = lag_stats(CrossingLags(lags=np.array([0, 0, 1, -2, 3]), only_q=2, only_s=1))
>>> stats["both crossed"], stats["same step (%)"], stats["within 2 steps (%)"], stats["max lag (steps)"]
(5, 40.0, 80.0, 3)
>>> lag_column(stats)
['5', '40.0', '60.0', '80.0', '3', '3']
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from qatlib.report import markup

if TYPE_CHECKING:
    from qatlib.experiments.twins import CrossingLags

__all__ = ["LAG_ROWS", "lag_stats", "lag_column", "lag_table"]

#: The rows of :func:`lag_table`, one per entry of :func:`lag_stats` in its order.
LAG_ROWS = (
    "pairs where both twins changed bins",
    "first change at the same step (%)",
    "within 1 step (%)",
    "within 2 steps (%)",
    "largest lag (steps)",
    "changed bins in one net only",
)


def lag_stats(result: CrossingLags) -> dict[str, int | float]:
    """How far apart the twins first changed bins: the number of weights where both did
    (``'both crossed'``), the percentage of those whose lags are 0, at most 1 and at most 2 steps
    (``'same step (%)'``, ``'within 1 step (%)'``, ``'within 2 steps (%)'``, in percent, not as
    fractions; 0 when no weight crossed), the largest lag (``'max lag (steps)'``) and the weights
    that changed bins in one net only (``'only one twin crossed'``)."""
    lag = np.abs(result.lags)
    n = max(lag.size, 1)
    return {
        "both crossed": int(lag.size),
        "same step (%)": float(100 * np.sum(lag == 0) / n),
        "within 1 step (%)": float(100 * np.sum(lag <= 1) / n),
        "within 2 steps (%)": float(100 * np.sum(lag <= 2) / n),
        "max lag (steps)": int(lag.max()) if lag.size else 0,
        "only one twin crossed": result.only_q + result.only_s,
    }


def lag_column(stats: dict[str, int | float]) -> list[str]:
    """One column of :func:`lag_table`: :func:`lag_stats`'s values as table cells, counts with
    thousands separated (:func:`qatlib.report.markup.integer`), percentages with one decimal and no
    percent sign (the row says "(%)")."""
    return [
        markup.integer(stats["both crossed"]),
        f"{stats['same step (%)']:.1f}",
        f"{stats['within 1 step (%)']:.1f}",
        f"{stats['within 2 steps (%)']:.1f}",
        markup.integer(stats["max lag (steps)"]),
        markup.integer(stats["only one twin crossed"]),
    ]


def lag_table(reinitialised: dict[str, int | float], unadjusted: dict[str, int | float]) -> Any:
    """The table of first bin changes (rows :data:`LAG_ROWS`, index ``first bin change``): one
    column for the pair whose STE-net is re-initialised by M, one for the unadjusted pair, each
    from :func:`lag_stats`; ready for :func:`qatlib.report.markup.table`."""
    import pandas as pd

    return pd.DataFrame(
        {"re-initialised by $M$": lag_column(reinitialised), "unadjusted": lag_column(unadjusted)},
        index=pd.Index(list(LAG_ROWS), name="first bin change"),
    )
