"""Checkpoints with orbax: save every N steps, resume from the last one, lose nothing.

A training run is a loop ``state = step_fn(state, step)`` over ``step = 0 .. num_steps-1`` whose
only inputs are the state and the step index (the batch of step ``s`` is a pure function of the
data seed and ``s``; see :mod:`qatlib.data.imagenet`). A checkpoint holds the *whole* state -- every
net's params, BatchNorm statistics and optimizer state -- under the number of completed steps. A
run that is killed and started again restores the newest checkpoint and recomputes only the steps
after it, so its final state is bit-for-bit the uninterrupted run's (on the same device and
software).

>>> import tempfile, jax.numpy as jnp
>>> with tempfile.TemporaryDirectory() as tmp:
...     ckpt = Checkpointer(tmp, every=2)
...     final = run_with_checkpoints(lambda s, i: {"w": s["w"] + i}, {"w": jnp.zeros(())}, 5, ckpt)
...     ckpt.all_steps(), float(final["w"])
([4, 5], 10.0)
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import jax
import orbax.checkpoint as ocp

__all__ = ["Checkpointer", "run_with_checkpoints"]

State = TypeVar("State")


@dataclasses.dataclass
class Checkpointer:
    """An orbax ``CheckpointManager`` for one run directory.

    Args:
      directory: where the numbered step folders go (created; made absolute).
      every: save when the number of completed steps is a multiple of ``every``.
      max_to_keep: how many of the newest checkpoints survive (older ones are deleted).
    """

    directory: str | os.PathLike[str]
    every: int
    max_to_keep: int = 2
    _manager: ocp.CheckpointManager = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"every must be a positive int, got {self.every!r}")
        if not isinstance(self.max_to_keep, int) or self.max_to_keep < 1:
            raise ValueError(f"max_to_keep must be a positive int, got {self.max_to_keep!r}")
        self.directory = Path(self.directory).absolute()
        options = ocp.CheckpointManagerOptions(
            save_interval_steps=self.every,
            max_to_keep=self.max_to_keep,
            create=True,
            # Synchronous: a save has finished (and is atomic on disk) when save() returns, so a
            # process killed right after it can always resume from it.
            enable_async_checkpointing=False,
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        """The number of completed steps in the newest checkpoint, or None if there is none."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def save(self, step: int, state: Any, *, force: bool = False) -> bool:
        """Save ``state`` as of ``step`` completed steps if ``step`` is due (or ``force``)."""
        saved = self._manager.save(step, args=ocp.args.StandardSave(state), force=force)
        self._manager.wait_until_finished()
        return bool(saved)

    def restore(self, template: State, step: int | None = None) -> State:
        """Restore the checkpoint at ``step`` (default: newest) into ``template``'s structure.

        Arrays come back with the template's shapes, dtypes and shardings, so a replicated state
        is restored replicated.
        """
        if step is None:
            step = self.latest_step()
        if step is None:
            raise ValueError(f"no checkpoint to restore in {self.directory}")
        abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, template)
        return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))

    def close(self) -> None:
        self._manager.close()


def run_with_checkpoints(
    step_fn: Callable[[State, int], State],
    init_state: State,
    num_steps: int,
    checkpointer: Checkpointer | None,
    *,
    on_step: Callable[[State, int], None] | None = None,
) -> State:
    """Run ``state = step_fn(state, step)`` for ``step`` in ``[0, num_steps)``, resumably.

    If ``checkpointer`` holds a checkpoint, the loop starts after it; ``init_state`` then only
    provides the structure. A checkpoint is written after every ``checkpointer.every`` completed
    steps and after the last step. ``on_step(state, completed_steps)`` is called after each step
    that this call computes (for logging; it must not change the state).
    """
    if not isinstance(num_steps, int) or num_steps < 0:
        raise ValueError(f"num_steps must be a non-negative int, got {num_steps!r}")
    state, start = init_state, 0
    if checkpointer is not None and checkpointer.latest_step() is not None:
        start = int(checkpointer.latest_step())
        if start > num_steps:
            raise ValueError(f"checkpoint at step {start} is past num_steps={num_steps}")
        state = checkpointer.restore(init_state, start)
    for step in range(start, num_steps):
        state = step_fn(state, step)
        if on_step is not None:
            on_step(state, step + 1)
        if checkpointer is not None:
            checkpointer.save(step + 1, state, force=step + 1 == num_steps)
    return state
