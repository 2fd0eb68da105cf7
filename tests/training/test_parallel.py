"""Tests for qatlib.training.parallel: data parallelism over a forced 4-device CPU gives the 1-device losses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qatlib.training.parallel import DATA_AXIS, DataParallel, make_mesh

# Runs in a fresh interpreter: the device count is fixed when jax initialises its CPU backend.
SCRIPT = textwrap.dedent(
    """
    import json
    import jax, jax.numpy as jnp, numpy as np
    from qatlib import estimators
    from qatlib.models import ResNet
    from qatlib.training import lockstep, optimizers
    from qatlib.training.parallel import DataParallel

    assert len(jax.devices()) == 4, jax.devices()
    model = ResNet(stage_sizes=(1, 1), num_filters=4, num_classes=5,
                   estimator=estimators.HTGE(5.5, scale="range", normalize=True))
    variables = model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)), train=False)
    rng = np.random.default_rng(0)
    batches = [{"image": rng.normal(size=(8, 16, 16, 3)).astype(np.float32),
                "label": rng.integers(0, 5, size=8).astype(np.int32)} for _ in range(3)]

    def run(devices):
        net = lockstep.Net("q_net", model, optimizers.make_optimizer("sgd", 0.05, total_steps=3, warmup_fraction=0.0))
        state = lockstep.init_state(net, variables["params"], variables["batch_stats"])
        result = lockstep.train_lockstep([net], [state], iter(batches), 3, progress=False,
                                      data_parallel=DataParallel.create(devices))
        final = result.states["q_net"]
        return result.logs["loss"][:, 0].tolist(), final

    losses_1, state_1 = run(1)
    losses_4, state_4 = run(4)
    sharded = DataParallel.create(4).shard_batch(batches[0])
    leaves_1 = jax.tree_util.tree_leaves((state_1.params, state_1.batch_stats))
    leaves_4 = jax.tree_util.tree_leaves((state_4.params, state_4.batch_stats))
    print(json.dumps({
        "losses_1": losses_1,
        "losses_4": losses_4,
        "max_param_diff": max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in zip(leaves_1, leaves_4)),
        "shards": len(sharded["image"].addressable_shards),
        "shard_rows": sharded["image"].addressable_shards[0].data.shape[0],
        "param_devices": len(state_4.params["head"]["kernel"].sharding.device_set),
    }))
    """
)


@pytest.fixture(scope="module")
def four_device_run():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=900, check=False
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_four_devices_give_the_same_losses_as_one(four_device_run):
    np.testing.assert_allclose(four_device_run["losses_4"], four_device_run["losses_1"], rtol=1e-5, atol=1e-6)
    assert four_device_run["max_param_diff"] < 1e-5


def test_batch_is_split_and_state_replicated(four_device_run):
    assert four_device_run["shards"] == 4
    assert four_device_run["shard_rows"] == 2  # 8 examples over 4 devices
    assert four_device_run["param_devices"] == 4  # a copy on every device


def test_single_device_placement():
    data = DataParallel.create(1)
    batch = data.shard_batch({"image": np.zeros((3, 2), np.float32), "label": np.zeros(3, np.int32)})
    assert batch["image"].sharding.spec == jax.sharding.PartitionSpec(DATA_AXIS)
    tree = data.replicate({"w": jnp.ones(2)})
    assert tree["w"].sharding.is_fully_replicated


def test_bad_inputs_are_rejected_before_work():
    with pytest.raises(ValueError, match="only"):
        make_mesh(len(jax.devices()) + 1)
    with pytest.raises(ValueError, match="positive"):
        make_mesh(0)
    data = DataParallel.create(1)
    with pytest.raises(ValueError, match="same leading batch axis"):
        data.shard_batch({"image": np.zeros((3, 2)), "label": np.zeros(4)})
    with pytest.raises(ValueError, match="empty batch"):
        data.shard_batch({})
