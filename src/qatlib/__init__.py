"""qatlib: custom gradient estimators are straight-through estimators in disguise.

The core of the paper (Schoenbauer, Moro, Lew, Howard; arXiv 2405.05171) as a JAX library:

* :mod:`qatlib.quantizers` — Q (Eq. 1) and the sign quantizer;
* :mod:`qatlib.estimators` — Q̂' for STE, PWL, MAD, HTGE, DSQ, EDE and user-given estimators;
* :mod:`qatlib.quantize` — forward Q(w), backward ∇·Q̂'(w);
* :mod:`qatlib.mirror` — α, M and M⁻¹ (Eq. 4);
* :mod:`qatlib.theory` — L₋, L₊, L′ and the per-step bound terms of Theorems 5.1/5.2.
"""

from qatlib import estimators, presets, theory
from qatlib.mirror import alpha, inverse_weight_map, weight_map, weight_map_derivative
from qatlib.quantize import quantize, quantize_tree
from qatlib.quantizers import BinaryQuantizer, UniformQuantizer

__all__ = [
    "UniformQuantizer",
    "BinaryQuantizer",
    "estimators",
    "quantize",
    "quantize_tree",
    "alpha",
    "weight_map",
    "inverse_weight_map",
    "weight_map_derivative",
    "theory",
    "presets",
]

__version__ = "0.1.0"
