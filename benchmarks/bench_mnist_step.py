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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from qatlib import estimators, models
from qatlib.experiments import mnist, sweep
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


#: The convnet's products per example, as im2col lowers them: (output positions, K, N) of each conv
#: layer's (positions, K) @ (K, N) and of the dense layer's (1, 1152) @ (1152, 10).
PRODUCTS = ((26 * 26, 9 * 1, 32), (11 * 11, 9 * 32, 64), (3 * 3, 9 * 64, 128), (1, 1152, 10))


def flops_per_step(batch: int) -> float:
    """Multiply-adds x 2 of the forward pass, x 3 for forward + both backward products."""
    forward = sum(positions * k * n for positions, k, n in PRODUCTS)
    return 2.0 * 3.0 * forward * batch


def _batch(batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([batch, seed])
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
def qatlib_step(batch: int, microbatch: int, conv_impl: str) -> Callable[[], Any]:
    """One training step of the 2-bit convnet as the library runs it, as a call (always from the
    same state and batch)."""
    model = models.CholletConvNet(bits=2, estimator=estimators.PWL(), conv_impl=conv_impl)
    data = _batch(batch)
    params = jax.jit(model.init)(jax.random.key(0), data["image"][:1])["params"]
    net = lockstep.Net("ste", model, optimizers.make_optimizer("sgd", 1e-3, 10_000, momentum=0.9))
    step = lockstep.make_lockstep_step([net], microbatch=microbatch)
    state = [lockstep.init_state(net, params)]
    return lambda: step(state, data)[0]


def qatlib_rate(batch: int, microbatch: int, steps: int, repeats: int, conv_impl: str) -> float:
    return best_rate(qatlib_step(batch, microbatch, conv_impl), steps, repeats)


def seven_nets(seed: int, conv_impl: str) -> tuple[list, list, dict[str, np.ndarray]]:
    """The ``paper`` preset's seven nets (Q-hat-net, STE-net, lr-tweak, unadjusted; Adam's three),
    their states from seed ``seed``'s initialisation, and a batch of its size."""
    config = mnist.PRESETS["paper"]
    estimator = q_hat(config.sharpness, config.centre)
    model = models.CholletConvNet(bits=2, estimator=estimator, conv_impl=conv_impl)
    data = _batch(config.batch_size, seed)
    params = jax.jit(model.init)(jax.random.key(seed), data["image"][:1])["params"]
    quantizers = models.quantizer_tree(params, 2)
    nets, states = [], []
    for optimizer, lr in (("sgd", config.sgd_lr), ("adam", config.adam_lr)):
        n, s, _ = comparison(optimizer, model, params, quantizers, estimator, lr, config.steps)
        nets, states = nets + n, states + s
    return nets, states, data


def lockstep_times(steps: int, repeats: int, microbatch: int, conv_impl: str) -> dict[str, float]:
    """Seconds per step of the paper preset's seven nets: together (one call) and one after another."""
    nets, states, data = seven_nets(0, conv_impl)
    together = lockstep.make_lockstep_step(nets, microbatch=microbatch)
    singles = [lockstep.make_lockstep_step([net], microbatch=microbatch) for net in nets]

    def one_after_another():
        return [single([state], data)[0] for single, state in zip(singles, states, strict=True)]

    return {
        "nets": len(nets),
        "together_seconds": 1 / best_rate(lambda: together(states, data)[0], steps, repeats),
        "one_after_another_seconds": 1 / best_rate(one_after_another, steps, repeats),
    }


def seeds_times(seeds: int, steps: int, repeats: int, microbatch: int, conv_impl: str) -> dict[str, float]:
    """Seconds per step of all ``seeds`` seeds' seven nets, three ways:

    * ``one_after_another``: each seed's seven-net step in turn, in this process (both cores);
    * ``batched``: one call of ``jax.vmap`` of the seven-net step over the seeds' stacked weights,
      optimizer states and batches (seeds share everything but their weights and batches);
    * ``processes``: each seed in its own process, side by side, single-threaded XLA and pinned to
      one core, as ``paper_seeds`` runs them (``workers``, :mod:`qatlib.experiments.sweep`): the
      slowest process's seconds per step.
    """
    built = [seven_nets(seed, conv_impl) for seed in range(seeds)]
    nets = built[0][0]
    step = lockstep.make_lockstep_step(nets, microbatch=microbatch)
    stacked = jax.tree.map(lambda *leaves: np.stack(leaves), *[states for _, states, _ in built])
    stacked_batch = jax.tree.map(lambda *leaves: np.stack(leaves), *[data for _, _, data in built])
    batched = jax.jit(jax.vmap(lambda states, batch: step(states, batch)[0]))

    def one_after_another():
        return [step(states, data)[0] for _, states, data in built]

    return {
        "seeds": seeds,
        "nets": len(nets),
        "one_after_another_seconds": 1 / best_rate(one_after_another, steps, repeats),
        "batched_seconds": 1 / best_rate(lambda: batched(stacked, stacked_batch), steps, repeats),
        "processes_seconds": max(_in_processes(seeds, steps, repeats, microbatch, conv_impl)),
    }


def _in_processes(seeds: int, steps: int, repeats: int, microbatch: int, conv_impl: str) -> list[float]:
    """Each seed's seconds per seven-net step, measured in ``seeds`` child processes at once."""
    env = dict(os.environ, XLA_FLAGS=sweep.with_xla_flag(sweep.SINGLE_THREAD_FLAG))
    children = [
        subprocess.Popen([sys.executable, __file__, "--child-seed", str(seed), "--steps", str(steps), "--repeats",
                          str(repeats), "--child-microbatch", str(microbatch), "--child-conv-impl", conv_impl],
                         env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        for seed in range(seeds)
    ]
    outputs = [child.communicate()[0] for child in children]
    if any(child.returncode for child in children):
        raise RuntimeError(f"a seed process failed: return codes {[child.returncode for child in children]}")
    return [float(out.strip().splitlines()[-1]) for out in outputs]


def _child_seed(seed: int, steps: int, repeats: int, microbatch: int, conv_impl: str) -> float:
    """In a child process: pinned to one core, seed ``seed``'s seconds per seven-net step."""
    cores = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cores[seed % len(cores)]})
    nets, states, data = seven_nets(seed, conv_impl)
    step = lockstep.make_lockstep_step(nets, microbatch=microbatch)
    return 1 / best_rate(lambda: step(states, data)[0], steps, repeats)


def matmul_product(size: int = 2048) -> Callable[[], jax.Array]:
    """A jitted float32 ``size`` x ``size`` product, as a call (2 size^3 FLOPs)."""
    a = jax.random.uniform(jax.random.key(0), (size, size), np.float32)
    b = jax.random.uniform(jax.random.key(1), (size, size), np.float32)
    product = jax.jit(lambda x, y: x @ y)
    return lambda: jax.block_until_ready(product(a, b))


def matmul_peak(steps: int, repeats: int, size: int = 2048) -> float:
    """XLA's float32 matmul rate on this machine (GFLOP/s): a jitted ``size`` x ``size`` product."""
    return best_rate(matmul_product(size), steps, repeats) * 2.0 * size**3 / 1e9


# ------------------------------------------------------------------------------------- PyTorch
def torch_step(batch: int, device: str) -> tuple[Callable[[], None], Callable[[Any], None], str]:
    """The same net's training step in PyTorch as a call, the call that waits for the device, and
    PyTorch's version."""
    import torch

    device = "cuda" if device == "gpu" else "cpu"
    torch.set_num_threads(len(os.sched_getaffinity(0)))  # the cores this process may run on
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
    return step, sync, torch.__version__


def torch_rate(batch: int, steps: int, repeats: int, device: str) -> tuple[float, str]:
    step, sync, version = torch_step(batch, device)
    return best_rate(step, steps, repeats, sync), version


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


def paper_run(folder: str, preset: str, workers: int) -> dict[str, float]:
    """Wall time and peak RSS of the ``paper`` (or ``paper_gpu``) preset run as a user runs it, with
    its seed's two optimizers' runs in ``workers`` processes (``-p workers``).

    The run is a subprocess of a small launcher (:data:`_LAUNCHER`), whose only child it is. Its
    results go to ``folder/results`` and its run cache to ``folder/runs`` (empty: nothing is reused).
    """
    results_dir = str(Path(folder) / f"workers{workers}" / "results")
    env = dict(os.environ, QATLIB_RESULTS_DIR=results_dir)
    command = [sys.executable, "-m", "qatlib", "run", "mnist", "--preset", preset, "--no-notebook",
               "-p", "workers", str(workers)]
    launched = subprocess.run([sys.executable, "-c", _LAUNCHER, *command], check=True, env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    *printed, last = launched.stdout.strip().splitlines()
    print("\n".join(printed))  # the run's own output
    measured = json.loads(last)
    metrics = results.read_json(results.metrics_path("mnist", preset, results_dir))
    return {
        "workers": workers,
        "wall_seconds": measured["seconds"],
        "train_seconds": metrics["provenance"]["train_seconds"],
        "peak_rss_gib": measured["peak_kib"] / 2**20,
        "command": " ".join(command[1:]),
    }


def paper_flops(preset: str, nets: int) -> float:
    """Training FLOPs of a paper preset run of ``nets`` nets (:func:`seven_nets`): nets x steps x
    :func:`flops_per_step` (evaluation and logging are not counted, so their time counts against
    the sustained rate)."""
    config = mnist.PRESETS[preset]
    return nets * config.steps * flops_per_step(config.batch_size)


#: Environment of a run whose vector instructions are capped at AVX2 on an AVX-512 CPU: XLA's own
#: code generation (``--xla_cpu_max_isa``), PyTorch's ATen kernels and its oneDNN convolutions.
#: Libraries that pick their kernels from the CPU's flags at run time are not capped by these.
ISA_CAP_ENV = {"XLA_FLAGS": "--xla_cpu_max_isa=AVX2", "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
ISA_CAP_MARK = "QATLIB_BENCH_ISA_CAP"


def _capped_env() -> dict[str, str]:
    env = dict(os.environ, **{ISA_CAP_MARK: "AVX2"})
    env["XLA_FLAGS"] = sweep.with_xla_flag(ISA_CAP_ENV["XLA_FLAGS"])
    env.update({k: v for k, v in ISA_CAP_ENV.items() if k != "XLA_FLAGS"})
    return env


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="steps per timing")
    parser.add_argument("--repeats", type=int, default=3, help="timings per measurement (best is kept)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved qatlib/PyTorch rounds (best is kept)")
    parser.add_argument("--seeds", type=int, default=2, help="seeds of the batched-seeds comparison (CPU; default 2)")
    parser.add_argument("--skip-paper", action="store_true", help="do not run the paper preset")
    parser.add_argument("--paper-workers", default="1,2",
                        help="comma-separated process counts the paper preset is timed with (default 1,2)")
    parser.add_argument("--paper-results", default=None, help="folder of the paper runs (default: a temporary one)")
    parser.add_argument("--device", choices=sorted(SETTINGS), default="cpu", help="where both frameworks run (default: cpu)")
    parser.add_argument("--isa-cap", choices=["AVX2"], default=None,
                        help="cap XLA's and PyTorch's vector instructions at AVX2 on an AVX-512 CPU (ISA_CAP_ENV)")
    parser.add_argument("--output", default=None,
                        help="report path (default: benchmarks/results/mnist_step_<isa>.json, _gpu on a GPU)")
    for name in ("--child-seed", "--child-microbatch"):
        parser.add_argument(name, type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-conv-impl", default="im2col", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("steps", "repeats", "rounds", "seeds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    try:
        args.paper_workers = [int(w) for w in args.paper_workers.split(",")]
    except ValueError:
        parser.error(f"--paper-workers must be comma-separated integers, got {args.paper_workers!r}")
    if min(args.paper_workers) < 1:
        parser.error(f"--paper-workers must each be >= 1, got {args.paper_workers}")
    if args.device == "gpu" and jax.default_backend() != "gpu":
        parser.error(f"--device gpu needs JAX with a GPU backend; JAX's backend here is {jax.default_backend()!r}")
    if args.isa_cap and args.device != "cpu":
        parser.error("--isa-cap applies to --device cpu only")
    return args


def _round(args: argparse.Namespace, settings: dict, rates: dict, lock: dict, seeds: dict) -> str | None:
    """One interleaved round: every rate measured once, the best so far kept; PyTorch's version."""
    microbatch, conv_impl = settings["microbatch"], settings["conv_impl"]
    torch_version = None
    for batch in BATCHES:
        entry = rates.setdefault(str(batch), {})
        measured = {
            "qatlib": qatlib_rate(batch, microbatch[batch], args.steps, args.repeats, conv_impl),
            "qatlib_whole_batch": qatlib_rate(batch, 0, args.steps, args.repeats, conv_impl),
        }
        measured["torch"], torch_version = torch_rate(batch, args.steps, args.repeats, args.device)
        for key, value in measured.items():
            entry[key] = max(entry.get(key, 0.0), value)
    few = max(2, args.steps // 3)
    times = lockstep_times(few, args.repeats, microbatch[600], conv_impl)
    if args.device == "cpu":
        seeds.update({k: min(seeds.get(k, np.inf), v) for k, v in
                      seeds_times(args.seeds, few, args.repeats, microbatch[600], conv_impl).items()})
    for key in ("together_seconds", "one_after_another_seconds"):
        lock[key] = min(lock.get(key, np.inf), times[key])
    lock["nets"] = times["nets"]
    return torch_version


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.child_seed is not None:
        print(_child_seed(args.child_seed, args.steps, args.repeats, args.child_microbatch, args.child_conv_impl))
        return 0
    if args.isa_cap and os.environ.get(ISA_CAP_MARK) != args.isa_cap:  # XLA reads its flags once: start afresh
        os.execve(sys.executable, [sys.executable, __file__, *(sys.argv[1:] if argv is None else argv)], _capped_env())
    settings = SETTINGS[args.device]
    isa = "avx2cap" if args.isa_cap else results.isa_tag()
    suffix = f"_{isa}" if args.device == "cpu" else f"_{args.device}"
    output = args.output or str(ROOT / "benchmarks" / "results" / f"mnist_step{suffix}.json")

    load_before = os.getloadavg()
    rates: dict[str, dict[str, float]] = {}
    lock: dict[str, float] = {}
    seeds: dict[str, float] = {}
    peak = 0.0
    for round_index in range(args.rounds):
        torch_version = _round(args, settings, rates, lock, seeds)
        peak = max(peak, matmul_peak(args.steps, args.repeats))
        print(f"round {round_index + 1}: {rates}, lock-step {lock}, seeds {seeds}, matmul {peak:.0f} GFLOP/s",
              file=sys.stderr)
    gflops = {b: {k: v * flops_per_step(int(b)) / 1e9 for k, v in r.items()} for b, r in rates.items()}
    report: dict = {
        "what": "training steps/s of the 2-bit quantized Chollet MNIST convnet, SGD+momentum, clipped STE; "
                "the paper preset's lock-step gain, seeds batched, and wall time against XLA's matmul peak",
        "steps_per_second": rates,
        "device": args.device,
        "isa_cap": args.isa_cap,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "conv_impl": settings["conv_impl"],
        "microbatch": {str(b): m for b, m in settings["microbatch"].items()},
        "gflops_achieved": gflops,
        "matmul_peak_gflops": peak,
        "share_of_matmul_peak": {b: {k: v / peak for k, v in r.items()} for b, r in gflops.items()},
        "ratio_qatlib_over_torch": {b: r["qatlib"] / r["torch"] for b, r in rates.items()},
        "ratio_microbatch_over_whole_batch": {b: r["qatlib"] / r["qatlib_whole_batch"] for b, r in rates.items()},
        "lockstep": {**lock, "gain_together_over_one_after_another": lock["one_after_another_seconds"] / lock["together_seconds"]},
    }
    if seeds:
        report["seeds"] = {**seeds, **{f"gain_{way}_over_one_after_another": seeds["one_after_another_seconds"] / seeds[f"{way}_seconds"]
                                       for way in ("batched", "processes")}}
    if not args.skip_paper:
        with tempfile.TemporaryDirectory() as tmp:
            runs = [paper_run(args.paper_results or tmp, settings["paper"], workers) for workers in args.paper_workers]
        flops = paper_flops(settings["paper"], lock["nets"])
        report["paper_preset"] = [{**run, "gflops_sustained": flops / run["wall_seconds"] / 1e9,
                                   "share_of_matmul_peak": flops / run["wall_seconds"] / 1e9 / peak} for run in runs]
    report.update({
        "load_average_before_after": [list(load_before), list(os.getloadavg())],
        "machine": results.device_info(),
        "versions": {**results.package_versions(), "torch": torch_version},
        "settings": {"steps": args.steps, "repeats": args.repeats, "rounds": args.rounds, "seeds": args.seeds},
    })
    path = results.write_json(output, report)
    _print_summary(report, path)
    return 0


def _print_summary(report: dict, path: Path) -> None:
    for b, r in report["steps_per_second"].items():
        print(f"batch {b}: qatlib {r['qatlib']:.1f} steps/s (whole batch {r['qatlib_whole_batch']:.1f}), "
              f"torch {r['torch']:.1f}: ratio {r['qatlib'] / r['torch']:.2f}, "
              f"{100 * report['share_of_matmul_peak'][b]['qatlib']:.0f}% of the matmul peak")
    print(f"XLA matmul peak: {report['matmul_peak_gflops']:.0f} GFLOP/s")
    print(f"lock-step gain (7 nets together vs one after another): {report['lockstep']['gain_together_over_one_after_another']:.2f}")
    if "seeds" in report:
        s = report["seeds"]
        print(f"{s['seeds']} seeds: batched (vmap) {s['gain_batched_over_one_after_another']:.2f}x, "
              f"processes {s['gain_processes_over_one_after_another']:.2f}x the speed of one after another")
    for p in report.get("paper_preset", []):
        print(f"paper preset, {p['workers']} worker(s): {p['wall_seconds'] / 60:.1f} min wall, "
              f"{100 * p['share_of_matmul_peak']:.0f}% of the matmul peak, peak RSS {p['peak_rss_gib']:.2f} GiB")
    print(f"wrote {path}")


if __name__ == "__main__":
    raise SystemExit(main())
