"""The MNIST chapter's training speed on this CPU: qatlib vs PyTorch per step, the lock-step gain,
and the ``paper`` preset end to end.

Run by hand (not in CI), from the repository root::

    .venv/bin/pip install torch==2.13.0      # benchmark-only dependency (CPU build)
    .venv/bin/python benchmarks/bench_mnist_step.py [--rounds 2] [--skip-paper]

One run measures, interleaved round by round so that both frameworks see the same machine load
(the best of ``--repeats`` timings of ``--steps`` steps is kept per round, the best round reported):

* ``qatlib``: one training step of the 2-bit Chollet convnet as the library runs it
  (:func:`qatlib.training.lockstep.make_lockstep_step` with ``microbatch``: 16 at batch 128, the
  ``paper`` preset's 25 at batch 600), clipped STE, SGD with momentum 0.9, at batch 128 and 600;
* ``qatlib_whole_batch``: the same step without micro-batching (``microbatch=0``), the library's
  step before this benchmark's issue;
* ``torch``: the same net in PyTorch (STE fake-quantized weights: exact Q(w) forward, gradient
  masked to the representable range; ``torch.optim.SGD`` with momentum), the same batches;
* ``lockstep``: the ``paper`` preset's seven nets (Q-hat-net, STE-net, lr-tweak, unadjusted; Adam's
  three) at batch 600: one compiled call advancing all seven, against the seven single-net steps
  called one after another; the gain is the ratio of their times;
* ``paper``: ``python -m qatlib run mnist --preset paper --no-notebook`` in a subprocess: wall time
  and peak resident memory, its metrics written to a temporary folder (``--paper-results`` keeps
  them elsewhere). Skipped with ``--skip-paper``.

Writes ``benchmarks/results/mnist_step.json`` with the machine, versions and load averages.

``--device gpu`` measures the same on a CUDA machine (``scripts/gpu_artefacts.sh`` runs it there):
PyTorch on ``cuda``, qatlib with ``conv_impl="lax"`` (cuDNN convolutions) and whole-batch gradients
(micro-batching is a CPU cache lever; on a GPU it would serialise small chunks), the paper preset
as the ``paper_gpu`` preset (the same with those settings); it writes ``mnist_step_gpu.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

from qatlib import estimators, models
from qatlib.experiments import mnist
from qatlib.experiments.comparison import comparison, q_hat
from qatlib.report import artefacts as results
from qatlib.training import lockstep, optimizers

ROOT = Path(__file__).resolve().parents[1]
BATCHES = (128, 600)
#: Per device: examples per gradient chunk (CPU: the paper preset's at 600; at 128 the best of 8,
#: 16, 32 measured here, 16; GPU: the whole batch), the convolution lowering, and the MNIST preset
#: of the authors' schedule that is run end to end.
SETTINGS = {
    "cpu": {"microbatch": {128: 16, 600: mnist.PRESETS["paper"].microbatch}, "conv_impl": "im2col", "paper": "paper"},
    "gpu": {
        "microbatch": {128: 0, 600: 0},
        "conv_impl": "lax",
        "paper": "paper_gpu",
    },
}


def flops_per_step(batch: int) -> float:
    """Multiply-adds x 2 of the forward pass, x 3 for forward + both backward products."""
    conv = [(26 * 26, 9 * 1, 32), (11 * 11, 9 * 32, 64), (3 * 3, 9 * 64, 128)]
    forward = sum(positions * k * n for positions, k, n in conv) + 1152 * 10
    return 2.0 * 3.0 * forward * batch


def _batch(batch: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(batch)
    return {"image": rng.random((batch, 28, 28, 1), np.float32), "label": rng.integers(0, 10, batch).astype(np.int32)}


def best_rate(call, steps: int, repeats: int, sync=jax.block_until_ready) -> float:
    """Best calls per second over ``repeats`` timings of ``steps`` calls, after a warm-up call.

    ``sync(out)`` waits for the device to finish the last call's work before the clock stops.
    """
    sync(call())
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            out = call()
        sync(out)
        best = max(best, steps / (time.perf_counter() - start))
    return best


# ------------------------------------------------------------------------------------- qatlib
def qatlib_rate(batch: int, microbatch: int, steps: int, repeats: int, conv_impl: str) -> float:
    model = models.CholletConvNet(bits=2, estimator=estimators.PWL(), conv_impl=conv_impl)
    data = _batch(batch)
    params = jax.jit(model.init)(jax.random.key(0), data["image"][:1])["params"]
    net = lockstep.Net("ste", model, optimizers.make_optimizer("sgd", 1e-3, 10_000, momentum=0.9))
    step = lockstep.make_lockstep_step([net], microbatch=microbatch)
    state = [lockstep.init_state(net, params)]
    return best_rate(lambda: step(state, data)[0], steps, repeats)


def lockstep_times(steps: int, repeats: int, microbatch: int, conv_impl: str) -> dict[str, float]:
    """Seconds per step of the paper preset's seven nets: together (one call) and one after another."""
    config = mnist.PRESETS["paper"]
    estimator = q_hat(config.sharpness, config.centre)
    model = models.CholletConvNet(bits=2, estimator=estimator, conv_impl=conv_impl)
    data = _batch(config.batch_size)
    params = jax.jit(model.init)(jax.random.key(0), data["image"][:1])["params"]
    quantizers = models.quantizer_tree(params, 2)
    nets, states = [], []
    for optimizer, lr in (("sgd", config.sgd_lr), ("adam", config.adam_lr)):
        n, s, _ = comparison(optimizer, model, params, quantizers, estimator, lr, config.steps)
        nets, states = nets + n, states + s
    together = lockstep.make_lockstep_step(nets, microbatch=microbatch)
    singles = [lockstep.make_lockstep_step([net], microbatch=microbatch) for net in nets]

    def one_after_another():
        return [single([state], data)[0] for single, state in zip(singles, states, strict=True)]

    return {
        "nets": len(nets),
        "together_seconds": 1 / best_rate(lambda: together(states, data)[0], steps, repeats),
        "one_after_another_seconds": 1 / best_rate(one_after_another, steps, repeats),
    }


# ------------------------------------------------------------------------------------- PyTorch
def torch_rate(batch: int, steps: int, repeats: int, device: str) -> tuple[float, str]:
    import torch

    device = "cuda" if device == "gpu" else "cpu"
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
    ).to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    data = _batch(batch)
    x = torch.from_numpy(data["image"]).permute(0, 3, 1, 2).contiguous().to(device)
    y = torch.from_numpy(data["label"]).long().to(device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        optimizer.step()
        return None

    sync = (lambda _: torch.cuda.synchronize()) if device == "cuda" else (lambda _: None)
    return best_rate(step, steps, repeats, sync), torch.__version__


# ------------------------------------------------------------------------------------- paper preset
#: Runs a command and prints its wall seconds and its peak RSS (KiB) as JSON. A fresh, small process:
#: a child forked from the benchmark itself (JAX and PyTorch loaded) would report the benchmark's
#: size as its own ru_maxrss, which is what the first GPU run of this benchmark printed (3.9 GiB).
_LAUNCHER = (
    "import json, resource, subprocess, sys, time; start = time.perf_counter(); "
    "subprocess.run(sys.argv[1:], check=True); "
    "print(json.dumps({'seconds': time.perf_counter() - start, "
    "'peak_kib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))"
)


def paper_run(results_dir: str, preset: str) -> dict[str, float]:
    """Wall time and peak RSS of the ``paper`` (or ``paper_gpu``) preset run as a user runs it.

    The run is a subprocess of a small launcher (:data:`_LAUNCHER`), whose only child it is.
    """
    env = dict(os.environ, QATLIB_RESULTS_DIR=results_dir)
    command = [sys.executable, "-m", "qatlib", "run", "mnist", "--preset", preset, "--no-notebook"]
    launched = subprocess.run([sys.executable, "-c", _LAUNCHER, *command], check=True, env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    *printed, last = launched.stdout.strip().splitlines()
    print("\n".join(printed))  # the run's own output
    measured = json.loads(last)
    metrics = results.read_json(results.metrics_path("mnist", preset, results_dir))
    return {
        "wall_seconds": measured["seconds"],
        "train_seconds": metrics["provenance"]["train_seconds"],
        "peak_rss_gib": measured["peak_kib"] / 2**20,
        "metrics_file": str(results.metrics_path("mnist", preset, results_dir)),
        "command": " ".join(command[1:]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="steps per timing")
    parser.add_argument("--repeats", type=int, default=3, help="timings per measurement (best is kept)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved qatlib/PyTorch rounds (best is kept)")
    parser.add_argument("--skip-paper", action="store_true", help="do not run the paper preset")
    parser.add_argument("--paper-results", default=None, help="results folder of the paper run (default: a temporary one)")
    parser.add_argument("--device", choices=sorted(SETTINGS), default="cpu", help="where both frameworks run (default: cpu)")
    parser.add_argument("--output", default=None, help="report path (default: benchmarks/results/mnist_step[_gpu].json)")
    args = parser.parse_args(argv)
    for name in ("steps", "repeats", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.device == "gpu" and jax.default_backend() != "gpu":
        parser.error(f"--device gpu needs JAX with a GPU backend; JAX's backend here is {jax.default_backend()!r}")
    settings = SETTINGS[args.device]
    microbatch = settings["microbatch"]
    suffix = "" if args.device == "cpu" else f"_{args.device}"
    output = args.output or str(ROOT / "benchmarks" / "results" / f"mnist_step{suffix}.json")

    load_before = os.getloadavg()
    rates: dict[str, dict[str, float]] = {}
    torch_version = None
    lock: dict[str, float] = {}
    for round_index in range(args.rounds):
        for batch in BATCHES:
            entry = rates.setdefault(str(batch), {})
            measured = {
                "qatlib": qatlib_rate(batch, microbatch[batch], args.steps, args.repeats, settings["conv_impl"]),
                "qatlib_whole_batch": qatlib_rate(batch, 0, args.steps, args.repeats, settings["conv_impl"]),
            }
            measured["torch"], torch_version = torch_rate(batch, args.steps, args.repeats, args.device)
            for key, value in measured.items():
                entry[key] = max(entry.get(key, 0.0), value)
        times = lockstep_times(max(2, args.steps // 3), args.repeats, microbatch[600], settings["conv_impl"])
        for key in ("together_seconds", "one_after_another_seconds"):
            lock[key] = min(lock.get(key, np.inf), times[key])
        lock["nets"] = times["nets"]
        print(f"round {round_index + 1}: {rates}, lock-step {lock}", file=sys.stderr)

    report: dict = {
        "what": "training steps/s of the 2-bit quantized Chollet MNIST convnet, SGD+momentum, clipped STE; "
                "the paper preset's lock-step gain and wall time",
        "steps_per_second": rates,
        "device": args.device,
        "conv_impl": settings["conv_impl"],
        "microbatch": {str(b): m for b, m in microbatch.items()},
        "gflops_achieved": {b: {k: v * flops_per_step(int(b)) / 1e9 for k, v in r.items()} for b, r in rates.items()},
        "ratio_qatlib_over_torch": {b: r["qatlib"] / r["torch"] for b, r in rates.items()},
        "ratio_microbatch_over_whole_batch": {b: r["qatlib"] / r["qatlib_whole_batch"] for b, r in rates.items()},
        "lockstep": {**lock, "gain_together_over_one_after_another": lock["one_after_another_seconds"] / lock["together_seconds"]},
    }
    if not args.skip_paper:
        with tempfile.TemporaryDirectory() as tmp:
            report["paper_preset"] = paper_run(args.paper_results or tmp, settings["paper"])
    report.update({
        "load_average_before_after": [list(load_before), list(os.getloadavg())],
        "machine": results.device_info(),
        "versions": {**results.package_versions(), "torch": torch_version},
        "settings": {"steps": args.steps, "repeats": args.repeats, "rounds": args.rounds},
    })
    path = results.write_json(output, report)
    for b, r in rates.items():
        print(f"batch {b}: qatlib {r['qatlib']:.1f} steps/s (whole batch {r['qatlib_whole_batch']:.1f}), "
              f"torch {r['torch']:.1f}: ratio {r['qatlib'] / r['torch']:.2f}")
    print(f"lock-step gain (7 nets together vs one after another): {report['lockstep']['gain_together_over_one_after_another']:.2f}")
    if "paper_preset" in report:
        p = report["paper_preset"]
        print(f"paper preset: {p['wall_seconds'] / 60:.1f} min wall, peak RSS {p['peak_rss_gib']:.2f} GiB")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
