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
