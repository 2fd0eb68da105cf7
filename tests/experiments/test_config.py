"""Tests for qatlib.experiments.config and every chapter's presets: selection order and parameter checking."""

import pydantic
import pytest
from pydantic import Field

from qatlib.experiments import config as presets


class Demo(presets.Config):
    steps: int = Field(10, ge=1)
    lr: float = Field(1e-3, gt=0)
    bits: tuple[int, ...] = (2,)
    fused: bool = True


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
    # A bad value names the field, the value and what is allowed; never a bare int() message.
    with pytest.raises(ValueError, match=r"lr = -1: Input should be greater than 0"):
        presets.resolve(REG, "quick", {"lr": -1})
    with pytest.raises(ValueError, match=r"steps = 'abc': Input should be a valid integer"):
        presets.resolve(REG, "quick", {"steps": "abc"})
    with pytest.raises(ValueError, match=r"fused = 'perhaps': Input should be a valid boolean"):
        presets.resolve(REG, "quick", {"fused": "perhaps"})
    with pytest.raises(pydantic.ValidationError):
        Demo(steps=0)  # every config is validated on construction, not only through resolve
    with pytest.raises(pydantic.ValidationError):
        Demo(stepz=3)  # unknown fields are refused


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

    registry = importlib.import_module(f"qatlib.experiments.{chapter}").PRESETS
    assert presets.resolve(registry, "quick", {"n_examples": 60000}).n_examples == 60000
    with pytest.raises(ValueError, match=r"n_examples = 60001: Input should be less than or equal to 60000"):
        presets.resolve(registry, "quick", {"n_examples": 60001})
    with pytest.raises(ValueError, match="n_examples = 0: Input should be greater than or equal to 1"):
        presets.resolve(registry, "quick", {"n_examples": 0})
