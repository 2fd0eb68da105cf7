"""qatlib: custom gradient estimators are straight-through estimators in disguise.

The core of the paper (Schoenbauer, Moro, Lew, Howard; arXiv 2405.05171) as a JAX library:

* :mod:`qatlib.quantizers` — Q (Eq. 1) and the sign quantizer;
* :mod:`qatlib.estimators` — Q̂' for STE, PWL, MAD, HTGE, DSQ, EDE and user-given estimators;
* :mod:`qatlib.quantize` — forward Q(w), backward ∇·Q̂'(w);
* :mod:`qatlib.mirror` — α, M and M⁻¹ (Eq. 4), and STE-net's Appendix G partner estimator;
* :mod:`qatlib.theory` — L₋, L₊, L′ and the per-step bound terms of Theorems 5.1/5.2;
* :mod:`qatlib.metrics` — E_bar (Eq. 5) and quantized weight agreement (Section 6.2).

Importing ``qatlib`` loads only the paper's maths (quantizers, estimators, quantize, mirror,
theory); ``qatlib.metrics`` and everything beyond the maths (models, data, training, experiments,
reporting) are imported by name.
"""

from qatlib import estimators, theory
from qatlib.mirror import alpha, inverse_weight_map, mirror_partner, weight_map, weight_map_derivative
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
    "mirror_partner",
    "theory",
]

__version__ = "0.1.0"
