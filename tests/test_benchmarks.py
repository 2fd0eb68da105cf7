"""The benchmarks measure what they say they measure: the matmul floor computes exactly the training
step's products, and sums the weight gradients over chunks as the step does."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_matmul_floor  # noqa: E402
import bench_mnist_step  # noqa: E402


@pytest.mark.parametrize("batch", [8, 32])
def test_the_floor_computes_the_steps_products_and_no_others(batch):
    step, args = bench_matmul_floor.floor_products(batch, batch)  # one chunk: XLA counts a loop's body once
    cost = step.lower(*args).compile().cost_analysis()
    positions, k, n = bench_mnist_step.PRODUCTS[0]
    images_gradient = 2 * batch * positions * k * n  # the first layer's input gradient: nobody computes it
    assert cost["flops"] == bench_mnist_step.flops_per_step(batch) - images_gradient


def test_the_floor_sums_each_weight_gradient_over_its_chunks():
    step, (inputs, cotangents, kernels) = bench_matmul_floor.floor_products(8, 2)
    grads, outputs, input_grads = step(inputs, cotangents, kernels)
    for grad, x, g in zip(grads, inputs, cotangents, strict=True):
        expected = sum(np.asarray(a, np.float64).T @ np.asarray(c, np.float64) for a, c in zip(x, g, strict=True))
        np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-3)
    assert len(outputs) == len(kernels) and len(input_grads) == len(kernels) - 1


def test_the_floor_refuses_a_chunk_that_does_not_divide_the_batch():
    with pytest.raises(ValueError, match="microbatch must divide the batch: 3 does not divide 8"):
        bench_matmul_floor.floor_products(8, 3)
