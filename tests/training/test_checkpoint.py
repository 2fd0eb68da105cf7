"""Tests for qatlib.training.checkpoint: an interrupted run resumes from its last checkpoint and loses nothing."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qatlib.training import lockstep, optimizers
from qatlib.training.checkpoint import Checkpointer, run_with_checkpoints


class TinyBN(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = True):
        x = nn.Dense(8)(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
        return nn.Dense(3)(nn.relu(x))


def batch(step: int) -> dict[str, np.ndarray]:
    """The batch of ``step``: a pure function of the step, as the experiment's data sources are."""
    rng = np.random.default_rng(step)
    x = rng.normal(size=(16, 5)).astype(np.float32)
    return {"image": x, "label": (x[:, 0] > 0).astype(np.int32)}


class Interrupted(RuntimeError):
    pass


def make_run(total_steps: int):
    """Two nets in lock step (SGD with a chained per-leaf lr factor, and Adam), as in the experiment."""
    model = TinyBN()
    variables = model.init(jax.random.key(0), jnp.zeros((1, 5)))
    lr_scale = jax.tree.map(lambda _: 0.5, variables["params"])
    nets = [
        lockstep.Net("sgd", model, optimizers.make_optimizer("sgd", 0.1, total_steps, lr_scale=lr_scale)),
        lockstep.Net("adam", model, optimizers.make_optimizer("adam", 0.01, total_steps)),
    ]
    states = [lockstep.init_state(net, variables["params"], variables["batch_stats"]) for net in nets]
    step_all = lockstep.make_lockstep_step(nets)

    def step_fn(carry, step):
        new_states, logs, _ = step_all(carry["states"], batch(step))
        return {"states": list(new_states), "loss": carry["loss"].at[step].set(logs["loss"])}

    return step_fn, {"states": states, "loss": jnp.zeros((total_steps, 2))}


def test_interrupted_run_resumes_to_the_same_final_state(tmp_path):
    total = 7
    step_fn, init = make_run(total)
    uninterrupted = run_with_checkpoints(step_fn, init, total, None)

    def crashing(carry, step):
        if step == 5:
            raise Interrupted("killed at step 5")
        return step_fn(carry, step)

    ckpt = Checkpointer(tmp_path / "run", every=2)
    with pytest.raises(Interrupted):
        run_with_checkpoints(crashing, init, total, ckpt)
    assert ckpt.latest_step() == 4  # steps 0..4 done, the last save after 4 completed steps

    computed = []
    resumed_ckpt = Checkpointer(tmp_path / "run", every=2)  # a fresh process would build a new one
    resumed = run_with_checkpoints(
        step_fn, init, total, resumed_ckpt, on_step=lambda state, done: computed.append(done)
    )
    assert computed == [5, 6, 7]  # only the steps after the checkpoint were recomputed
    assert resumed_ckpt.latest_step() == total
    for a, b in zip(jax.tree_util.tree_leaves(uninterrupted), jax.tree_util.tree_leaves(resumed), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert np.all(np.asarray(resumed["loss"]) > 0)  # the per-step log survived the interruption too


def test_restore_keeps_structure_and_types(tmp_path):
    step_fn, init = make_run(3)
    ckpt = Checkpointer(tmp_path / "c", every=1, max_to_keep=1)
    state = step_fn(init, 0)
    assert ckpt.save(1, state)
    restored = ckpt.restore(init)
    assert jax.tree_util.tree_structure(restored) == jax.tree_util.tree_structure(state)
    assert isinstance(restored["states"][0], lockstep.TrainState)
    assert int(restored["states"][0].step) == 1
    assert ckpt.all_steps() == [1]


def test_bad_arguments_fail_before_work(tmp_path):
    with pytest.raises(ValueError):
        Checkpointer(tmp_path / "x", every=0)
    with pytest.raises(ValueError, match="no checkpoint"):
        Checkpointer(tmp_path / "empty", every=1).restore({"w": jnp.zeros(())})
    with pytest.raises(ValueError):
        run_with_checkpoints(lambda s, i: s, {}, -1, None)


# ----------------------------------------------------------------------------------------------
# One run per checkpoint folder: the lock.

HOLDER = """
import sys, time
from qatlib.training.checkpoint import Checkpointer
Checkpointer(sys.argv[1], every=1)
print("holding", flush=True)
sys.stdin.read()  # hold the folder until the test closes our stdin (or kills us)
"""


@pytest.fixture
def holder(tmp_path):
    """Another process (another run) holding a Checkpointer on ``tmp_path / "run"``."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import qatlib

    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(Path(qatlib.__file__).resolve().parents[1]))
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "run")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        line = process.stdout.readline()  # bounded: the holder either prints or exits
        assert line.strip() == "holding", f"the holder did not start (exit {process.wait(timeout=60)})"
        yield process
    finally:
        process.kill()
        process.wait(timeout=60)


def test_a_second_run_on_a_locked_folder_refuses_and_names_the_first(tmp_path, holder):
    from qatlib.training.checkpoint import CheckpointInUse

    with pytest.raises(CheckpointInUse, match=rf'{tmp_path / "run"} is in use by another run: .*"pid": {holder.pid}'):
        Checkpointer(tmp_path / "run", every=1)
    with Checkpointer(tmp_path / "other", every=1) as other:  # another folder (a sweep's other worker): no conflict
        assert other.save(1, {"w": jnp.ones(2)})
    holder.kill()
    holder.wait(timeout=60)
    with Checkpointer(tmp_path / "run", every=1) as ckpt:  # the OS released the dead run's lock
        assert ckpt.latest_step() is None


def lockable(path) -> bool:
    """Whether a fresh open of the lock file (as another run would open it) can take the lock now."""
    import fcntl

    with open(path) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
        return True


def test_the_lock_is_counted_within_a_process_and_released_on_close(tmp_path):
    from qatlib.training import checkpoint

    first = Checkpointer(tmp_path / "run", every=1)
    again = Checkpointer(tmp_path / "run", every=1)  # the same process re-opening its folder (a retry)
    lock = tmp_path / "run" / checkpoint.LOCK_FILE
    assert '"pid"' in lock.read_text()
    first.close()
    first.close()  # idempotent: does not release the other holder's share
    assert not lockable(lock)
    again.close()
    assert lockable(lock)
    with pytest.raises(ValueError, match="closed"):
        again.latest_step()
    with Checkpointer(tmp_path / "run", every=1) as ckpt:  # orbax ignores the lock file
        ckpt.save(1, {"w": jnp.ones(2)})
        assert ckpt.all_steps() == [1]
