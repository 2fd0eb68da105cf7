"""The sweeps of the "When is the STE enough?" chapter: the nets each run trains, the theory's exact
cases on real MNIST steps, validation, and resuming."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from qatlib import data
from qatlib.experiments import beyond
from qatlib.experiments.beyond import BeyondConfig, Point, Spec
from qatlib.experiments.config import resolve
from qatlib.training import lockstep


@pytest.fixture(scope="module")
def mnist() -> data.MNIST:
    return data.load_mnist("idx")


def _train(spec: Spec, mnist: data.MNIST, steps: int = 6, batch: int = 32) -> dict[str, dict]:
    _, _, _, nets, states, _ = beyond._nets(spec, seed=0, steps=steps)
    result = lockstep.train_lockstep(
        nets, states, data.batch_stream(mnist.train_images, mnist.train_labels, batch, 0), steps, progress=False
    )
    return {name: state.params for name, state in result.states.items()}


def _max_difference(a: dict, b: dict) -> float:
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def test_diagnostic_without_momentum_is_the_q_hat_net(mnist):
    # v <- 0*v + g; w <- w - eta Q'(w) v is plain SGD on Q'(w) g: the Q-hat-net itself (Q' = 0 beyond
    # the range, where the diagnostic's clipped STE also passes nothing).
    params = _train(Spec("sgd", lr=0.05, momentum=0.0, diagnostic=True), mnist)
    assert _max_difference(params["sgd/q_net"], params["sgd/diagnostic"]) < 1e-6
    # ...and with momentum it is not: the lag the diagnostic removes is real on these steps.
    params = _train(Spec("sgd", lr=0.05, momentum=0.9, diagnostic=True), mnist)
    assert _max_difference(params["sgd/q_net"], params["sgd/diagnostic"]) > 1e-6


def test_sign_sgd_needs_no_weight_map(mnist):
    # sign(Q'(w) g) = sign(g) where Q' > 0: Q-hat-net and STE-net (same start, same lr) stay identical.
    params = _train(Spec("signsgd", lr=1e-3), mnist)
    assert _max_difference(params["signsgd/q_net"], params["signsgd/ste_net"]) == 0.0
    assert _max_difference(params["signsgd/q_net"], params["signsgd/q_net_lr_tweak"]) > 0.0


def test_alpha_on_slope_equals_alpha_on_lr_only_without_decay(mnist):
    plain = _train(Spec("sgd", lr=1e-2, slope_alpha=True), mnist)
    assert _max_difference(plain["sgd/ste_net"], plain["sgd/ste_net_slope"]) < 1e-6
    decayed = _train(Spec("sgd", lr=1e-2, weight_decay=1.0, slope_alpha=True), mnist)
    assert _max_difference(decayed["sgd/ste_net"], decayed["sgd/ste_net_slope"]) > 1e-5


def test_nets_and_pairs_follow_the_recipe_family():
    _, quantizers, _, nets, _, pairs = beyond._nets(Spec("lion", lr=1e-4), seed=0, steps=10)
    assert [n.name for n in nets] == ["lion/q_net", "lion/ste_net", "lion/q_net_lr_tweak"]
    assert not any(p.mapped for p in pairs)
    _, _, _, nets, _, pairs = beyond._nets(Spec("sgd", lr=1e-3, nesterov=True), seed=0, steps=10)
    assert [p.experiment for p in pairs] == ["baseline", "lr_tweak", "unadjusted"] and pairs[0].mapped
    _, quantizers, _, _, _, _ = beyond._nets(Spec("sgd", lr=1e-3, quantize_dense=False), seed=0, steps=10)
    assert quantizers["dense"]["kernel"] is None and quantizers["conv_0"]["kernel"] is not None


def test_points_cover_every_section_and_seed():
    config = BeyondConfig(seeds=(0, 1), lr_factors=(0.1, 1.0), momenta=(0.0, 0.9))
    points = beyond.points(config)
    assert {p.section for p in points} == set(beyond.SECTIONS)
    lr = [p for p in points if p.section == "learning_rate"]
    assert len(lr) == 3 * 2 * 2
    assert {p.spec.lr for p in lr if p.series == "momentum"} == {1e-4, 1e-3}
    momentum = [p for p in points if p.section == "momentum"]
    assert {round(p.spec.lr / (1 - p.spec.momentum), 12) for p in momentum} == {1e-2}  # fixed step size
    assert all(p.spec.diagnostic for p in momentum)
    eta = beyond.points(beyond.PRESETS["momentum_lr"])
    assert {p.series for p in eta} == {"eta"} and {p.spec.momentum for p in eta} == {0.9}
    assert sorted({p.x for p in eta}) == pytest.approx([1e-5, 3e-5, 1e-4, 3e-4, 1e-3])
    assert len({p.key(config) for p in points}) == len(points)
    bits = [p for p in points if p.section == "bits"]
    assert {(p.spec.bits, p.spec.sharpness) for p in bits} == {(1, 2.0), (2, 6.5), (4, 18.0)}  # per-bin shapes alike


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"momenta": "0.5,1.0"}, "momenta must lie in [0, 1)"),
        ({"microbatch": "7"}, "microbatch must divide batch_size"),
        ({"sections": "learning_rate,bogus"}, "sections"),
        ({"seeds": "1,1"}, "seeds must not repeat"),
        ({"lr_factors": "0,1"}, "lr_factors and diagnostic_lr_factors must be positive"),
        ({"bit_widths": "1,2"}, "bit_sharpnesses must give one positive sharpness per bit width"),
    ],
)
def test_bad_parameters_are_refused_before_any_work(override, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace(")", r"\)")):
        resolve(beyond.PRESETS, "quick", override)


def test_sweep_resumes_from_its_cache(mnist, tmp_path, monkeypatch):
    config = BeyondConfig(
        sections=("optimizers",), extra_optimizers=("signsgd", "lion"), seeds=(0,), steps=2, batch_size=16,
        microbatch=0, eval_examples=100, log_points=1, progress=False,
    )
    first = beyond.run_sweep(config, cache_dir=tmp_path, dataset=mnist)
    assert [run.series for run in first] == ["signsgd", "lion"]
    assert len(list(tmp_path.glob("*.json"))) == 2
    assert first[0].pairs["baseline"].E_bar == 0.0
    assert set(first[0].nets) == {"q_net", "ste_net", "q_net_lr_tweak"}

    def fail(*args, **kwargs):
        raise AssertionError("a cached run was trained again")

    monkeypatch.setattr(beyond, "run_point", fail)
    again = beyond.run_sweep(config, cache_dir=tmp_path, dataset=mnist)
    assert again == first


def test_point_keys_change_with_the_run():
    point = Point("optimizers", "lion", 1e-4, 0, Spec("lion", lr=1e-4))
    assert point.key(BeyondConfig(steps=10)) != point.key(BeyondConfig(steps=11))
    assert point.key(BeyondConfig(steps=10)) == point.key(BeyondConfig(steps=10, progress=False, lr_factors=(1.0,)))


def test_quick_covers_every_section_in_about_ten_runs():
    quick = beyond.PRESETS["quick"]
    points = beyond.points(quick)
    assert {p.section for p in points} == set(beyond.SECTIONS) and len(points) <= 12
    assert not quick.cache  # a build re-executes it rather than reading a cache
