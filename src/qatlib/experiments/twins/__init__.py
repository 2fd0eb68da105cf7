"""Q̂-net and STE-net trained side by side in float64 on a small real problem, with the per-weight,
per-step terms of the bounds of Section 5: the twin simulator the theorems chapter checks them on.

* :mod:`~qatlib.experiments.twins.simulator` -- the problem, a pair's configuration and the run
  (:func:`run_pair`), recording every bound term per weight per step;
* :mod:`~qatlib.experiments.twins.analysis` -- what a run says (:func:`summarize`, :func:`eta_sweep`,
  the threshold crossings).

It is a simulator beside the lock-step trainer (:mod:`qatlib.training.lockstep`), not a second
trainer: it tracks terms per weight that a trainer does not.
"""

from qatlib.experiments.twins.analysis import *  # noqa: F403
from qatlib.experiments.twins.analysis import __all__ as _analysis
from qatlib.experiments.twins.simulator import *  # noqa: F403
from qatlib.experiments.twins.simulator import __all__ as _simulator

__all__ = [*_simulator, *_analysis]
