"""Checkpoints with orbax: save every N steps, resume from the last one, lose nothing.

A training run is a loop ``state = step_fn(state, step)`` over ``step = 0 .. num_steps-1`` whose
only inputs are the state and the step index (the batch of step ``s`` is a pure function of the
data seed and ``s``; see :mod:`qatlib.data.imagenet`). A checkpoint holds the *whole* state -- every
net's params, BatchNorm statistics and optimizer state -- under the number of completed steps. A
run that is killed and started again restores the newest checkpoint and recomputes only the steps
after it, so its final state is bit-for-bit the uninterrupted run's (on the same device and
software).

One run at a time: a :class:`Checkpointer` holds a lock on its folder (:func:`run_lock`) from its
creation to :meth:`Checkpointer.close`, so a second run started on the same folder -- two launches
of one preset, on one host or on two hosts sharing the folder -- refuses at once with
:class:`CheckpointInUse`, which names the run in progress, instead of both writing the same step
folders. The lock is an exclusive ``flock`` on ``<folder>/.run.lock`` (which records the holder's
host, process id and command line); the operating system releases it when the holding process
ends, however it ends, so a killed run never leaves a stale lock. Across hosts it holds where the
shared filesystem supports file locks (NFS does, through its lock manager). Within one process the
lock is counted, not exclusive: a process that re-opens its own folder (a retry after an error)
is the same run. Over several processes (:mod:`qatlib.training.parallel`) process 0 takes the lock
for the whole run and every process learns the outcome, so all of them refuse together.
Checkpoints themselves are saved and restored collectively: orbax writes every process's shards
and process 0 the metadata.

>>> import tempfile, jax.numpy as jnp
>>> with tempfile.TemporaryDirectory() as tmp:
...     ckpt = Checkpointer(tmp, every=2)
...     final = run_with_checkpoints(lambda s, i: {"w": s["w"] + i}, {"w": jnp.zeros(())}, 5, ckpt)
...     ckpt.all_steps(), float(final["w"])
([4, 5], 10.0)
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import json
import os
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

import jax
import numpy as np
import orbax.checkpoint as ocp

__all__ = ["LOCK_FILE", "CheckpointInUse", "Checkpointer", "acquire_run_lock", "release_run_lock", "run_lock", "run_with_checkpoints"]

State = TypeVar("State")

#: The lock file inside a locked checkpoint folder (orbax ignores it: it is not a step folder).
LOCK_FILE = ".run.lock"
_MESSAGE_BYTES = 4096  # the longest refusal message process 0 shares with the others


class CheckpointInUse(RuntimeError):
    """A checkpoint folder is locked by another run; the message names that run and the folder."""


@dataclasses.dataclass
class _Held:
    handle: IO[str]
    count: int


_HELD: dict[Path, _Held] = {}  # folders this process has locked, with how many holders inside it


def _this_run() -> str:
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "command": " ".join(sys.argv), "started_utc": started})


def _try_lock(folder: Path) -> str | None:
    """Lock ``folder`` for this process: None when done, else what the lock file says of its holder."""
    if folder in _HELD:
        _HELD[folder].count += 1
        return None
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / LOCK_FILE, "a+", encoding="utf-8")  # noqa: SIM115 - held until release
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip()
        handle.close()
        return holder or "a run that has not yet written its name"
    handle.seek(0)
    handle.truncate()
    handle.write(_this_run())
    handle.flush()
    _HELD[folder] = _Held(handle, 1)
    return None


def _process_zero_says(message: str | None) -> str | None:
    """Process 0's ``message`` (None: no message), on every process of a multi-process run."""
    if jax.process_count() == 1:
        return message
    from jax.experimental import multihost_utils

    encoded = np.zeros(_MESSAGE_BYTES + 1, np.uint8)
    if message is not None:
        raw = message.encode()[:_MESSAGE_BYTES]
        encoded[0], encoded[1 : 1 + len(raw)] = 1, np.frombuffer(raw, np.uint8)
    shared = np.asarray(multihost_utils.broadcast_one_to_all(encoded))
    return bytes(shared[1:]).rstrip(b"\0").decode(errors="replace") if shared[0] else None


def acquire_run_lock(directory: str | os.PathLike[str]) -> Path:
    """Lock the checkpoint folder ``directory`` (created) for this run; returns it, absolute.

    Raises :class:`CheckpointInUse` naming the holder if another run holds it. Collective over the
    processes of a multi-process run: call it in every process.
    """
    folder = Path(directory).absolute()
    holder = _try_lock(folder) if jax.process_index() == 0 else None
    holder = _process_zero_says(holder)
    if holder is not None:
        raise CheckpointInUse(
            f"checkpoint folder {folder} is in use by another run: {holder}. Two runs of one config must not "
            "share it: wait for that run to end or stop it (a rerun resumes from its last checkpoint)"
        )
    return folder


def release_run_lock(directory: str | os.PathLike[str]) -> None:
    """Undo one :func:`acquire_run_lock` of this process (the lock goes when the last one is undone)."""
    folder = Path(directory).absolute()
    held = _HELD.get(folder)
    if held is None:
        return
    held.count -= 1
    if held.count == 0:
        fcntl.flock(held.handle, fcntl.LOCK_UN)
        held.handle.close()
        del _HELD[folder]


@contextlib.contextmanager
def run_lock(directory: str | os.PathLike[str] | None) -> Iterator[Path | None]:
    """:func:`acquire_run_lock` for the block (nothing when ``directory`` is None)."""
    if directory is None:
        yield None
        return
    folder = acquire_run_lock(directory)
    try:
        yield folder
    finally:
        release_run_lock(folder)


@dataclasses.dataclass
class Checkpointer:
    """An orbax ``CheckpointManager`` for one run directory, locked for this run until :meth:`close`
    (or the end of a ``with`` block; :class:`CheckpointInUse` if another run holds it).

    Args:
      directory: where the numbered step folders go (created; made absolute).
      every: save when the number of completed steps is a multiple of ``every``.
      max_to_keep: how many of the newest checkpoints survive (older ones are deleted).
    """

    directory: str | os.PathLike[str]
    every: int
    max_to_keep: int = 2
    _manager: ocp.CheckpointManager | None = dataclasses.field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        if not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"every must be a positive int, got {self.every!r}")
        if not isinstance(self.max_to_keep, int) or self.max_to_keep < 1:
            raise ValueError(f"max_to_keep must be a positive int, got {self.max_to_keep!r}")
        self.directory = acquire_run_lock(self.directory)
        try:
            self._manager = ocp.CheckpointManager(self.directory, options=self._options())
        except BaseException:
            release_run_lock(self.directory)
            raise

    def _options(self) -> ocp.CheckpointManagerOptions:
        return ocp.CheckpointManagerOptions(
            save_interval_steps=self.every,
            max_to_keep=self.max_to_keep,
            create=True,
            # Synchronous: a save has finished (and is atomic on disk) when save() returns, so a
            # process killed right after it can always resume from it.
            enable_async_checkpointing=False,
        )

    def _open(self) -> ocp.CheckpointManager:
        if self._manager is None:
            raise ValueError(f"the checkpointer of {self.directory} is closed")
        return self._manager

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def latest_step(self) -> int | None:
        """The number of completed steps in the newest checkpoint, or None if there is none."""
        return self._open().latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self._open().all_steps())

    def save(self, step: int, state: Any, *, force: bool = False) -> bool:
        """Save ``state`` as of ``step`` completed steps if ``step`` is due (or ``force``)."""
        saved = self._open().save(step, args=ocp.args.StandardSave(state), force=force)
        self._open().wait_until_finished()
        return bool(saved)

    def resume(self, template: State, steps: int) -> tuple[int, State]:
        """Where a run of ``steps`` steps starts: the newest checkpoint's step and state (restored
        into ``template``'s structure), or ``(0, template)`` when there is none. A checkpoint past
        ``steps`` belongs to another run and is refused."""
        latest = self.latest_step()
        if latest is None:
            return 0, template
        if int(latest) > steps:
            raise ValueError(f"the checkpoint at step {latest} is past steps={steps}: a checkpoint of another run?")
        return int(latest), self.restore(template, int(latest))

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
        return self._open().restore(step, args=ocp.args.StandardRestore(abstract))

    def close(self) -> None:
        """Close the manager and release this run's lock on the folder (idempotent)."""
        if self._manager is not None:
            self._manager.close()
            self._manager = None
            release_run_lock(self.directory)


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
    start, state = checkpointer.resume(init_state, num_steps) if checkpointer is not None else (0, init_state)
    for step in range(start, num_steps):
        state = step_fn(state, step)
        if on_step is not None:
            on_step(state, step + 1)
        if checkpointer is not None:
            checkpointer.save(step + 1, state, force=step + 1 == num_steps)
    return state
