"""How long M (Eq. 4) takes on ResNet50's 25.6 M weights, on this machine's CPU.

Run by hand:  .venv/bin/python benchmarks/bench_weight_map.py [--weights 25600000] [--repeats 5]

Reports weights per second for M and M⁻¹ with the paper's estimator (HTGE, bin-normalised,
k = 5.5 / w_max, 2 bits; closed form) and for a user-given Q̂' (quadrature table), jitted, best of
``--repeats`` after a warm-up, and writes them to benchmarks/results/weight_map.json. For scale it
also times one forward+backward pass of a dense layer holding as many weights at batch 64, a
rough stand-in for the matmul work of a training step on that many weights.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp

import qatlib
from qatlib import estimators
from qatlib.report.artefacts import device_info, write_json


def best_time(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=int, default=25_600_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    q = qatlib.UniformQuantizer.from_bits(2, 0.05)
    w = jax.random.uniform(jax.random.key(0), (args.weights,), minval=-0.06, maxval=0.06)
    htge = estimators.HTGE(5.5, scale="range", normalize=True)
    custom = estimators.Custom(lambda x: 1.5 + 0.5 * jnp.cos(2 * jnp.pi * (x + 0.05) / q.delta), clips_outside=False)

    results = {}
    for label, est in (("htge_closed_form", htge), ("custom_quadrature", custom)):
        forward = jax.jit(lambda x, est=est: qatlib.weight_map(x, q, est))
        seconds = best_time(forward, w, repeats=args.repeats)
        results[f"M_{label}"] = {"seconds": seconds, "weights_per_second": args.weights / seconds}
    inverse = jax.jit(lambda x: qatlib.inverse_weight_map(x, q, htge))
    seconds = best_time(inverse, w, repeats=max(1, args.repeats // 2))
    results["M_inverse_htge_bisection"] = {"seconds": seconds, "weights_per_second": args.weights / seconds}

    # One dense forward+backward over the same number of weights at batch 64, for scale.
    fan_in = 2048
    kernel = w.reshape(fan_in, -1)
    x = jnp.ones((64, fan_in))
    step = jax.jit(jax.grad(lambda k: jnp.sum(jnp.tanh(x @ qatlib.quantize(k, q, estimators.STE())))))
    results["dense_fwd_bwd_same_weights_batch64"] = {"seconds": best_time(step, kernel, repeats=args.repeats)}

    report = {
        "weights": args.weights,
        "results": results,
        "device": device_info(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
    }
    for name, value in results.items():
        line = f"{name:38s} {value['seconds']*1e3:9.1f} ms"
        if "weights_per_second" in value:
            line += f"   {value['weights_per_second']/1e6:8.1f} M weights/s"
        print(line)
    out = Path(__file__).resolve().parent / "results" / "weight_map.json"
    write_json(out, report)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
