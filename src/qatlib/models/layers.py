"""Quantized Flax layers, shared by every model of the paper's Section 6 (the MNIST convnet, ResNet50).

Layer API (shared by every model in the project, e.g. the ResNet50 of :mod:`qatlib.models.resnet`)
-------------------------------------------------------------------------------------------------
* :class:`QuantizedDense` and :class:`QuantizedConv` are drop-in replacements for ``nn.Dense`` /
  ``nn.Conv`` whose kernel ``w`` is used in the forward pass as ``Q(w)`` through
  :func:`qatlib.quantize` (forward exactly ``Q(w)``, backward ``g * Q-hat'(w)``, Eq. 1 and the
  custom VJP of the core library). Biases (and BatchNorm parameters) are never quantized;
  activations are not quantized (Section 6.1).
* Each layer builds its own **per-layer quantizer** from the kernel's fan-in:
  :func:`kernel_quantizer` ``(bits, fan_in)`` = a uniform ``bits``-bit quantizer whose
  representable range is the He-uniform initialisation bound ``[-sqrt(6/fan_in), +sqrt(6/fan_in)]``
  (the paper's "representable range limits given by bounds of the weight initialization
  distribution"). ``bits=None`` leaves the kernel in full precision.
* The **estimator** Q-hat is given per model (a frozen, hashable ``qatlib.estimators`` object),
  and passed down to every layer. Q-hat-net and STE-net are the same module with a different
  ``estimator`` field.
* :func:`quantizer_tree` rebuilds, from a params tree alone, the tree of per-kernel quantizers the
  layers use (``None`` for leaves that are not quantized), which is what ``qatlib.weight_map``,
  ``qatlib.alpha`` and the metrics take.
* ``conv_impl="im2col"`` lowers a convolution to one matmul over extracted patches (faster on
  XLA:CPU, whose convolution weight-gradient is slow); ``"lax"`` uses ``lax.conv_general_dilated``
  (the natural choice on GPU/TPU). Both give the same function.

>>> import jax, jax.numpy as jnp
>>> from qatlib import estimators
>>> from qatlib.models import CholletConvNet
>>> model = CholletConvNet(bits=2, estimator=estimators.STE())
>>> params = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))["params"]
>>> [tuple(params[name]["kernel"].shape) for name in ("conv_0", "conv_1", "conv_2", "dense")]
[(3, 3, 1, 32), (3, 3, 32, 64), (3, 3, 64, 128), (1152, 10)]
>>> round(he_uniform_bound(9), 4)
0.8165
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

import qatlib

__all__ = [
    "he_uniform_bound",
    "kernel_quantizer",
    "quantizer_tree",
    "quantize_kernel",
    "QuantizedDense",
    "QuantizedConv",
    "max_pool",
    "avg_pool",
    "pool_windows",
]

Array = jax.Array
PyTree = Any


def he_uniform_bound(fan_in: int) -> float:
    """The He-uniform initialisation bound sqrt(6 / fan_in) (He et al. 2015, uniform variant).

    >>> he_uniform_bound(6)
    1.0
    """
    if fan_in <= 0:
        raise ValueError(f"fan_in must be positive, got {fan_in}")
    return math.sqrt(6.0 / fan_in)


def kernel_quantizer(bits: int | None, fan_in: int) -> Any:
    """The per-layer quantizer: ``bits`` bits over the He-uniform range [-w_max, w_max].

    Levels are -w_max + n * Delta with Delta = 2 w_max / (2^bits - 1) (Eq. 1), w_max = sqrt(6/fan_in).
    ``bits=None`` means a full-precision kernel (returns ``None``).
    """
    if bits is None:
        return None
    if not isinstance(bits, int) or bits < 1:
        raise ValueError(f"bits must be a positive integer or None, got {bits!r}")
    return qatlib.UniformQuantizer.from_bits(bits=bits, w_max=he_uniform_bound(fan_in))


def _fan_in(kernel_shape: Sequence[int]) -> int:
    """Fan-in of a Dense (in, out) or Conv (kh, kw, in, out) kernel: all axes but the last."""
    return int(math.prod(kernel_shape[:-1]))


def quantizer_tree(
    params: PyTree,
    bits: int | None,
    should_quantize: Callable[[tuple[str, ...], Array], bool] | None = None,
) -> PyTree:
    """The tree of per-layer quantizers parallel to ``params`` (``None`` = not quantized).

    By default every leaf named ``kernel`` is quantized (the rule the layers here follow); a
    custom ``should_quantize(path, leaf)`` lets a model exclude layers.

    >>> import jax.numpy as jnp
    >>> tree = quantizer_tree({"dense": {"kernel": jnp.zeros((6, 2)), "bias": jnp.zeros(2)}}, bits=2)
    >>> tree["dense"]["bias"] is None, tree["dense"]["kernel"].representable_range
    (True, (-1.0, 1.0))
    """
    if should_quantize is None:
        def should_quantize(path: tuple[str, ...], leaf: Array) -> bool:
            return path[-1] == "kernel"

    def build(path: tuple[Any, ...], leaf: Array) -> Any:
        names = tuple(str(getattr(key, "key", getattr(key, "name", key))) for key in path)
        if bits is None or not should_quantize(names, leaf):
            return None
        return kernel_quantizer(bits, _fan_in(leaf.shape))

    return jax.tree_util.tree_map_with_path(build, params)


def quantize_kernel(kernel: Array, bits: int | None, estimator: Any) -> Array:
    """Q(kernel) in the forward pass, ``g * Q-hat'(kernel)`` in the backward pass (per-layer quantizer)."""
    quantizer = kernel_quantizer(bits, _fan_in(kernel.shape))
    if quantizer is None:
        return kernel
    if estimator is None:
        raise ValueError("a quantized layer needs an estimator (e.g. qatlib.estimators.STE())")
    return qatlib.quantize(kernel, quantizer, estimator)


class QuantizedDense(nn.Module):
    """``nn.Dense`` whose kernel passes through its per-layer quantizer (He-uniform init and range)."""

    features: int
    bits: int | None = 2
    estimator: Any = None
    use_bias: bool = True

    @nn.compact
    def __call__(self, x: Array) -> Array:
        kernel = self.param("kernel", nn.initializers.he_uniform(), (x.shape[-1], self.features))
        y = x @ quantize_kernel(kernel, self.bits, self.estimator)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros_init(), (self.features,))
        return y


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _im2col_conv(x: Array, kernel: Array, strides: tuple[int, int], padding: str) -> Array:
    """NHWC convolution (cross-correlation, like ``lax.conv``) as one matmul over patches."""
    kh, kw, cin, cout = kernel.shape
    if padding == "SAME":
        ph = _same_padding(x.shape[1], kh, strides[0])
        pw = _same_padding(x.shape[2], kw, strides[1])
        x = jnp.pad(x, ((0, 0), ph, pw, (0, 0)))
    height = (x.shape[1] - kh) // strides[0] + 1
    width = (x.shape[2] - kw) // strides[1] + 1
    patches = [
        x[:, i : i + strides[0] * (height - 1) + 1 : strides[0], j : j + strides[1] * (width - 1) + 1 : strides[1], :]
        for i in range(kh)
        for j in range(kw)
    ]
    columns = jnp.concatenate(patches, axis=-1) if len(patches) > 1 else patches[0]
    return columns @ kernel.reshape(kh * kw * cin, cout)


class QuantizedConv(nn.Module):
    """``nn.Conv`` (NHWC, kernel (kh, kw, in, out)) whose kernel passes through its per-layer quantizer.

    ``padding`` is ``"VALID"`` or ``"SAME"``; ``conv_impl`` is ``"im2col"`` or ``"lax"``.
    """

    features: int
    kernel_size: tuple[int, int] = (3, 3)
    strides: tuple[int, int] = (1, 1)
    padding: str = "VALID"
    bits: int | None = 2
    estimator: Any = None
    use_bias: bool = True
    conv_impl: str = "im2col"

    @nn.compact
    def __call__(self, x: Array) -> Array:
        if self.padding not in ("VALID", "SAME"):
            raise ValueError(f"padding must be 'VALID' or 'SAME', got {self.padding!r}")
        if self.conv_impl not in ("im2col", "lax"):
            raise ValueError(f"conv_impl must be 'im2col' or 'lax', got {self.conv_impl!r}")
        shape = (*self.kernel_size, x.shape[-1], self.features)
        kernel = quantize_kernel(self.param("kernel", nn.initializers.he_uniform(), shape), self.bits, self.estimator)
        strides = tuple(self.strides)
        if self.conv_impl == "im2col":
            y = _im2col_conv(x, kernel, strides, self.padding)
        else:
            y = jax.lax.conv_general_dilated(
                x, kernel, strides, self.padding, dimension_numbers=("NHWC", "HWIO", "NHWC")
            )
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros_init(), (self.features,))
        return y


def pool_windows(x: Array, window: int = 2) -> Array:
    """NHWC ``x`` cut to whole non-overlapping ``window x window`` windows (a last partial row or
    column dropped, as VALID pooling does), shaped ``(batch, h, window, w, window, channels)``."""
    batch, height, width, channels = x.shape
    h, w = height // window, width // window
    return x[:, : h * window, : w * window, :].reshape(batch, h, window, w, window, channels)


def max_pool(x: Array, window: int = 2) -> Array:
    """Non-overlapping ``window x window`` max pooling (stride = window, VALID) by reshape and max.

    Equal to ``nn.max_pool(x, (w, w), (w, w))`` in value; its backward pass is an elementwise
    select rather than XLA:CPU's slow select-and-scatter.

    >>> import jax.numpy as jnp
    >>> max_pool(jnp.arange(16.0).reshape(1, 4, 4, 1))[0, :, :, 0].tolist()
    [[5.0, 7.0], [13.0, 15.0]]
    """
    return pool_windows(x, window).max(axis=(2, 4))


def avg_pool(x: Array, window: int = 2) -> Array:
    """Non-overlapping ``window x window`` average pooling (stride = window, VALID) by reshape and mean.

    Equal to ``nn.avg_pool(x, (w, w), (w, w))`` up to float32 rounding (the sum's order).

    >>> import jax.numpy as jnp
    >>> avg_pool(jnp.arange(16.0).reshape(1, 4, 4, 1))[0, :, :, 0].tolist()
    [[2.5, 4.5], [10.5, 12.5]]
    """
    return pool_windows(x, window).mean(axis=(2, 4))
