"""Runs over several processes: the ResNet50 ``quick`` preset as 2 processes x 2 CPU devices
(``jax.distributed`` on localhost, gloo collectives) against 1 process x 4 devices, and a process
that stops answering and is killed after a checkpoint.

Each launch is ``python -m qatlib run resnet50 --preset quick --no-notebook`` in fresh interpreters,
as a user would start them (one command per process), with its own ``results/`` and ``runs/``
folders. Every wait is bounded; processes still running when a test ends are killed.

What is compared: every value of the two metrics artefacts (timings and provenance aside) and
every array of the final checkpoint of each phase (params, BatchNorm statistics and optimizer
state of every net, and the loss and E-bar logs).

1 x 4 against 2 x 2 is not bit for bit, and cannot be: the compiled step is the same GSPMD program
over 4 devices in both layouts, but its all-reduces (the gradient's sum over the batch, BatchNorm's
batch statistics) run in-process in one and through gloo over TCP in the other, which add the 4
shards in another order; float32 addition is not associative, so a step's results differ in the
last bits, and later steps carry that on. Measured on the quick preset (12 steps): losses within 2
float32 ulps (4.8e-7 at 2.7), E-bar within 1.9e-10 of the range, every accuracy, agreement and
prediction agreement equal; checkpoint arrays within 5.1e-6 of each array's largest magnitude. The
tolerances below are about 5-10x those, far below any digit the chapter reports (E-bar in percent to
2 decimals), and they still catch a real fault (a wrong batch row or step moves values by 1e-3 and
more, and flips accuracies). A relaunched run against an uninterrupted one, both 2 x 2, is
compared bit for bit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import qatlib
from qatlib.report.artefacts import RUN_DEPENDENT_KEYS, differing_values, read_json

pytestmark = pytest.mark.slow

SRC = Path(qatlib.__file__).resolve().parents[1]
#: The run under test: the quick preset (reduced ResNet, 12 steps of batch 8, the shared period and
#: every branch), with a checkpoint every 4 steps so that a killed run resumes. SGD only: what is
#: distributed (batch, collectives, checkpoints) is the same for Adam, and each launch costs half
#: (these launches were a quarter of the whole test run's time with both optimizers).
RUN = ["run", "resnet50", "--preset", "quick", "--no-notebook", "-p", "checkpoint_every", "4", "-p", "optimizers", "sgd"]
#: Every value of the artefacts: |a - b| <= METRIC_ATOL + METRIC_RTOL * max(|a|, |b|) (an
#: accuracy or agreement, a multiple of 1/examples or 1/weights, must therefore be equal).
METRIC_ATOL, METRIC_RTOL = 1e-8, 1e-6
#: Every checkpoint array: max |x - y| <= CHECKPOINT_RTOL * max |x| over the array, or METRIC_ATOL
#: (a logged metric column such as a branch's Ē^(t), whose largest value may be ~1e-6, is held to the
#: artefact's absolute tolerance, as the same values are in the artefact).
CHECKPOINT_RTOL = 5e-5
HEARTBEAT_SECONDS = 10  # a process silent this long counts as dead
LAUNCH_TIMEOUT = 900  # the bound on one launch, start to end (2-8 min on a 2-core CPU, the longer under load)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclasses.dataclass
class Launch:
    """The processes of one run and where they write."""

    folder: Path
    processes: list[subprocess.Popen]
    logs: list[Path]

    @property
    def metrics(self) -> Path:
        return self.folder / "results" / "resnet50" / "quick" / "metrics.json"

    @property
    def checkpoints(self) -> Path:
        (key,) = (self.folder / "runs" / "checkpoints" / "resnet50" / "quick").iterdir()
        return key

    def log(self, index: int) -> str:
        return self.logs[index].read_text(errors="replace")

    def wait(self, timeout: float = LAUNCH_TIMEOUT) -> list[int]:
        """Every process's exit status, waiting at most ``timeout`` seconds in all."""
        deadline = time.monotonic() + timeout
        codes = []
        for index, process in enumerate(self.processes):
            try:
                codes.append(process.wait(timeout=max(1.0, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                pytest.fail(f"process {index} still running after {timeout:.0f} s:\n{self.log(index)[-3000:]}")
        return codes

    def kill(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)


def launch(folder: Path, processes: int, devices: int, cache: Path) -> Launch:
    """Start the run as ``processes`` processes of ``devices`` CPU devices each, on localhost.

    Launches of one layout share JAX's persistent compilation cache in ``cache``: a relaunch reuses
    the programs its first launch compiled (the same executables, so the same numbers, without
    minutes of compiling). Each layout has its own, so no run can take another layout's program."""
    folder.mkdir(parents=True, exist_ok=True)
    env = {key: value for key, value in os.environ.items() if not key.startswith("JAX_")}
    env.update(
        JAX_COMPILATION_CACHE_DIR=str(cache / f"{processes}x{devices}"), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu",
        QATLIB_RESULTS_DIR=str(folder / "results"), PYTHONPATH=os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")]),
    )
    port = free_port()
    started = Launch(folder, [], [])
    for index in range(processes):
        command = [sys.executable, "-m", "qatlib", *RUN]
        if processes > 1:
            command += ["--coordinator-address", f"localhost:{port}", "--num-processes", str(processes),
                        "--process-id", str(index), "--heartbeat-timeout", str(HEARTBEAT_SECONDS)]
        log = folder / f"process{index}-{time.monotonic_ns()}.log"
        with open(log, "w") as out:
            started.processes.append(subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=folder))
        started.logs.append(log)
    return started


@contextlib.contextmanager
def running(folder: Path, processes: int, devices: int, cache: Path) -> Iterator[Launch]:
    """:func:`launch`, and kill whatever is left of it when the block ends (pass or fail)."""
    started = launch(folder, processes, devices, cache)
    try:
        yield started
    finally:
        started.kill()


def finished(folder: Path, processes: int, devices: int, cache: Path) -> Launch:
    with running(folder, processes, devices, cache) as run:
        codes = run.wait()
    for index, code in enumerate(codes):
        assert code == 0, f"process {index} exited with {code}:\n{run.log(index)[-4000:]}"
    return run


def final_checkpoints(run: Launch) -> dict[str, list[np.ndarray]]:
    """``{"sgd/shared": leaves, ...}``: every array of the newest checkpoint of each phase."""
    import jax
    import orbax.checkpoint as ocp

    out = {}
    here = jax.sharding.SingleDeviceSharding(jax.devices()[0])  # saved over 4 devices, read back on one
    for phase in sorted(path for path in run.checkpoints.glob("*/*") if path.is_dir()):
        step = max(int(path.name) for path in phase.iterdir() if path.name.isdigit())
        reader, item = ocp.StandardCheckpointer(), phase / str(step) / "default"
        target = jax.tree_util.tree_map(
            lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=here), reader.metadata(item).item_metadata
        )
        out[f"{phase.parent.name}/{phase.name}@{step}"] = [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(reader.restore(item, target))]
    return out


def assert_same_checkpoints(first: Launch, second: Launch, rtol: float = 0.0) -> None:
    """The final checkpoints of every phase hold the same arrays: equal, or within ``rtol`` of each
    array's largest magnitude (at least :data:`METRIC_ATOL`)."""
    a, b = final_checkpoints(first), final_checkpoints(second)
    assert sorted(a) == sorted(b) and len(a) == 2, (sorted(a), sorted(b))  # sgd: shared and branches
    for phase in a:
        assert len(a[phase]) == len(b[phase]) > 20, (phase, len(a[phase]))
        for index, (x, y) in enumerate(zip(a[phase], b[phase], strict=True)):
            assert x.shape == y.shape and x.dtype == y.dtype, (phase, index)
            if rtol == 0.0 or x.dtype.kind != "f":
                np.testing.assert_array_equal(x, y, err_msg=f"{phase}: leaf {index}")
            else:
                scale = float(np.max(np.abs(x), initial=0.0))
                np.testing.assert_allclose(x, y, rtol=0, atol=max(rtol * scale, METRIC_ATOL), err_msg=f"{phase}: leaf {index}")


def numbers(tree: object, path: str = "") -> dict[str, float]:
    """Every number of an artefact by its path, provenance and timings left out."""
    if isinstance(tree, dict):
        return {k: v for key, value in tree.items() if key not in RUN_DEPENDENT_KEYS for k, v in numbers(value, f"{path}/{key}").items()}
    if isinstance(tree, list):
        return {k: v for index, value in enumerate(tree) for k, v in numbers(value, f"{path}[{index}]").items()}
    return {path: tree}


def assert_close_artefacts(first: dict, second: dict) -> int:
    """The artefacts hold the same keys and strings and numbers within the metric tolerance; returns
    how many values were compared."""
    a, b = numbers(first), numbers(second)
    assert sorted(a) == sorted(b)
    far = {}
    for key, x in a.items():
        y = b[key]
        if isinstance(x, (int, float)) and not isinstance(x, bool) and isinstance(y, (int, float)):
            if not abs(x - y) <= METRIC_ATOL + METRIC_RTOL * max(abs(x), abs(y)):
                far[key] = (x, y)
        elif x != y:
            far[key] = (x, y)
    assert not far, f"{len(far)} of {len(a)} values differ beyond the tolerance, e.g. {list(far.items())[:5]}"
    return len(a)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("compilation-cache")


@pytest.fixture(scope="module")
def one_by_four(tmp_path_factory, cache) -> Launch:
    return finished(tmp_path_factory.mktemp("1x4"), processes=1, devices=4, cache=cache)


@pytest.fixture(scope="module")
def two_by_two(tmp_path_factory, cache) -> Launch:
    return finished(tmp_path_factory.mktemp("2x2"), processes=2, devices=2, cache=cache)


def test_two_processes_of_two_devices_equal_one_process_of_four(one_by_four, two_by_two):
    first, second = read_json(one_by_four.metrics), read_json(two_by_two.metrics)
    assert assert_close_artefacts(first, second) > 100  # 154 values with SGD alone
    assert_same_checkpoints(one_by_four, two_by_two, rtol=CHECKPOINT_RTOL)
    processes = second["provenance"]["processes"]
    assert processes == {"process_count": 2, "devices_per_process": 2, "coordinator": "explicit"}
    assert first["provenance"]["processes"] == {"process_count": 1, "devices_per_process": 4, "coordinator": "single process"}
    assert first["provenance"]["data_parallel_devices"] == second["provenance"]["data_parallel_devices"] == 4
    assert not list(two_by_two.folder.glob("results/*/*/*.ipynb"))  # --no-notebook: the artefact only
    assert "process 1 of 2" in two_by_two.log(1) and "metrics:" not in two_by_two.log(1)  # only process 0 writes


def wait_for_checkpoint(run: Launch, phase: str, timeout: float = LAUNCH_TIMEOUT) -> int:
    """The first committed step of ``phase`` (e.g. ``"sgd/branches"``) while the run is still going."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(process.poll() is not None for process in run.processes):
            pytest.fail("a process ended before the checkpoint:\n" + "\n".join(run.log(i)[-2000:] for i in range(2)))
        with contextlib.suppress(FileNotFoundError, ValueError):
            steps = [int(path.name) for path in (run.checkpoints / phase).iterdir() if path.name.isdigit()]
            if steps:
                return min(steps)
        time.sleep(0.2)
    pytest.fail(f"no {phase} checkpoint within {timeout:.0f} s")


def test_a_killed_process_stops_the_other_and_a_relaunch_resumes_to_the_uninterrupted_run(tmp_path, two_by_two, cache):
    """Process 1 first stops answering (SIGSTOP: its connections stay open, as a lost host's may,
    so only the heartbeat timeout can tell), then is killed; process 0 must end with an error naming
    it within a few heartbeat timeouts (with JAX's default of 100 s it would still be running)."""
    folder = tmp_path / "killed"
    with running(folder, processes=2, devices=2, cache=cache) as run:
        wait_for_checkpoint(run, "sgd/branches")
        run.processes[1].send_signal(signal.SIGSTOP)
        killed_at = time.time()
        try:
            code = run.processes[0].wait(timeout=6 * HEARTBEAT_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"process 0 still running {6 * HEARTBEAT_SECONDS} s after process 1 stopped")
        finally:
            run.processes[1].kill()
        assert code != 0
        # JAX's coordination service names the task that stopped: process 1.
        assert re.search(r"stopped sending heartbeats\):\s*(\S*task:)?1\b", run.log(0)), run.log(0)[-3000:]
    shared = run.checkpoints / "sgd" / "shared"
    shared_saved = max(path.stat().st_mtime for path in shared.iterdir() if path.name.isdigit())

    resumed = finished(folder, processes=2, devices=2, cache=cache)
    assert max(path.stat().st_mtime for path in shared.iterdir() if path.name.isdigit()) == shared_saved < killed_at
    differing, _ = differing_values(read_json(resumed.metrics), read_json(two_by_two.metrics))
    assert differing == []
    assert_same_checkpoints(resumed, two_by_two)
