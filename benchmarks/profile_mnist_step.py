"""Where the time of the MNIST chapter's training step goes, on this CPU, op by op (issue: speed).

Run by hand from the repository root::

    .venv/bin/python benchmarks/profile_mnist_step.py [--batch 600] [--variants default,max_isa_avx2]

For each XLA-flag *variant* (a fresh subprocess, since XLA reads ``XLA_FLAGS`` once) it takes the
step as the ``paper`` preset runs it (gradients over chunks of ``--microbatch`` examples, im2col
convolutions) and measures, at ``--batch``:

* ``seconds``: one net's step (a Q-hat-net, SGD with momentum) and the seven-net lock-step step
  per net, best of ``--repeats`` timings of ``--steps`` calls;
* ``ops``: a ``jax.profiler`` trace of ``--steps`` one-net steps, each XLA op's time summed over
  XLA's threads and grouped by pass (forward / backward), layer and kind (``matmul`` for XLA's dot
  and convolution kernels, else the JAX primitive the op came from), per step;
* ``busy_cores``: the ops' summed time over the wall time of the traced steps: how many of the
  machine's cores XLA kept busy on average.

Writes ``benchmarks/results/profile_mnist_step_<isa>.json``.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "default": "",
    "max_isa_avx2": "--xla_cpu_max_isa=AVX2",
    "onednn": "--xla_cpu_use_onednn=true",
    "xnnpack": "--xla_cpu_use_xnnpack=true",
}
#: An op of the compiled step: ``%name = type opcode(...), ... metadata={op_name="jit(step)/..."``.
_HLO_OP = re.compile(r'%([\w.\-]+) = \S+ ([\w\-]+)\(.*?metadata=\{op_name="([^"]+)"')
_LAYER = re.compile(r"(conv_\d|dense)$")


def op_groups(hlo: str) -> dict[str, tuple[str, str, str]]:
    """Each op of a compiled step's HLO text by name: its (pass, layer, kind)."""
    groups = {}
    for name, opcode, op_name in _HLO_OP.findall(hlo):
        parts = op_name.split("/")
        layer = next((part for part in parts if _LAYER.match(part)), "-")
        kind = "matmul" if name.startswith("ynn_fusion") and "dot_general" in op_name or opcode in ("dot", "convolution") else parts[-1]
        groups[name] = ("backward" if "transpose(" in op_name else "forward", layer, kind)
    return groups


def traced_ops(step, args, steps: int, groups: dict[str, tuple[str, str, str]]) -> tuple[dict[str, float], float]:
    """Seconds per step of each (pass, layer, kind) over ``steps`` traced calls, and their wall seconds."""
    import jax

    jax.block_until_ready(step(*args))
    with tempfile.TemporaryDirectory() as folder:
        with jax.profiler.trace(folder):
            start = time.perf_counter()
            for _ in range(steps):
                out = step(*args)
            jax.block_until_ready(out)
            wall = time.perf_counter() - start
        trace = jax.profiler.ProfileData.from_file(glob.glob(f"{folder}/**/*.xplane.pb", recursive=True)[0])
    seconds: collections.Counter = collections.Counter()
    for plane in trace.planes:
        for line in plane.lines:
            for event in line.events:
                if event.name in groups:
                    seconds["/".join(groups[event.name])] += event.duration_ns / 1e9 / steps
    return dict(seconds.most_common()), wall / steps


def measure(batch: int, microbatch: int, steps: int, repeats: int) -> dict:
    """The variant's step times and op profile (run inside the variant's subprocess)."""
    import jax

    from bench_mnist_step import _batch, best_rate, seven_nets  # benchmarks/ is on sys.path: the script's folder
    from qatlib.training import lockstep

    nets, states, _ = seven_nets(0, "im2col")
    data = _batch(batch)
    seven = lockstep.make_lockstep_step(nets, microbatch=microbatch)
    one = lockstep.make_lockstep_step(nets[:1], microbatch=microbatch)

    def one_step(states, data):
        return one(states, data)[0]

    seconds = {
        "one_net_step": 1 / best_rate(lambda: one_step(states[:1], data), steps, repeats),
        "lockstep_7_per_net": 1 / best_rate(lambda: seven(states, data)[0], steps, repeats) / len(nets),
    }
    groups = op_groups(one.lower(states[:1], data).compile().as_text())
    ops, wall = traced_ops(one_step, (states[:1], data), steps, groups)
    return {"seconds": seconds, "ops": ops, "traced_wall_seconds": wall, "busy_cores": sum(ops.values()) / wall,
            "cores": len(os.sched_getaffinity(0)), "jax": jax.__version__}


def shares(ops: dict[str, float], by: int) -> dict[str, float]:
    """The ops' shares of their summed time, grouped by field ``by`` (0 pass, 1 layer, 2 kind)."""
    total = sum(ops.values())
    out: collections.Counter = collections.Counter()
    for key, value in ops.items():
        out[key.split("/")[by]] += value / total
    return dict(out.most_common())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=600)
    parser.add_argument("--microbatch", type=int, default=25, help="examples per gradient chunk (the paper preset's 25)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", default="default,max_isa_avx2", help=f"comma-separated, of {sorted(VARIANTS)}")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--output", default=None, help="report path (default: benchmarks/results/profile_mnist_step_<isa>.json)")
    args = parser.parse_args(argv)
    for name in ("batch", "steps", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.microbatch < 0 or (args.microbatch and args.batch % args.microbatch):
        parser.error(f"--microbatch must be 0 or divide --batch {args.batch}, got {args.microbatch}")
    if args.child:
        print(json.dumps(measure(args.batch, args.microbatch, args.steps, args.repeats)))
        return 0
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown --variants {unknown}; choose from {sorted(VARIANTS)}")
    sys.path.insert(0, str(ROOT / "src"))
    from qatlib.experiments.sweep import with_xla_flag
    from qatlib.report.artefacts import device_info, isa_tag, write_json

    report: dict = {"batch": args.batch, "microbatch": args.microbatch, "steps": args.steps, "repeats": args.repeats,
                    "load_average_before": list(os.getloadavg()), "variants": {}}
    for variant in variants:
        env = dict(os.environ, XLA_FLAGS=with_xla_flag(VARIANTS[variant]))
        out = subprocess.run(
            [sys.executable, __file__, "--child", variant, "--batch", str(args.batch), "--microbatch",
             str(args.microbatch), "--steps", str(args.steps), "--repeats", str(args.repeats)],
            env=env, capture_output=True, text=True,
        )
        if out.returncode != 0:
            report["variants"][variant] = {"error": out.stderr[-2000:]}
            print(f"{variant}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
            continue
        measured = json.loads(out.stdout.strip().splitlines()[-1])
        measured.update({f"shares_by_{field}": shares(measured["ops"], i) for i, field in enumerate(("pass", "layer", "kind"))})
        report["variants"][variant] = {"flags": VARIANTS[variant], **measured}
        _print_variant(variant, measured)
    report["load_average_after"] = list(os.getloadavg())
    report["machine"] = device_info()
    output = args.output or str(ROOT / "benchmarks" / "results" / f"profile_mnist_step_{isa_tag()}.json")
    write_json(output, report)
    print(f"wrote {output}")
    return 0


def _print_variant(variant: str, measured: dict) -> None:
    print(f"\n== {variant} ({VARIANTS[variant] or 'no flags'})")
    for key, value in measured["seconds"].items():
        print(f"  {key:24s} {1e3 * value:8.2f} ms")
    print(f"  XLA kept {measured['busy_cores']:.2f} of {measured['cores']} cores busy")
    for field in ("pass", "layer", "kind"):
        top = ", ".join(f"{k} {100 * v:.0f}%" for k, v in list(measured[f"shares_by_{field}"].items())[:8])
        print(f"  by {field}: {top}")


if __name__ == "__main__":
    raise SystemExit(main())
