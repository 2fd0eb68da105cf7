"""The MNIST convnets, with quantized kernels: Chollet's (2021), which the paper's Section 6 names,
and the Flax MNIST example's CNN, which the authors' public code trains."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax

from qatlib.models.layers import QuantizedConv, QuantizedDense, avg_pool, max_pool, quantizer_tree

__all__ = ["CholletConvNet", "FlaxExampleCNN", "MNIST_MODELS"]

Array = jax.Array


class CholletConvNet(nn.Module):
    """The MNIST convnet of Chollet (2021), Deep Learning with Python, 2nd ed., Listing 8.1.

    conv 3x3 (32) -> ReLU -> max-pool 2 -> conv 3x3 (64) -> ReLU -> max-pool 2 -> conv 3x3 (128)
    -> ReLU -> flatten -> dense (10 logits). All four kernels are quantized with ``bits`` bits over
    their He-uniform ranges (``quantize_dense=False`` keeps the dense kernel in full precision, as
    the authors' code does); the estimator Q-hat is ``estimator``. Input: (batch, 28, 28, 1) in [0, 1].

    Each "ReLU -> max-pool" is evaluated as max-pool -> ReLU: the same function (max commutes with
    the monotone ReLU) and the same gradient bit for bit (where the window's max is positive both
    route it to the same maxima, ties split alike; elsewhere both give zero), with the ReLU on a
    quarter of the elements: 8% faster per training step on the project's 2-core CPU
    (``benchmarks/bench_mnist_step.py``); ``tests/models/test_layers.py`` checks the equality.
    """

    bits: int | None = 2
    estimator: Any = None
    features: tuple[int, ...] = (32, 64, 128)
    num_classes: int = 10
    conv_impl: str = "im2col"
    quantize_dense: bool = True

    @nn.compact
    def __call__(self, x: Array) -> Array:
        if x.ndim != 4:
            raise ValueError(f"expected NHWC images, got shape {x.shape}")
        for index, features in enumerate(self.features):
            x = QuantizedConv(
                features, bits=self.bits, estimator=self.estimator, conv_impl=self.conv_impl, name=f"conv_{index}"
            )(x)
            if index < len(self.features) - 1:
                x = max_pool(x, 2)  # pool, then ReLU: see the class docstring
            x = nn.relu(x)
        x = x.reshape(x.shape[0], -1)
        dense_bits = self.bits if self.quantize_dense else None
        return QuantizedDense(self.num_classes, bits=dense_bits, estimator=self.estimator, name="dense")(x)

    def quantizers(self, params: Any) -> Any:
        """The per-leaf quantizer tree of ``params`` (``None`` on biases, and on the dense kernel
        when ``quantize_dense`` is False)."""

        def quantized(path: tuple[str, ...], leaf: Any) -> bool:
            return path[-1] == "kernel" and (self.quantize_dense or path[0] != "dense")

        return quantizer_tree(params, self.bits, quantized)


class FlaxExampleCNN(nn.Module):
    """The CNN of the Flax MNIST example, which the authors' public code trains (a fork of Flax,
    ``examples/mnist/train.py``; the paper itself names Chollet's net).

    conv 3x3 (32, SAME) -> ReLU -> avg-pool 2 -> conv 3x3 (64, SAME) -> ReLU -> avg-pool 2 -> flatten
    -> dense 256 -> ReLU -> dense 10. As in the authors' code only the two conv kernels are
    quantized (He-uniform, ``bits`` bits over that range); the dense layers are Flax's ``nn.Dense``
    in full precision with its default (LeCun-normal) initialisation.
    """

    bits: int | None = 2
    estimator: Any = None
    num_classes: int = 10
    conv_impl: str = "im2col"

    @nn.compact
    def __call__(self, x: Array) -> Array:
        if x.ndim != 4:
            raise ValueError(f"expected NHWC images, got shape {x.shape}")
        for index, features in enumerate((32, 64)):
            x = QuantizedConv(
                features, padding="SAME", bits=self.bits, estimator=self.estimator, conv_impl=self.conv_impl, name=f"conv_{index}"
            )(x)
            x = avg_pool(nn.relu(x), 2)
        x = x.reshape(x.shape[0], -1)
        x = nn.relu(nn.Dense(256, name="dense_0")(x))
        return nn.Dense(self.num_classes, name="dense_1")(x)

    def quantizers(self, params: Any) -> Any:
        """The per-leaf quantizer tree of ``params``: the conv kernels only."""
        return quantizer_tree(params, self.bits, lambda path, leaf: path[-1] == "kernel" and path[0].startswith("conv"))


#: The MNIST experiments' models by config name.
MNIST_MODELS: dict[str, type[nn.Module]] = {"chollet": CholletConvNet, "flax_example": FlaxExampleCNN}
