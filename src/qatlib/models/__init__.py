"""Quantized Flax models of the paper's experiments (Section 6): layers, the MNIST convnet, ResNet50.

Every kernel is quantized with a uniform quantizer over its He-uniform range (:mod:`qatlib.quantizers`)
and trained through a gradient estimator Q̂ (:mod:`qatlib.estimators`); ``quantizer_tree`` gives the
tree of per-leaf quantizers that α, M and the metrics take.
"""

from qatlib.models.convnet import CholletConvNet
from qatlib.models.layers import (
    QuantizedConv,
    QuantizedDense,
    he_uniform_bound,
    kernel_quantizer,
    max_pool,
    quantize_kernel,
    quantizer_tree,
)
from qatlib.models.resnet import RESNET50_STAGE_SIZES, BottleneckResNetBlock, ResNet, ResNet50, count_quantized_kernels

__all__ = [
    "he_uniform_bound",
    "kernel_quantizer",
    "quantizer_tree",
    "quantize_kernel",
    "QuantizedDense",
    "QuantizedConv",
    "max_pool",
    "CholletConvNet",
    "BottleneckResNetBlock",
    "ResNet",
    "ResNet50",
    "RESNET50_STAGE_SIZES",
    "count_quantized_kernels",
]
