"""Quantized Flax models of the paper's experiments (Section 6): layers, the MNIST convnet, ResNet50.

Every kernel is quantized with a uniform quantizer over its He-uniform range (:mod:`qatlib.quantizers`)
and trained through a gradient estimator Q̂ (:mod:`qatlib.estimators`); ``quantizer_tree`` gives the
tree of per-leaf quantizers that α, M and the metrics take.
"""

from qatlib.models import convnet, layers, resnet
from qatlib.models.convnet import *  # noqa: F403
from qatlib.models.layers import *  # noqa: F403
from qatlib.models.resnet import *  # noqa: F403

__all__ = [*layers.__all__, *convnet.__all__, *resnet.__all__]
