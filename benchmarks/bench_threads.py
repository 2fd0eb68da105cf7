"""Is a core idle within one process? The ``paper`` preset's seven-net step, one call against groups
of nets stepped side by side from two Python threads.

Run by hand from the repository root (about 5 minutes on the 2-core Xeon)::

    .venv/bin/python benchmarks/bench_threads.py [--rounds 5] [--calls 5]

Each variant takes the same seven nets and batch as :func:`bench_mnist_step.seven_nets` (batch 600,
the preset's micro-batch and im2col convolutions) and is timed ``--calls`` calls per round, the
variants interleaved round by round so that each sees the same machine load; the median round is
reported:

* ``together``: one compiled call advancing all seven nets (:func:`qatlib.training.lockstep.make_lockstep_step`);
* ``singles``: the seven single-net steps one after another;
* ``groups``: SGD's four nets and Adam's three as two compiled steps, one after the other;
* ``groups_threads``: those two steps from two threads at once;
* ``singles_threads``: the seven single-net steps shared out over two threads.

``same_weights`` says, per variant, whether the weights after one step equal those of ``together``
bit for bit: a variant that differs would change the committed artefacts.

Writes ``benchmarks/results/threads_<isa>.json`` with the machine and versions.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_mnist_step import seven_nets  # noqa: E402

from qatlib.experiments import mnist  # noqa: E402
from qatlib.report import artefacts  # noqa: E402
from qatlib.training import lockstep  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: The two groups of nets: the SGD comparison's four, the Adam comparison's three.
GROUPS = (slice(0, 4), slice(4, 7))


def variants(microbatch: int) -> dict:
    """Each variant as a call that advances all seven nets one step and returns their new states."""
    nets, states, data = seven_nets(0, "im2col")
    together = lockstep.make_lockstep_step(nets, microbatch=microbatch)
    singles = [lockstep.make_lockstep_step([net], microbatch=microbatch) for net in nets]
    groups = [(lockstep.make_lockstep_step(nets[g], microbatch=microbatch), states[g]) for g in GROUPS]
    pool = ThreadPoolExecutor(2)

    def single(i: int) -> list:
        return jax.block_until_ready(singles[i]([states[i]], data)[0])

    def group(step_and_states: tuple) -> list:
        step, group_states = step_and_states
        return jax.block_until_ready(step(group_states, data)[0])

    def flat(parts: list[list]) -> list:
        return [state for part in parts for state in part]

    def singles_threads() -> list:
        parts = pool.map(lambda idx: {i: single(i)[0] for i in idx}, (range(0, len(nets), 2), range(1, len(nets), 2)))
        by_index = {i: state for part in parts for i, state in part.items()}
        return [by_index[i] for i in range(len(nets))]

    calls = {
        "together": lambda: jax.block_until_ready(together(states, data)[0]),
        "singles": lambda: flat([single(i) for i in range(len(nets))]),
        "groups": lambda: flat([group(g) for g in groups]),
        "groups_threads": lambda: flat(list(pool.map(group, groups))),
        "singles_threads": singles_threads,
    }
    return calls


def same_weights(calls: dict) -> dict[str, bool]:
    """Whether each variant's weights after one step equal ``together``'s, bit for bit."""
    reference = [np.asarray(leaf) for leaf in jax.tree.leaves([s.params for s in calls["together"]()])]
    out = {}
    for name, call in calls.items():
        leaves = [np.asarray(leaf) for leaf in jax.tree.leaves([s.params for s in call()])]
        out[name] = len(leaves) == len(reference) and all(np.array_equal(a, b) for a, b in zip(leaves, reference, strict=True))
    return out


def timings(calls: dict, rounds: int, per_round: int) -> dict[str, list[float]]:
    """Seconds per call of each variant, one figure per round, the variants interleaved."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            for _ in range(per_round):
                call()
            times[name].append((time.perf_counter() - start) / per_round)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds of timings, variants interleaved (default 5)")
    parser.add_argument("--calls", type=int, default=5, help="calls per variant per round (default 5)")
    args = parser.parse_args(argv)
    for name in ("rounds", "calls"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    microbatch = mnist.PRESETS["paper"].microbatch
    calls = variants(microbatch)
    equal = same_weights(calls)  # also compiles and warms every variant
    load_before = os.getloadavg()
    times = timings(calls, args.rounds, args.calls)
    median = {name: statistics.median(t) for name, t in times.items()}
    report = {
        "what": "seconds per step of the paper preset's seven nets (batch 600): one call, in turn, or on two threads",
        "microbatch": microbatch,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "seconds_per_step_median": median,
        "seconds_per_step_rounds": times,
        "gain_over_together": {name: median["together"] / t for name, t in median.items()},
        "same_weights_as_together": equal,
        "load_average_before_after": [list(load_before), list(os.getloadavg())],
        "machine": artefacts.device_info(),
        "versions": artefacts.package_versions(),
        "settings": {"rounds": args.rounds, "calls": args.calls},
    }
    path = artefacts.write_json(ROOT / "benchmarks" / "results" / f"threads_{artefacts.isa_tag()}.json", report)
    for name, seconds in median.items():
        print(f"{name:16s} {seconds:.3f} s/step  gain {median['together'] / seconds:.2f}  same weights: {equal[name]}")
    print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
