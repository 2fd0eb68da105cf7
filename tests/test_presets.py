"""Tests for qatlib.presets: selection order and parameter checking."""

import dataclasses

import pytest

from qatlib import presets


@dataclasses.dataclass(frozen=True)
class Demo:
    steps: int = 10
    lr: float = 1e-3
    bits: tuple[int, ...] = (2,)
    fused: bool = True

    def validate(self):
        if self.lr <= 0:
            raise ValueError("lr must be > 0")


REG = {"quick": Demo(steps=2), "default": Demo()}


def test_choice_order(monkeypatch):
    monkeypatch.delenv(presets.PRESET_ENV, raising=False)
    assert presets.resolve(REG, None).steps == 10
    monkeypatch.setenv(presets.PRESET_ENV, "quick")
    assert presets.resolve(REG, None).steps == 2
    assert presets.resolve(REG, "default").steps == 10


def test_coercion_and_validation():
    cfg = presets.resolve(REG, "quick", {"steps": "7", "bits": "1,4", "fused": "no"})
    assert cfg == Demo(steps=7, bits=(1, 4), fused=False)
    with pytest.raises(ValueError, match="lr must be > 0"):
        presets.resolve(REG, "quick", {"lr": -1})


def test_unknown_names_fail_before_work():
    with pytest.raises(ValueError, match="unknown preset 'fast'"):
        presets.resolve(REG, "fast")
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['stepz'\]"):
        presets.resolve(REG, "quick", {"stepz": 1})


def test_resolve_from_namespace_treats_injected_names_as_overrides():
    before = {"np", "_before"}
    namespace = {"np": None, "_before": before, "preset": "quick", "lr": 0.5}
    assert presets.resolve_from_namespace(REG, namespace, before) == Demo(steps=2, lr=0.5)
    namespace["typo"] = 3
    with pytest.raises(ValueError, match="typo"):
        presets.resolve_from_namespace(REG, namespace, before)


@pytest.mark.parametrize("chapter", ["intuition", "theorems"])
def test_simulation_presets_allow_the_whole_mnist_training_set(chapter):
    import importlib

    registry = importlib.import_module(f"qatlib.presets.{chapter}").PRESETS
    assert presets.resolve(registry, "quick", {"n_examples": 60000}).n_examples == 60000
    with pytest.raises(ValueError, match=r"n_examples must lie in \[1, 60000\].*got 60001"):
        presets.resolve(registry, "quick", {"n_examples": 60001})
    with pytest.raises(ValueError, match="n_examples must be >= 1, got 0"):
        presets.resolve(registry, "quick", {"n_examples": 0})
