"""ResNet50 with every convolution and dense kernel quantized through a gradient estimator.

The structure follows the Flax ImageNet example (``examples/imagenet/models.py``): a 7x7/2 stem
convolution, BatchNorm, ReLU, a 3x3/2 max-pool, bottleneck blocks (1x1, 3x3, 1x1 x4) in stages
of 3-4-6-3 blocks with 64-128-256-512 filters, a 1x1 projection (conv + BatchNorm) where the
shape changes, the last BatchNorm of each block initialised to a zero scale, global average
pooling and a dense head. BatchNorm uses momentum 0.9 and epsilon 1e-5, convolutions have no bias.

What differs from the example is the paper's quantization setup (Section 6.1): each kernel is a
:class:`qatlib.models.QuantizedConv` / :class:`~qatlib.models.QuantizedDense` -- He-uniform
initialisation, a ``bits``-bit uniform quantizer over the He-uniform range ``[-sqrt(6/fan_in),
+sqrt(6/fan_in)]`` of its layer, forward ``Q(w)`` exactly, backward ``g * Q-hat'(w)`` for the
model's ``estimator`` (Eq. 1 and the custom VJP of :func:`qatlib.quantize`). BatchNorm
parameters and activations stay in full precision. Q-hat-net and STE-net are the same module
with different ``estimator`` fields; :func:`qatlib.models.quantizer_tree` rebuilds the per-kernel
quantizers from a params tree.

The stem pads by 3 on each side and convolves VALID, which is the example's explicit
``padding=[(3, 3), (3, 3)]``. At 32x32 input (the CPU default) the stem and max-pool leave 8x8
and the four stages 8, 4, 2, 1 pixels: the same network, far less compute than 224x224.

>>> import jax, jax.numpy as jnp
>>> from qatlib import estimators
>>> model = ResNet(stage_sizes=(1, 1), num_filters=4, num_classes=3, estimator=estimators.STE())
>>> variables = model.init(jax.random.key(0), jnp.zeros((2, 32, 32, 3)), train=False)
>>> sorted(variables)
['batch_stats', 'params']
>>> logits, updates = model.apply(variables, jnp.ones((2, 32, 32, 3)), train=True, mutable=["batch_stats"])
>>> logits.shape
(2, 3)
>>> count_quantized_kernels(variables["params"])
10
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from qatlib.models.layers import QuantizedConv, QuantizedDense

__all__ = [
    "BottleneckResNetBlock",
    "ResNet",
    "ResNet50",
    "RESNET50_STAGE_SIZES",
    "count_quantized_kernels",
]

Array = jax.Array
ModuleDef = Any

RESNET50_STAGE_SIZES = (3, 4, 6, 3)


class BottleneckResNetBlock(nn.Module):
    """1x1 (filters) -> 3x3/strides (filters) -> 1x1 (4 filters), BatchNorm + ReLU between, residual add."""

    filters: int
    conv: ModuleDef
    norm: ModuleDef
    act: Callable[[Array], Array]
    strides: tuple[int, int] = (1, 1)

    @nn.compact
    def __call__(self, x: Array) -> Array:
        residual = x
        y = self.conv(self.filters, (1, 1))(x)
        y = self.act(self.norm()(y))
        y = self.conv(self.filters, (3, 3), self.strides)(y)
        y = self.act(self.norm()(y))
        y = self.conv(self.filters * 4, (1, 1))(y)
        y = self.norm(scale_init=nn.initializers.zeros_init())(y)
        if residual.shape != y.shape:
            residual = self.conv(self.filters * 4, (1, 1), self.strides, name="conv_proj")(residual)
            residual = self.norm(name="norm_proj")(residual)
        return self.act(residual + y)


class ResNet(nn.Module):
    """The Flax example's ResNet with quantized kernels.

    Attributes:
      stage_sizes: blocks per stage (ResNet50: 3-4-6-3).
      num_classes: logits of the dense head.
      num_filters: filters of the first stage (doubled at each later stage).
      bits: weight bits of every kernel (``None``: full precision).
      estimator: the gradient estimator Q-hat of every quantized kernel.
      conv_impl: ``"im2col"`` (faster on XLA:CPU) or ``"lax"`` (use on GPU/TPU); same function.
      dtype: BatchNorm/activation dtype (float32; the paper's deterministic runs used float32).
    """

    stage_sizes: Sequence[int] = RESNET50_STAGE_SIZES
    num_classes: int = 1000
    num_filters: int = 64
    bits: int | None = 2
    estimator: Any = None
    conv_impl: str = "im2col"
    dtype: Any = jnp.float32
    act: Callable[[Array], Array] = nn.relu

    @nn.compact
    def __call__(self, x: Array, train: bool = True) -> Array:
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"expected NHWC RGB images, got shape {x.shape}")
        if not self.stage_sizes or min(self.stage_sizes) < 1:
            raise ValueError(f"stage_sizes must be positive block counts, got {self.stage_sizes}")
        conv = functools.partial(
            QuantizedConv,
            use_bias=False,
            padding="SAME",
            bits=self.bits,
            estimator=self.estimator,
            conv_impl=self.conv_impl,
        )
        norm = functools.partial(
            nn.BatchNorm, use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=self.dtype
        )
        x = jnp.pad(x.astype(self.dtype), ((0, 0), (3, 3), (3, 3), (0, 0)))
        x = conv(self.num_filters, (7, 7), (2, 2), padding="VALID", name="conv_init")(x)
        x = nn.relu(norm(name="bn_init")(x))
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
        for stage, block_count in enumerate(self.stage_sizes):
            for block in range(block_count):
                strides = (2, 2) if stage > 0 and block == 0 else (1, 1)
                x = BottleneckResNetBlock(
                    self.num_filters * 2**stage, conv=conv, norm=norm, act=self.act, strides=strides
                )(x)
        x = jnp.mean(x, axis=(1, 2))
        x = QuantizedDense(self.num_classes, bits=self.bits, estimator=self.estimator, name="head")(x)
        return jnp.asarray(x, jnp.float32)


ResNet50 = functools.partial(ResNet, stage_sizes=RESNET50_STAGE_SIZES)
"""ResNet50: ``ResNet`` with stages 3-4-6-3 (54 quantized kernels: the stem, 48 block convs, 4 projections, the head)."""


def count_quantized_kernels(params: Any) -> int:
    """The number of ``kernel`` leaves in a params tree (every one of them is quantized)."""
    paths = jax.tree_util.tree_flatten_with_path(params)[0]
    return sum(1 for path, _ in paths if str(getattr(path[-1], "key", path[-1])) == "kernel")
