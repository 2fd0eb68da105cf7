"""Data-parallel training with JAX's own sharding: one mesh axis ``"data"``.

The batch is split along its leading axis over the devices of a 1-D mesh; parameters, BatchNorm
statistics and optimizer state are replicated. A step function that is ``jax.jit``-compiled and fed
arrays placed this way is partitioned by XLA (GSPMD): each device computes its shard of the
forward/backward pass, and every reduction over the batch (the mean loss, its gradient, BatchNorm's
batch mean and variance) is a *global* reduction with a cross-device all-reduce inserted by the
compiler. So the maths is the single-device maths, whatever the device count: the same config runs
on 1 CPU, 1 GPU or a TPU slice, and agrees with one device up to float reassociation.

(This differs from the Flax ImageNet example's ``pmap`` recipe, where BatchNorm statistics are
per-device unless ``axis_name`` is set; here nothing in the model needs to know about devices.)

>>> import jax.numpy as jnp
>>> data = DataParallel.create(num_devices=1)
>>> batch = data.shard_batch({"image": jnp.zeros((4, 2)), "label": jnp.zeros((4,), jnp.int32)})
>>> batch["image"].sharding.spec
P('data',)
>>> data.num_devices
1
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = ["DATA_AXIS", "DataParallel", "make_mesh"]

DATA_AXIS = "data"


def make_mesh(num_devices: int | None = None, devices: list[Any] | None = None) -> Mesh:
    """A 1-D mesh named ``"data"`` over ``num_devices`` devices (default: all local devices).

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
    return Mesh(np.asarray(available[:num_devices]), (DATA_AXIS,))


@dataclasses.dataclass(frozen=True)
class DataParallel:
    """Placement rules for data parallelism on ``mesh``: batch sharded, everything else replicated.

    Use :meth:`replicate` once on the initial train state and :meth:`shard_batch` on every batch;
    a jitted step then runs partitioned and returns replicated outputs.
    """

    mesh: Mesh

    @classmethod
    def create(cls, num_devices: int | None = None) -> DataParallel:
        """Data parallelism over the first ``num_devices`` local devices (default: all)."""
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

    def shard_batch(self, batch: Any) -> Any:
        """Place every array of ``batch`` with its leading axis split over the devices."""
        leaves = jax.tree_util.tree_leaves(batch)
        if not leaves:
            raise ValueError("empty batch")
        sizes = {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in leaves}
        if None in sizes or len(sizes) != 1:
            raise ValueError(f"every batch array needs the same leading batch axis; got sizes {sizes}")
        self.check_batch_size(sizes.pop())
        return jax.device_put(batch, self.batch_sharding)

    def replicate(self, tree: Any) -> Any:
        """Place a copy of every array of ``tree`` on every device (params, optimizer state, ...)."""
        return jax.device_put(tree, self.replicated_sharding)
