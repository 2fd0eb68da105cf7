"""Training steps per second of the quantized MNIST convnet at batch 128: qatlib (JAX) vs PyTorch, on this CPU.

Run by hand (not in CI), from the repository root::

    .venv/bin/pip install torch==2.13.0      # benchmark-only dependency (CPU build)
    .venv/bin/python benchmarks/bench_mnist_step.py [--repeats 5] [--steps 20]

Measures, in one process and interleaved so that both frameworks see the same machine load:

* ``jax_straightforward``: one net, ``lax.conv`` convolutions and ``nn.max_pool`` (the obvious Flax code);
* ``jax_qatlib``: one net as the library builds it (im2col convolutions, reshape-max pooling);
* ``jax_separate_4`` / ``jax_one_call_4`` / ``jax_vmap_4``: four nets per step as four separately
  jitted steps, as one jitted function holding the four steps (what ``train.make_lockstep_step``
  does), and as one ``jax.vmap`` over stacked weights;
* ``torch``: the same net in PyTorch with STE fake-quantized weights (exact Q(w) forward, gradient
  masked to the representable range), SGD with momentum 0.9;
* the float32 matmul peak (1024 x 1024 x 1024) of XLA and of PyTorch.

Writes ``benchmarks/results/mnist_step.json``. Every step updates every quantized kernel with the
clipped STE (PWL), SGD + momentum, lr 1e-3, batch 128 of random 28x28 images.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from qatlib import estimators, models
from qatlib.report import artefacts as results
from qatlib.training import lockstep as train

BATCH = 128
ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------- FLOPs
def flops_per_step(batch: int = BATCH) -> float:
    """Multiply-adds x 2 of the forward pass, x 3 for forward + both backward products."""
    conv = [(26 * 26, 9 * 1, 32), (11 * 11, 9 * 32, 64), (3 * 3, 9 * 64, 128)]
    forward = sum(positions * k * n for positions, k, n in conv) + 1152 * 10
    return 2.0 * 3.0 * forward * batch


# ------------------------------------------------------------------------------------- JAX
class StraightforwardNet(nn.Module):
    """The obvious Flax code: lax convolutions and nn.max_pool (select-and-scatter backward)."""

    @nn.compact
    def __call__(self, x):
        for index, features in enumerate((32, 64, 128)):
            x = models.QuantizedConv(features, bits=2, estimator=estimators.PWL(), conv_impl="lax")(x)
            x = nn.relu(x)
            if index < 2:
                x = nn.max_pool(x, (2, 2), (2, 2))
        x = x.reshape(x.shape[0], -1)
        return models.QuantizedDense(10, bits=2, estimator=estimators.PWL())(x)


def jax_step_fn(model):
    optimizer = optax.sgd(1e-3, momentum=0.9)

    def step(params, opt_state, x, y):
        def loss(p):
            return train.cross_entropy(model.apply({"params": p}, x), y)

        value, grads = jax.value_and_grad(loss)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    return step, optimizer


def time_calls(fn, args, steps: int, repeats: int) -> float:
    """Best steps/s over ``repeats`` timings of ``steps`` calls (after one warm-up call)."""
    out = fn(*args)
    jax.block_until_ready(out)
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            out = fn(*args)
        jax.block_until_ready(out)
        best = max(best, steps / (time.perf_counter() - start))
    return best


def jax_benchmarks(steps: int, repeats: int) -> dict[str, float]:
    x = jax.random.uniform(jax.random.key(1), (BATCH, 28, 28, 1))
    y = jax.random.randint(jax.random.key(2), (BATCH,), 0, 10)
    out = {}
    for name, model in (
        ("jax_straightforward", StraightforwardNet()),
        ("jax_qatlib", models.CholletConvNet(bits=2, estimator=estimators.PWL())),
    ):
        params = model.init(jax.random.key(0), x[:1])["params"]
        step, optimizer = jax_step_fn(model)
        out[name] = time_calls(jax.jit(step), (params, optimizer.init(params), x, y), steps, repeats)

    model = models.CholletConvNet(bits=2, estimator=estimators.PWL())
    step, optimizer = jax_step_fn(model)
    params = [model.init(jax.random.key(i), x[:1])["params"] for i in range(4)]
    states = [optimizer.init(p) for p in params]
    jitted = jax.jit(step)

    def separate(ps, ss, x, y):
        return [jitted(p, s, x, y) for p, s in zip(ps, ss, strict=True)]

    out["jax_separate_4"] = 4 * time_calls(separate, (params, states, x, y), steps, repeats)

    def one_call(ps, ss, x, y):
        return [step(p, s, x, y) for p, s in zip(ps, ss, strict=True)]

    out["jax_one_call_4"] = 4 * time_calls(jax.jit(one_call), (params, states, x, y), steps, repeats)
    stacked_p = jax.tree.map(lambda *leaves: jnp.stack(leaves), *params)
    stacked_s = jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)
    vmapped = jax.jit(jax.vmap(step, in_axes=(0, 0, None, None)))
    out["jax_vmap_4"] = 4 * time_calls(vmapped, (stacked_p, stacked_s, x, y), steps, repeats)
    return out


def jax_matmul_peak(repeats: int) -> float:
    a = jax.random.normal(jax.random.key(0), (1024, 1024))
    b = jax.random.normal(jax.random.key(1), (1024, 1024))
    dot = jax.jit(jnp.dot)
    return 2 * 1024**3 * time_calls(dot, (a, b), 20, repeats) / 1e9


# ------------------------------------------------------------------------------------- PyTorch
def torch_benchmark(steps: int, repeats: int) -> tuple[float, float, str]:
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)

    class FakeQuantSTE(torch.autograd.Function):
        """Forward: exact Q(w) (2-bit, levels -w_max + n Delta); backward: g on [-w_max, w_max], else 0."""

        @staticmethod
        def forward(ctx, w, w_max):
            delta = 2 * w_max / 3
            ctx.save_for_backward(w)
            ctx.w_max = w_max
            n = torch.round(torch.clamp((w + w_max) / delta, 0, 3))
            return -w_max + n * delta

        @staticmethod
        def backward(ctx, grad):
            (w,) = ctx.saved_tensors
            return grad * ((w >= -ctx.w_max) & (w <= ctx.w_max)).to(grad.dtype), None

    class QConv(torch.nn.Conv2d):
        def forward(self, x):
            w_max = (6 / (self.in_channels * 9)) ** 0.5
            return torch.nn.functional.conv2d(x, FakeQuantSTE.apply(self.weight, w_max), self.bias)

    class QLinear(torch.nn.Linear):
        def forward(self, x):
            w_max = (6 / self.in_features) ** 0.5
            return torch.nn.functional.linear(x, FakeQuantSTE.apply(self.weight, w_max), self.bias)

    net = torch.nn.Sequential(
        QConv(1, 32, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        QConv(32, 64, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        QConv(64, 128, 3), torch.nn.ReLU(), torch.nn.Flatten(), QLinear(1152, 10),
    )
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    x = torch.rand(BATCH, 1, 28, 28)
    y = torch.randint(0, 10, (BATCH,))

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        optimizer.step()

    step()
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        best = max(best, steps / (time.perf_counter() - start))
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    torch.mm(a, b)
    peak = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(20):
            torch.mm(a, b)
        peak = max(peak, 20 * 2 * 1024**3 / (time.perf_counter() - start) / 1e9)
    return best, peak, torch.__version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="steps per timing")
    parser.add_argument("--repeats", type=int, default=5, help="timings per measurement (best is kept)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved JAX/PyTorch rounds (best is kept)")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "mnist_step.json"))
    args = parser.parse_args(argv)

    load_before = os.getloadavg()
    jax_rates: dict[str, float] = {}
    torch_rate = torch_peak = 0.0
    torch_version = None
    for round_index in range(args.rounds):
        for key, value in jax_benchmarks(args.steps, args.repeats).items():
            jax_rates[key] = max(jax_rates.get(key, 0.0), value)
        rate, peak, torch_version = torch_benchmark(args.steps, args.repeats)
        torch_rate, torch_peak = max(torch_rate, rate), max(torch_peak, peak)
        print(f"round {round_index + 1}: jax {jax_rates}, torch {torch_rate:.1f} steps/s", file=sys.stderr)
    xla_peak = jax_matmul_peak(args.repeats)
    flops = flops_per_step()
    report = {
        "what": "training steps/s of the 2-bit quantized Chollet MNIST convnet, batch 128, SGD+momentum, clipped STE",
        "batch": BATCH,
        "gflop_per_step": flops / 1e9,
        "steps_per_second": {**jax_rates, "torch": torch_rate},
        "gflops_achieved": {key: rate * flops / 1e9 for key, rate in {**jax_rates, "torch": torch_rate}.items()},
        "ratio_qatlib_over_torch": jax_rates["jax_qatlib"] / torch_rate,
        "ratio_best_lockstep_per_net_over_torch": max(
            jax_rates["jax_separate_4"], jax_rates["jax_one_call_4"], jax_rates["jax_vmap_4"]
        ) / 4 / torch_rate,
        "fused_vs_separate": {
            "one_call_over_separate": jax_rates["jax_one_call_4"] / jax_rates["jax_separate_4"],
            "vmap_over_separate": jax_rates["jax_vmap_4"] / jax_rates["jax_separate_4"],
            "note": "steps_per_second of the *_4 entries count net-steps (4 per call)",
        },
        "matmul_peak_gflops": {"xla": xla_peak, "torch": torch_peak},
        "load_average_before_after": [list(load_before), list(os.getloadavg())],
        "machine": results.device_info(),
        "versions": {**results.package_versions(), "torch": torch_version},
        "settings": {"steps": args.steps, "repeats": args.repeats, "rounds": args.rounds},
    }
    path = results.write_json(args.output, report)
    print(f"qatlib {jax_rates['jax_qatlib']:.1f} steps/s, torch {torch_rate:.1f} steps/s "
          f"(ratio {report['ratio_qatlib_over_torch']:.2f}); matmul peak XLA {xla_peak:.0f} GFLOP/s; wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
