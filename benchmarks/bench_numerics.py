"""Which XLA:CPU settings change a run's numbers, and what each costs: one table per machine.

    .venv/bin/python benchmarks/bench_numerics.py [--steps 20] [--rounds 2]

Each setting trains the same net (the paper preset's step: Chollet's convnet, 2-bit HTGE, SGD with
momentum, batch 600 in gradient chunks of 25) for ``--steps`` steps in a fresh process and reports
a hash of the final parameters and the median time per step. Settings:

* ``default`` -- what every run of this project uses;
* ``max_isa=AVX2`` / ``max_isa=AVX`` -- XLA's cap on the vector instructions it generates;
* ``no_ynn`` -- matrix products in Eigen (statically compiled) instead of YNNPACK, whose kernels
  are picked at run time by the CPU's features;
* ``no_ynn+AVX2`` -- both: the candidate for runs that are identical on AVX2 and AVX-512 CPUs;
* ``one_core`` -- the default settings in a process that sees one core (``taskset``).

Writes ``benchmarks/results/numerics_<isa>.json`` (the machine, its instruction-set level and, per
setting, the hash, whether it equals ``default``'s, and the time per step). The hashes of two
machines' files say which settings give the same numbers on both.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NO_YNN = "--xla_cpu_experimental_ynn_fusion_type="
SETTINGS: dict[str, tuple[str, bool]] = {  # name -> (XLA_FLAGS, one core only)
    "default": ("", False),
    "max_isa=AVX2": ("--xla_cpu_max_isa=AVX2", False),
    "max_isa=AVX": ("--xla_cpu_max_isa=AVX", False),
    "no_ynn": (NO_YNN, False),
    "no_ynn+AVX2": (f"{NO_YNN} --xla_cpu_max_isa=AVX2", False),
    "one_core": ("", True),
}

CHILD = r"""
import hashlib, json, sys, time
import jax, jax.numpy as jnp, numpy as np
from qatlib import data, models
from qatlib.experiments.comparison import q_hat
from qatlib.training import lockstep, optimizers
steps = int(sys.argv[1])
model = models.CholletConvNet(bits=2, estimator=q_hat())
params = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))["params"]
net = lockstep.Net("q_net", model, optimizers.make_optimizer("sgd", 1e-3, 1000, momentum=0.9))
state = lockstep.init_state(net, params)
step = lockstep.make_lockstep_step([net], microbatch=25)
mnist = data.load_mnist()
batches = data.batch_stream(mnist.train_images, mnist.train_labels, 600, 0)
(state,), _, _ = step([state], next(batches))  # compile
jax.block_until_ready(state)
times = []
for _ in range(steps):
    start = time.perf_counter()
    (state,), _, _ = step([state], next(batches))
    jax.block_until_ready(state)
    times.append(time.perf_counter() - start)
digest = hashlib.sha256(b"".join(np.asarray(leaf).tobytes() for leaf in jax.tree.leaves(state.params))).hexdigest()[:16]
print(json.dumps({"hash": digest, "step_seconds": float(np.median(times))}))
"""


def run_setting(flags: str, one_core: bool, steps: int) -> dict[str, float | str]:
    env = dict(os.environ, XLA_FLAGS=flags, PYTHONPATH=str(ROOT / "src"))
    command = [sys.executable, "-c", CHILD, str(steps)]
    if one_core:
        command = ["taskset", "-c", str(min(os.sched_getaffinity(0))), *command]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from qatlib.report import artefacts

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; the fastest of each setting is kept")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    results: dict[str, dict[str, object]] = {}
    for _ in range(args.rounds):
        for name, (flags, one_core) in SETTINGS.items():
            outcome = run_setting(flags, one_core, args.steps)
            seen = results.setdefault(name, {"xla_flags": flags, "one_core": one_core, "hash": outcome["hash"], "step_seconds": []})
            if seen["hash"] != outcome["hash"]:
                raise RuntimeError(f"{name}: two runs of one setting differ ({seen['hash']} vs {outcome['hash']})")
            seen["step_seconds"].append(outcome["step_seconds"])
    for entry in results.values():
        entry["step_seconds"] = min(entry["step_seconds"])
    reference = results["default"]
    for entry in results.values():
        entry["equals_default"] = entry["hash"] == reference["hash"]
        entry["time_vs_default"] = entry["step_seconds"] / reference["step_seconds"]
    device = artefacts.device_info()
    report = {
        "machine": device,
        "load_average": os.getloadavg(),
        "steps": args.steps,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "versions": artefacts.package_versions(),
        "settings": results,
    }
    isa = artefacts.isa_tag(device["isa"])
    path = Path(args.output or ROOT / "benchmarks" / "results" / f"numerics_{isa}.json")
    artefacts.write_json(path, report)
    for name, entry in results.items():
        print(f"{name:14s} {entry['hash']}  equals default: {entry['equals_default']!s:5s}  {1000 * entry['step_seconds']:.0f} ms/step")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
