"""Data-parallel training with JAX's own sharding: one mesh axis ``"data"``, over one process or many.

The batch is split along its leading axis over the devices of a 1-D mesh; parameters, BatchNorm
statistics and optimizer state are replicated. A step function that is ``jax.jit``-compiled and fed
arrays placed this way is partitioned by XLA (GSPMD): each device computes its shard of the
forward/backward pass, and every reduction over the batch (the mean loss, its gradient, BatchNorm's
batch mean and variance) is a *global* reduction with a cross-device all-reduce inserted by the
compiler. So the maths is the single-device maths, whatever the device count: the same config runs
on 1 CPU, 1 GPU or a TPU slice, and agrees with one device up to float reassociation.

(This differs from the Flax ImageNet example's ``pmap`` recipe, where BatchNorm statistics are
per-device unless ``axis_name`` is set; here nothing in the model needs to know about devices.)

Several processes (JAX's multi-controller runtime: one process per host of a TPU pod slice or per
GPU node, each running the same program): :func:`start_processes` calls
``jax.distributed.initialize``, after which ``jax.devices()`` lists every process's devices and the
mesh spans them all. Each process then builds only *its* rows of each global batch
(:meth:`DataParallel.local_rows`) and :meth:`DataParallel.shard_local_batch` assembles the global
array from the processes' pieces (``jax.make_array_from_process_local_data``); the compiled step is
the same program as on one process with as many devices.

>>> import jax.numpy as jnp
>>> data = DataParallel.create(num_devices=1)
>>> batch = data.shard_batch({"image": jnp.zeros((4, 2)), "label": jnp.zeros((4,), jnp.int32)})
>>> batch["image"].sharding.spec
P('data',)
>>> data.num_devices, data.local_rows(4)
(1, (0, 4))
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = [
    "DATA_AXIS",
    "DataParallel",
    "ProcessGroup",
    "check_process_arguments",
    "make_mesh",
    "process_group",
    "start_processes",
]

DATA_AXIS = "data"


def make_mesh(num_devices: int | None = None, devices: list[Any] | None = None) -> Mesh:
    """A 1-D mesh named ``"data"`` over ``num_devices`` devices (default: all devices of all processes).

    Over several processes the mesh must take every device (each process feeds its own).

    >>> make_mesh(1).axis_names
    ('data',)
    """
    available = list(devices) if devices is not None else list(jax.devices())
    if num_devices is None:
        num_devices = len(available)
    if not isinstance(num_devices, int) or num_devices < 1:
        raise ValueError(f"num_devices must be a positive int, got {num_devices!r}")
    if num_devices > len(available):
        raise ValueError(
            f"asked for {num_devices} devices but only {len(available)} are visible "
            f"({jax.default_backend()}); on CPU set XLA_FLAGS=--xla_force_host_platform_device_count=N"
        )
    if jax.process_count() > 1 and num_devices != len(available):
        raise ValueError(
            f"num_devices={num_devices}: a run over {jax.process_count()} processes uses all "
            f"{len(available)} devices (num_devices 0)"
        )
    return Mesh(np.asarray(available[:num_devices]), (DATA_AXIS,))


@dataclasses.dataclass(frozen=True)
class DataParallel:
    """Placement rules for data parallelism on ``mesh``: batch sharded, everything else replicated.

    Use :meth:`replicate` once on the initial train state and :meth:`shard_batch` (the whole batch,
    every process the same) or :meth:`shard_local_batch` (this process's rows only) on every batch;
    a jitted step then runs partitioned and returns replicated outputs.
    """

    mesh: Mesh

    @classmethod
    def create(cls, num_devices: int | None = None) -> DataParallel:
        """Data parallelism over the first ``num_devices`` devices (default: all, of all processes)."""
        return cls(make_mesh(num_devices))

    @property
    def num_devices(self) -> int:
        return int(self.mesh.devices.size)

    @property
    def batch_sharding(self) -> NamedSharding:
        """Leading (batch) axis split over ``"data"``, other axes whole."""
        return NamedSharding(self.mesh, PartitionSpec(DATA_AXIS))

    @property
    def replicated_sharding(self) -> NamedSharding:
        return NamedSharding(self.mesh, PartitionSpec())

    def check_batch_size(self, batch_size: int) -> None:
        """ValueError unless ``batch_size`` splits evenly over the devices."""
        if batch_size % self.num_devices:
            raise ValueError(
                f"batch size {batch_size} is not divisible by the {self.num_devices} devices of the "
                f"'{DATA_AXIS}' mesh axis"
            )

    def local_rows(self, batch_size: int) -> tuple[int, int]:
        """``(start, stop)``: the rows of a global batch of ``batch_size`` that this process's devices
        hold (all of them on one process). Read from the sharding, so it holds for any device order."""
        self.check_batch_size(batch_size)
        indices = self.batch_sharding.addressable_devices_indices_map((batch_size,)).values()
        starts = sorted({index[0].indices(batch_size)[:2] for index in indices})
        start, stop = starts[0][0], starts[-1][1]
        if sum(b - a for a, b in starts) != stop - start:
            raise ValueError(f"this process's rows of the batch are not contiguous: {starts}")
        return start, stop

    def shard_batch(self, batch: Any) -> Any:
        """Place every array of the *global* ``batch`` (the same on every process) with its leading
        axis split over the devices; each process keeps only its rows. A batch already placed with
        :attr:`batch_sharding` is returned as it is."""
        size = _batch_size(batch)
        self.check_batch_size(size)
        if all(isinstance(leaf, jax.Array) and leaf.sharding == self.batch_sharding for leaf in jax.tree_util.tree_leaves(batch)):
            return batch
        if jax.process_count() == 1:
            return jax.device_put(batch, self.batch_sharding)
        start, stop = self.local_rows(size)
        return self.shard_local_batch(jax.tree_util.tree_map(lambda leaf: np.asarray(leaf)[start:stop], batch), size)

    def shard_local_batch(self, local_batch: Any, batch_size: int) -> Any:
        """The global batch of ``batch_size`` rows from this process's rows :meth:`local_rows`
        (``jax.make_array_from_process_local_data``; on one process, the whole batch)."""
        start, stop = self.local_rows(batch_size)
        local_size = _batch_size(local_batch)
        if local_size != stop - start:
            raise ValueError(
                f"this process holds rows {start}..{stop} of a batch of {batch_size}: expected "
                f"{stop - start} local rows, got {local_size}"
            )

        def assemble(leaf: Any) -> jax.Array:
            leaf = np.asarray(leaf)
            return jax.make_array_from_process_local_data(self.batch_sharding, leaf, (batch_size, *leaf.shape[1:]))

        return jax.tree_util.tree_map(assemble, local_batch)

    def replicate(self, tree: Any) -> Any:
        """Place a copy of every array of ``tree`` on every device (params, optimizer state, ...).
        Over several processes every process must pass the same values."""
        return jax.device_put(tree, self.replicated_sharding)


def _batch_size(batch: Any) -> int:
    leaves = jax.tree_util.tree_leaves(batch)
    if not leaves:
        raise ValueError("empty batch")
    sizes = {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in leaves}
    if None in sizes or len(sizes) != 1:
        raise ValueError(f"every batch array needs the same leading batch axis; got sizes {sizes}")
    return int(sizes.pop())


# ----------------------------------------------------------------------------------------------
# Several processes: jax.distributed.


@dataclasses.dataclass(frozen=True)
class ProcessGroup:
    """How this run's processes were started: their number, this one's index, the devices each
    holds, and the coordinator: ``"single process"``, ``"explicit"`` (address, count and id given
    by flags or the environment) or ``"auto-detected: <JAX cluster>"`` (TPU VM, SLURM, Open MPI, ...)."""

    process_count: int
    process_index: int
    devices_per_process: int
    coordinator: str


_COORDINATOR = {"kind": "single process"}
_ADDRESS = re.compile(r"^\[?[^\s\[\]]+\]?:(\d{1,5})$")


def _detected_cluster() -> str:
    """The name of the JAX cluster environment that ``jax.distributed.initialize()`` would use."""
    try:
        from jax._src import clusters  # the same registry JAX's own auto-detection walks

        found = next(
            (env for env in clusters.ClusterEnv._cluster_types if not env.opt_in_only_method and env.is_env_present()),
            None,
        )
    except Exception:  # noqa: BLE001 - a JAX-internal registry: name it if we can, else say so
        return "auto-detected"
    return f"auto-detected: {found.__name__}" if found is not None else "auto-detected: none found"


def check_process_arguments(coordinator_address: str | None, num_processes: int | None, process_id: int | None) -> None:
    """ValueError naming the parameter unless the given ones are usable: ``host:port`` with a port in
    1..65535, ``num_processes >= 1``, ``0 <= process_id < num_processes``. Address, count and id
    must come together (or none of them: auto-detection).

    >>> check_process_arguments("localhost:1234", 2, 1)
    >>> check_process_arguments("localhost:1234", 2, 2)
    Traceback (most recent call last):
    ...
    ValueError: process_id must satisfy 0 <= process_id < num_processes (2), got 2
    """
    given = {"coordinator_address": coordinator_address, "num_processes": num_processes, "process_id": process_id}
    missing = [name for name, value in given.items() if value is None]
    if 0 < len(missing) < 3:
        raise ValueError(
            f"{', '.join(missing)} missing: give coordinator_address, num_processes and process_id together "
            "(or none of them, to let JAX detect a TPU VM or SLURM cluster)"
        )
    if not missing:
        match = _ADDRESS.match(str(coordinator_address))
        if match is None or not 0 < int(match.group(1)) < 65536:
            raise ValueError(f"coordinator_address must be host:port with a port in 1..65535, got {coordinator_address!r}")
        if isinstance(num_processes, bool) or not isinstance(num_processes, int) or num_processes < 1:
            raise ValueError(f"num_processes must be an int >= 1, got {num_processes!r}")
        if isinstance(process_id, bool) or not isinstance(process_id, int) or not 0 <= process_id < num_processes:
            raise ValueError(f"process_id must satisfy 0 <= process_id < num_processes ({num_processes}), got {process_id!r}")


def start_processes(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    heartbeat_timeout_seconds: int = 100,
    initialization_timeout_seconds: int = 300,
) -> ProcessGroup:
    """Join this process to a multi-process run (``jax.distributed.initialize``); call it before
    any JAX computation, in every process.

    With no address, count and id, JAX detects them itself (a Cloud TPU VM, SLURM, Open MPI, ...).
    CPU devices talk through gloo collectives. If a process dies, the coordination service notices
    within ``heartbeat_timeout_seconds`` and ends every other process with an error naming the task
    that stopped (JAX's own "tasks are unhealthy (stopped sending heartbeats): <id>"), instead of
    leaving them blocked in a collective.
    """
    check_process_arguments(coordinator_address, num_processes, process_id)
    for name, value in (("heartbeat_timeout_seconds", heartbeat_timeout_seconds),
                        ("initialization_timeout_seconds", initialization_timeout_seconds)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    kind = "explicit" if coordinator_address is not None else _detected_cluster()
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU only; GPUs/TPUs use their own
    jax.distributed.initialize(
        coordinator_address, num_processes, process_id,
        initialization_timeout=initialization_timeout_seconds, heartbeat_timeout_seconds=heartbeat_timeout_seconds,
    )
    _COORDINATOR["kind"] = kind
    return process_group()


def process_group() -> ProcessGroup:
    """This run's processes as they are now (one process unless :func:`start_processes` ran)."""
    return ProcessGroup(jax.process_count(), jax.process_index(), jax.local_device_count(), _COORDINATOR["kind"])
