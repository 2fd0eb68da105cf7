"""Tests for qatlib.training.optimizers and .lockstep: schedule, optimizers, per-leaf lr factors, the lock-step trainer, the evaluator."""

from __future__ import annotations

import itertools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from qatlib.training import lockstep, optimizers


class Tiny(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(3)(nn.relu(nn.Dense(8)(x)))


class TinyBN(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = True):
        x = nn.Dense(8)(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.5)(x)
        return nn.Dense(3)(nn.relu(x))


def stream(seed=0, batch=16):
    rng = np.random.default_rng(seed)
    while True:
        x = rng.normal(size=(batch, 5)).astype(np.float32)
        yield {"image": x, "label": (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 1).astype(np.int32)}


def tiny_params(seed=0):
    return Tiny().init(jax.random.key(seed), jnp.zeros((1, 5)))["params"]


def test_schedule_warms_up_over_two_percent_then_cosine_decays():
    schedule = optimizers.warmup_cosine_schedule(1e-3, total_steps=1000)
    values = np.array([float(schedule(step)) for step in range(1001)])
    assert values[0] == 0.0
    assert values[20] == pytest.approx(1e-3) and values.argmax() == 20  # 2% of 1000 steps
    np.testing.assert_allclose(values[:21], np.linspace(0, 1e-3, 21), rtol=1e-5, atol=1e-12)
    assert values[510] == pytest.approx(0.5e-3, rel=1e-3)  # half-way through the cosine
    assert values[-1] == pytest.approx(0.0, abs=1e-12)
    assert np.all(np.diff(values[20:]) <= 1e-12)


def test_schedule_and_optimizer_reject_bad_arguments():
    with pytest.raises(ValueError):
        optimizers.warmup_cosine_schedule(1e-3, total_steps=0)
    with pytest.raises(ValueError):
        optimizers.warmup_cosine_schedule(-1.0, total_steps=10)
    with pytest.raises(ValueError, match="optimizer"):
        optimizers.make_optimizer("rmsprop", 1e-3, 10)


def test_sgd_momentum_matches_the_update_rule_and_lr_scale_multiplies_it():
    params = {"w": jnp.array([1.0, -2.0]), "b": jnp.array(0.5)}
    grads = {"w": jnp.array([0.3, 0.1]), "b": jnp.array(-1.0)}
    schedule = optimizers.warmup_cosine_schedule(0.1, 50)
    plain = optimizers.make_optimizer("sgd", 0.1, 50)
    scaled = optimizers.make_optimizer("sgd", 0.1, 50, lr_scale={"w": 0.25, "b": 1.0})
    s_plain, s_scaled = plain.init(params), scaled.init(params)
    velocity = jax.tree.map(jnp.zeros_like, grads)
    for step in range(3):
        u_plain, s_plain = plain.update(grads, s_plain, params)
        u_scaled, s_scaled = scaled.update(grads, s_scaled, params)
        velocity = jax.tree.map(lambda v, g: 0.9 * v + g, velocity, grads)
        np.testing.assert_allclose(u_plain["w"], -float(schedule(step)) * velocity["w"], rtol=1e-6)
        np.testing.assert_allclose(u_scaled["w"], 0.25 * u_plain["w"], rtol=1e-6)
        np.testing.assert_allclose(u_scaled["b"], u_plain["b"], rtol=1e-6)


def test_adam_uses_beta2_095():
    params = {"w": jnp.array([1.0])}
    ours = optimizers.make_optimizer("adam", 1e-2, 100)
    reference = optax.adam(optimizers.warmup_cosine_schedule(1e-2, 100), b1=0.9, b2=0.95)
    s1, s2 = ours.init(params), reference.init(params)
    for g in (0.5, -1.0, 2.0, 0.1):
        grads = {"w": jnp.array([g])}
        u1, s1 = ours.update(grads, s1, params)
        u2, s2 = reference.update(grads, s2, params)
        np.testing.assert_allclose(u1["w"], u2["w"], rtol=1e-6)
    other = optax.adam(optimizers.warmup_cosine_schedule(1e-2, 100), b1=0.9, b2=0.999)
    s3 = other.init(params)
    for g in (0.5, -1.0, 2.0, 0.1):
        u3, s3 = other.update({"w": jnp.array([g])}, s3, params)
    assert not np.allclose(u1["w"], u3["w"])


def run_separately(net, state, steps, seed=0):
    step_fn = lockstep.make_lockstep_step([net])
    for batch in itertools.islice(stream(seed), steps):
        (state,), _, _ = step_fn([state], batch)
    return state


def test_lockstep_equals_separate_training_and_is_deterministic():
    nets = [
        lockstep.Net("sgd", Tiny(), optimizers.make_optimizer("sgd", 0.05, 20)),
        lockstep.Net("adam", Tiny(), optimizers.make_optimizer("adam", 0.01, 20)),
    ]
    states = [lockstep.init_state(net, tiny_params(i)) for i, net in enumerate(nets)]
    result = lockstep.train_lockstep(nets, states, stream(), 20, progress=False)
    again = lockstep.train_lockstep(nets, states, stream(), 20, progress=False)
    for i, net in enumerate(nets):
        alone = run_separately(net, states[i], 20)
        for a, b in zip(jax.tree.leaves(alone.params), jax.tree.leaves(result.states[net.name].params), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
        for a, b in zip(
            jax.tree.leaves(result.states[net.name].params), jax.tree.leaves(again.states[net.name].params), strict=True
        ):
            np.testing.assert_array_equal(a, b)
    assert result.logs["loss"].shape == (20, 2) and result.logs["accuracy"].shape == (20, 2)
    assert int(result.states["sgd"].step) == 20
    assert result.logs["loss"][-5:].mean() < result.logs["loss"][:5].mean()  # it learns


def test_branching_from_a_given_state_continues_the_schedule():
    net = lockstep.Net("a", Tiny(), optimizers.make_optimizer("sgd", 0.05, 10))
    start = lockstep.init_state(net, tiny_params())
    first = lockstep.train_lockstep([net], [start], stream(), 4, progress=False).states["a"]
    branch = lockstep.init_state(net, first.params, opt_state=first.opt_state, step=int(first.step))
    rest = itertools.islice(stream(), 4, None)
    continued = lockstep.train_lockstep([net], [branch], rest, 6, progress=False).states["a"]
    straight = lockstep.train_lockstep([net], [start], stream(), 10, progress=False).states["a"]
    for a, b in zip(jax.tree.leaves(continued.params), jax.tree.leaves(straight.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert int(continued.step) == 10


def test_batch_norm_statistics_are_updated_and_used_in_eval():
    model = TinyBN()
    variables = model.init(jax.random.key(0), jnp.zeros((2, 5)), train=False)
    net = lockstep.Net("bn", model, optimizers.make_optimizer("sgd", 0.05, 5))
    state = lockstep.init_state(net, variables["params"], batch_stats=variables["batch_stats"])
    final = lockstep.train_lockstep([net], [state], stream(), 5, progress=False).states["bn"]
    mean_before = variables["batch_stats"]["BatchNorm_0"]["mean"]
    assert not np.allclose(final.batch_stats["BatchNorm_0"]["mean"], mean_before)
    x = next(stream(9))["image"]
    labels = np.zeros(len(x), np.int32)
    batches = [{"image": x[:10], "label": labels[:10]}, {"image": x[10:], "label": labels[10:]}]  # the last padded
    out = lockstep.make_evaluator(model)(final, batches)
    expected = model.apply({"params": final.params, "batch_stats": final.batch_stats}, x, train=False)
    np.testing.assert_allclose(out["logits"], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out["predictions"], np.argmax(expected, axis=-1))
    assert out["accuracy"] == pytest.approx(float(np.mean(np.argmax(expected, axis=-1) == 0)))


def test_observe_on_log_and_data_parallel_hooks():
    net = lockstep.Net("a", Tiny(), optimizers.make_optimizer("sgd", 0.05, 7))
    state = lockstep.init_state(net, tiny_params())
    logged = []
    calls = {"shard": 0, "replicate": 0}

    class Recorder:
        def shard_batch(self, batch):
            calls["shard"] += 1
            return batch

        def replicate(self, tree):
            calls["replicate"] += 1
            return tree

    result = lockstep.train_lockstep(
        [net],
        [state],
        stream(),
        7,
        observe=lambda before, after: {
            "first": after[0].params["Dense_0"]["kernel"][0, 0], "step": after[0].step, "before": before[0].step,
        },
        on_log=lambda step, states: logged.append((step, int(states["a"].step))) or {"step": step},
        log_every=3,
        data_parallel=Recorder(),
        progress=False,
    )
    assert logged == [(0, 0), (3, 3), (6, 6), (7, 7)]
    np.testing.assert_array_equal(result.observations["step"], np.arange(1, 8))
    np.testing.assert_array_equal(result.observations["before"], np.arange(0, 7))
    np.testing.assert_array_equal(result.log_steps, [0, 3, 6, 7])
    np.testing.assert_array_equal(result.log_values["step"], [0, 3, 6, 7])
    assert result.observations["first"].shape == (7,)
    assert calls == {"shard": 7, "replicate": 1}


def test_real_data_parallel_placement_gives_the_same_result():
    from qatlib.training.parallel import DataParallel

    net = lockstep.Net("a", Tiny(), optimizers.make_optimizer("sgd", 0.05, 3))
    state = lockstep.init_state(net, tiny_params())
    plain = lockstep.train_lockstep([net], [state], stream(), 3, progress=False).states["a"]
    placed = lockstep.train_lockstep(
        [net], [state], stream(), 3, data_parallel=DataParallel.create(1), progress=False
    ).states["a"]
    for a, b in zip(jax.tree.leaves(plain.params), jax.tree.leaves(placed.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_trainer_rejects_bad_input_before_training():
    net = lockstep.Net("a", Tiny(), optimizers.make_optimizer("sgd", 0.05, 3))
    state = lockstep.init_state(net, tiny_params())
    with pytest.raises(ValueError, match="states"):
        lockstep.train_lockstep([net], [], stream(), 3, progress=False)
    with pytest.raises(ValueError, match="unique"):
        lockstep.make_lockstep_step([net, net])
    with pytest.raises(ValueError, match="ended"):
        lockstep.train_lockstep([net], [state], itertools.islice(stream(), 2), 3, progress=False)
    evaluate = lockstep.make_evaluator(net.model)
    with pytest.raises(ValueError, match="no evaluation examples"):
        evaluate(state, [])
    grow = [{"image": np.zeros((1, 5), np.float32), "label": np.zeros(1, np.int32)},
            {"image": np.zeros((2, 5), np.float32), "label": np.zeros(2, np.int32)}]
    with pytest.raises(ValueError, match="must not grow"):
        evaluate(state, grow)


def _two_nets():
    return [
        lockstep.Net("sgd", Tiny(), optimizers.make_optimizer("sgd", 0.1, total_steps=20, momentum=0.9)),
        lockstep.Net("adam", Tiny(), optimizers.make_optimizer("adam", 0.01, total_steps=20)),
    ]


def _run(nets, microbatch, steps=5):
    states = [lockstep.init_state(net, tiny_params(i)) for i, net in enumerate(nets)]
    step = lockstep.make_lockstep_step(nets, microbatch=microbatch)
    logs = []
    for batch in itertools.islice(stream(batch=16), steps):
        states, log, _ = step(states, batch)
        logs.append(log)
    return states, logs


@pytest.mark.parametrize("microbatch", [2, 4, 8])
def test_microbatched_gradients_equal_the_whole_batch_to_float32_rounding(microbatch):
    """Summing the chunks' gradients is the batch gradient in another order: every parameter, loss
    and accuracy agrees with the one-shot step to float32 rounding, for SGD and Adam, over 5 steps."""
    nets = _two_nets()
    whole, whole_logs = _run(nets, 0)
    chunked, chunked_logs = _run(nets, microbatch)
    for a, b in zip(whole, chunked, strict=True):
        for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    for a, b in zip(whole_logs, chunked_logs, strict=True):
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-6)
        np.testing.assert_array_equal(a["accuracy"], b["accuracy"])


def test_one_chunk_is_the_whole_batch_bit_for_bit():
    nets = _two_nets()
    whole, _ = _run(nets, 0)
    single, _ = _run(nets, 16)
    for a, b in zip(whole, single, strict=True):
        for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
            np.testing.assert_array_equal(x, y)


def test_microbatch_is_refused_where_it_would_change_the_step():
    nets = _two_nets()
    with pytest.raises(ValueError, match="microbatch must divide the batch size: 5 does not divide 16"):
        _run(nets, 5, steps=1)
    with pytest.raises(ValueError, match="microbatch must be >= 0"):
        lockstep.make_lockstep_step(nets, microbatch=-1)
    bn = lockstep.Net("bn", TinyBN(), optimizers.make_optimizer("sgd", 0.1, total_steps=5))
    variables = TinyBN().init(jax.random.key(0), jnp.zeros((2, 5)))
    state = lockstep.init_state(bn, variables["params"], variables["batch_stats"])
    with pytest.raises(ValueError, match="BatchNorm"):
        lockstep.make_lockstep_step([bn], microbatch=4)([state], next(stream()))


def test_evaluator_in_chunks_gives_the_same_logits_bit_for_bit():
    """The MNIST convnet evaluated over chunks of 25 (and of 7, which does not divide 100: the batch
    at once) equals the whole-batch evaluation bit for bit, the short last batch included."""
    from qatlib import estimators, models

    model = models.CholletConvNet(bits=2, estimator=estimators.STE())
    images = jax.random.uniform(jax.random.key(3), (130, 28, 28, 1))
    labels = np.arange(130) % 10
    state = lockstep.TrainState(model.init(jax.random.key(0), images[:1])["params"], None, (), 0)

    def batches():
        return [{"image": images[i : i + 100], "label": labels[i : i + 100]} for i in (0, 100)]

    whole = lockstep.make_evaluator(model)(state, batches())
    for microbatch in (25, 7):
        chunked = lockstep.make_evaluator(model, microbatch=microbatch)(state, batches())
        np.testing.assert_array_equal(chunked["logits"], whole["logits"])
        assert chunked["loss"] == whole["loss"] and chunked["accuracy"] == whole["accuracy"]
    assert whole["logits"].shape == (130, 10)


@pytest.mark.parametrize(("kwargs", "message"), [({"microbatch": -1}, "microbatch must be >= 0"), ({"microbatch": 4, "data_parallel": object()}, "cannot be combined")])
def test_evaluator_refuses_bad_microbatch(kwargs, message):
    with pytest.raises(ValueError, match=message):
        lockstep.make_evaluator(Tiny(), **kwargs)
