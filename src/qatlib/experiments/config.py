"""Configs and presets: small, typed, frozen configurations that a chapter selects by name.

Every chapter's module in :mod:`qatlib.experiments` defines a config class (a frozen pydantic
model deriving from :class:`Config`, so every field is type-checked and range-checked on
construction) and a registry ``PRESETS = {"quick": ..., "default": ..., "paper": ...}``. Its
notebook's papermill ``parameters`` cell holds only ``preset = None``; any other parameter that
papermill or the CLI injects (``-p steps 200``) must be a field of the chosen config and
overrides it. A name that is not a field, or a value the field does not allow, is an error
*before any work starts* that names the field, the value and what is allowed.

The preset is chosen, in order, by the injected ``preset`` parameter, then by the environment
variable ``QATLIB_PRESET`` (the book build and CI set ``QATLIB_PRESET=quick``), then ``"default"``.

>>> from pydantic import Field
>>> class Demo(Config):
...     steps: int = Field(10, ge=1)
...     lr: float = Field(1e-3, gt=0)
...     optimizers: tuple[str, ...] = ("sgd",)
>>> registry = {"quick": Demo(steps=2), "default": Demo()}
>>> resolve(registry, "quick", {"lr": "0.5", "optimizers": "sgd,adam"})
Demo(steps=2, lr=0.5, optimizers=('sgd', 'adam'))
>>> resolve(registry, "quick", {"stepz": 3})
Traceback (most recent call last):
...
ValueError: unknown parameter(s) ['stepz'] for preset 'quick'; known: ['lr', 'optimizers', 'steps']
>>> resolve(registry, "quick", {"steps": "abc"})
Traceback (most recent call last):
...
ValueError: bad parameter for preset 'quick': steps = 'abc': Input should be a valid integer, unable to parse string as an integer
"""

from __future__ import annotations

import os
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import pydantic

from qatlib import estimators

PRESET_ENV = "QATLIB_PRESET"
DEFAULT_PRESET = "default"

__all__ = ["PRESET_ENV", "Config", "EstimatorName", "check_microbatch", "choose_preset", "resolve", "resolve_from_namespace"]

C = TypeVar("C", bound="Config")


class Config(pydantic.BaseModel):
    """Base of every chapter config: frozen, no unknown fields, validated on construction.

    Command-line and papermill strings are read by pydantic's lax mode (``"7"`` -> 7,
    ``"1e-3"`` -> 0.001, ``"false"`` -> False); a tuple field also reads ``"a,b"`` as ``("a", "b")``.
    """

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid", validate_default=True)

    @pydantic.field_validator("*", mode="before")
    @classmethod
    def _split_comma_separated(cls, value: Any, info: pydantic.ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if isinstance(value, str) and field is not None and typing.get_origin(field.annotation) is tuple:
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    def __repr__(self) -> str:  # the dataclass-like repr the chapters print
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in type(self).model_fields)
        return f"{type(self).__name__}({fields})"

    __str__ = __repr__

    def replace(self: C, **changes: Any) -> C:
        """A validated copy with ``changes`` applied (``dataclasses.replace`` for configs)."""
        return type(self).model_validate({**self.model_dump(), **changes})


def _registered_estimator(value: str) -> str:
    if value.lower() not in estimators.names():
        raise ValueError(f"estimator must be one of {estimators.names()}, got {value!r}")
    return value.lower()


#: A config field naming a registered estimator (:func:`qatlib.estimators.get`), case-insensitive.
EstimatorName = typing.Annotated[str, pydantic.AfterValidator(_registered_estimator)]


def check_microbatch(microbatch: int, batch_size: int) -> None:
    """A config's gradient chunks must split its batch evenly (0 = the whole batch at once).

    >>> check_microbatch(25, 600), check_microbatch(0, 7)
    (None, None)
    >>> check_microbatch(7, 600)
    Traceback (most recent call last):
    ...
    ValueError: microbatch must divide batch_size (or be 0 for the whole batch): 7 does not divide 600
    """
    if microbatch and batch_size % microbatch:
        raise ValueError(
            f"microbatch must divide batch_size (or be 0 for the whole batch): {microbatch} does not divide {batch_size}"
        )


def choose_preset(preset: str | None) -> str:
    """The preset name: the explicit one, else ``$QATLIB_PRESET``, else ``"default"``."""
    if preset is not None:
        return preset
    return os.environ.get(PRESET_ENV) or DEFAULT_PRESET


def _describe(error: pydantic.ValidationError, preset: str) -> str:
    problems = []
    for item in error.errors():
        name = ".".join(str(part) for part in item["loc"]) or "config"
        problems.append(f"{name} = {item.get('input')!r}: {item['msg']}" if item["loc"] else item["msg"])
    return f"bad parameter for preset {preset!r}: " + "; ".join(problems)


def resolve(registry: Mapping[str, C], preset: str | None, overrides: Mapping[str, Any] | None = None) -> C:
    """Select ``registry[preset]`` and apply ``overrides``, checking every name and value first."""
    name = choose_preset(preset)
    if name not in registry:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(registry)}")
    config = registry[name]
    overrides = dict(overrides or {})
    fields = type(config).model_fields
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for preset {name!r}; known: {sorted(fields)}")
    try:
        return type(config).model_validate({**config.model_dump(), **overrides})
    except pydantic.ValidationError as error:
        raise ValueError(_describe(error, name)) from None


def resolve_from_namespace(registry: Mapping[str, C], namespace: Mapping[str, Any], before: Iterable[str]) -> C:
    """Resolve a notebook's config from the names papermill injected after the parameters cell.

    ``before`` is the set of global names that existed before the parameters cell ran; every
    name added since (other than ``preset`` and private names) is treated as a config override.
    """
    before = set(before)
    added = {
        key: value
        for key, value in namespace.items()
        if key not in before and not key.startswith("_") and key != "preset"
    }
    return resolve(registry, namespace.get("preset"), added)
