"""How fast could the MNIST training step be under XLA:CPU with the library's im2col lowering? The
step's matrix products alone, timed side by side with the step itself and PyTorch's.

Run by hand from the repository root (about 3 minutes on the 2-core Xeon; needs the benchmark-only
``torch``, as ``bench_mnist_step.py`` does)::

    .venv/bin/python benchmarks/bench_matmul_floor.py [--rounds 15] [--calls 3] [--one-core]

At each batch size (128 and 600), the variants are interleaved round by round, ``--calls`` calls per
round, so that each sees the same machine load. Speeds are compared within a round (this VM's speed
drifts by up to 2x over minutes) and the median over rounds is reported, with the range:

* ``qatlib``: the library's training step of the 2-bit convnet at the chunk size ``bench_mnist_step``
  uses (16 examples at batch 128, the ``paper`` preset's 25 at batch 600);
* ``qatlib_lax``: the same with ``conv_impl="lax"``, XLA's own convolutions instead of im2col;
* ``torch``: the same net's step in PyTorch (:func:`bench_mnist_step.torch_step`);
* ``floor_<m>``: only the products that step computes, at its shapes, with gradients summed over
  chunks of ``m`` examples in one ``lax.scan`` as the library sums them: per conv layer the forward
  ``(m P, K) @ (K, N)``, the weight gradient ``(K, m P) @ (m P, N)`` and, except for the first layer
  (the images need no gradient), the input gradient ``(m P, N) @ (N, K)``; the same three for the
  dense layer. No im2col, pooling, ReLU, quantizer, loss or optimizer work: a step of the library
  can be no faster than its fastest floor unless it computes fewer or cheaper products.
* ``matmul_2048``: a 2048 x 2048 product, XLA's float32 matmul peak on this machine.

``speed_over_torch`` of the fastest floor is its speed over PyTorch's. Where it is below the issue's goal
(1.5x at batch 128, 2x at batch 600), the goal cannot be met by trimming the step's other work:
it needs products XLA runs faster, or another lowering.

``--one-core`` runs everything as each process of a ``workers=2`` run is run (the ``paper`` preset's
artefact runs so): XLA single-threaded, the process pinned to one core, PyTorch on one thread; the
peak is then one core's.

Writes ``benchmarks/results/matmul_floor_<isa>.json`` (``_one_core`` appended with ``--one-core``)
with the machine and versions.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_mnist_step import PRODUCTS, SETTINGS, flops_per_step, matmul_product, qatlib_step, torch_step  # noqa: E402
from bench_threads import timings  # noqa: E402

from qatlib.experiments import sweep  # noqa: E402
from qatlib.report import artefacts  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: Per batch size: the issue's goal (qatlib's speed over PyTorch's) and the chunk sizes of the floor.
GOALS = {128: 1.5, 600: 2.0}
CHUNKS = {128: (16, 32, 64, 128), 600: (25, 50, 100, 600)}
PEAK_SIZE = 2048


def floor_products(batch: int, microbatch: int) -> tuple[Callable, tuple]:
    """The step's products alone (see the module docstring), gradients summed over chunks of
    ``microbatch`` examples: a jitted function and its arguments (random operands of the step's
    shapes). Each product's result is carried out of the scan, so none is dropped as dead code."""
    if batch % microbatch:
        raise ValueError(f"microbatch must divide the batch: {microbatch} does not divide {batch}")
    chunks = batch // microbatch
    keys = iter(jax.random.split(jax.random.key(0), 3 * len(PRODUCTS)))
    inputs = [jax.random.normal(next(keys), (chunks, microbatch * p, k)) for p, k, _ in PRODUCTS]
    cotangents = [jax.random.normal(next(keys), (chunks, microbatch * p, n)) for p, _, n in PRODUCTS]
    kernels = [jax.random.normal(next(keys), (k, n)) for _, k, n in PRODUCTS]

    def chunk(kernels, carry, xs):
        grads, _, _ = carry
        x, g = xs
        outputs = [a @ w for a, w in zip(x, kernels, strict=True)]
        input_grads = [c @ w.T for c, w in list(zip(g, kernels, strict=True))[1:]]
        grads = [s + a.T @ c for s, a, c in zip(grads, x, g, strict=True)]
        return (grads, outputs, input_grads), None

    @jax.jit
    def step(inputs, cotangents, kernels):
        body = functools.partial(chunk, kernels)
        first = jax.tree.map(lambda leaf: leaf[0], (inputs, cotangents))
        shapes = jax.eval_shape(lambda: body(([jnp.zeros_like(w) for w in kernels], None, None), first)[0])
        start = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
        return jax.lax.scan(body, start, (inputs, cotangents))[0]

    return step, (inputs, cotangents, kernels)


def floor_step(batch: int, microbatch: int) -> Callable[[], object]:
    """:func:`floor_products` as a call that runs it and waits for it."""
    step, args = floor_products(batch, microbatch)
    return lambda: jax.block_until_ready(step(*args))


def variants(batch: int) -> tuple[dict[str, Callable[[], object]], str]:
    """Each variant at ``batch`` as a call that runs one step and waits for it; PyTorch's version."""
    microbatch = SETTINGS["cpu"]["microbatch"][batch]
    library = {impl: qatlib_step(batch, microbatch, impl) for impl in ("im2col", "lax")}
    torch_call, torch_sync, torch_version = torch_step(batch, "cpu")
    calls = {
        "qatlib": lambda: jax.block_until_ready(library["im2col"]()),
        "qatlib_lax": lambda: jax.block_until_ready(library["lax"]()),
        "torch": lambda: torch_sync(torch_call()),
    }
    calls.update({f"floor_{m}": floor_step(batch, m) for m in CHUNKS[batch]})
    return calls, torch_version


def _per_round(numerator: list[float], denominator: list[float]) -> dict[str, float | list[float]]:
    """Median and range over rounds of ``numerator[i] / denominator[i]``: a ratio of two variants
    timed in the same round, which the machine's drift between rounds does not move."""
    ratios = [n / d for n, d in zip(numerator, denominator, strict=True)]
    return {"median": statistics.median(ratios), "range": [min(ratios), max(ratios)]}


def summary(batch: int, rounds: dict[str, list[float]]) -> dict:
    """Each variant's speed against PyTorch's, the fastest floor against the goal, and each as a
    share of the matmul peak: ratios within a round, their median over rounds."""
    step_flops = flops_per_step(batch)
    peak_flops = [2.0 * PEAK_SIZE**3 / s for s in rounds["matmul_2048"]]
    steps = {name: t for name, t in rounds.items() if name != "matmul_2048"}
    over_torch = {name: _per_round(steps["torch"], t) for name, t in steps.items()}
    best = max((name for name in steps if name.startswith("floor_")), key=lambda name: over_torch[name]["median"])
    return {
        "steps_per_second_median": {name: 1.0 / statistics.median(t) for name, t in steps.items()},
        "speed_over_torch": over_torch,
        "fastest_floor": best,
        "goal_over_torch": GOALS[batch],
        "goal_over_floor": GOALS[batch] / over_torch[best]["median"],
        "qatlib_over_floor": _per_round(steps[best], steps["qatlib"]),
        "share_of_matmul_peak": {name: _per_round([step_flops] * len(t), [s * p for s, p in zip(t, peak_flops, strict=True)])
                                 for name, t in steps.items()},
        "matmul_peak_gflops_median": statistics.median(peak_flops) / 1e9,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="rounds of timings, variants interleaved (default 15)")
    parser.add_argument("--calls", type=int, default=3, help="calls per variant per round (default 3)")
    parser.add_argument("--one-core", action="store_true",
                        help="XLA single-threaded and pinned to one core, PyTorch on one thread (as workers=2 runs)")
    args = parser.parse_args(argv)
    for name in ("rounds", "calls"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.one_core:
        if sweep.SINGLE_THREAD_FLAG not in os.environ.get("XLA_FLAGS", ""):  # XLA reads its flags once: start afresh
            env = dict(os.environ, XLA_FLAGS=sweep.with_xla_flag(sweep.SINGLE_THREAD_FLAG))
            os.execve(sys.executable, [sys.executable, __file__, *(sys.argv[1:] if argv is None else argv)], env)
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    load_before = os.getloadavg()
    peak_call = matmul_product(PEAK_SIZE)
    by_batch, rounds = {}, {}
    for batch in GOALS:
        calls, torch_version = variants(batch)
        calls["matmul_2048"] = peak_call
        for call in calls.values():  # compile and warm every variant before any clock starts
            call()
        rounds[batch] = timings(calls, args.rounds, args.calls)
        by_batch[str(batch)] = summary(batch, rounds[batch])
    report = {
        "what": "steps/s of the 2-bit Chollet convnet's training step (qatlib, PyTorch) and of its matrix products "
                "alone (the floor of the im2col lowering), medians of interleaved rounds",
        "by_batch": by_batch,
        "seconds_per_call_rounds": {str(b): t for b, t in rounds.items()},
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "load_average_before_after": [list(load_before), list(os.getloadavg())],
        "machine": artefacts.device_info(),
        "versions": {**artefacts.package_versions(), "torch": torch_version},
        "settings": {"rounds": args.rounds, "calls": args.calls, "chunks": {str(b): c for b, c in CHUNKS.items()},
                     "one_core": args.one_core, "cores": len(os.sched_getaffinity(0))},
    }
    name = f"matmul_floor_{artefacts.isa_tag()}{'_one_core' if args.one_core else ''}.json"
    path = artefacts.write_json(ROOT / "benchmarks" / "results" / name, report)
    for batch, r in by_batch.items():
        speed = r["speed_over_torch"]
        print(f"batch {batch}: qatlib {speed['qatlib']['median']:.2f}x PyTorch, {r['fastest_floor']} "
              f"{speed[r['fastest_floor']]['median']:.2f}x (rounds {_span(speed[r['fastest_floor']]['range'])}); "
              f"goal {r['goal_over_torch']:.1f}x = {r['goal_over_floor']:.2f}x that floor; "
              f"qatlib at {r['qatlib_over_floor']['median']:.0%} of it")
    print(f"wrote {path.relative_to(ROOT)}")
    return 0


def _span(pair: list[float]) -> str:
    return f"{pair[0]:.2f}-{pair[1]:.2f}x"


if __name__ == "__main__":
    sys.exit(main())
