"""Presets: small, typed, frozen configurations that a chapter selects by name.

Every chapter keeps a registry ``{"quick": ..., "default": ..., "paper": ...}`` of frozen
dataclasses. Its papermill ``parameters`` cell holds only ``preset = None``; any other parameter
that papermill injects (``-p steps 200``) must be a field of the chosen config and overrides it.
A name that is not a field is an error *before any work starts*, so a typo is never silently
ignored.

The preset is chosen, in order, by the injected ``preset`` parameter, then by the environment
variable ``QATLIB_PRESET`` (the book build and CI set ``QATLIB_PRESET=quick``), then ``"default"``.

>>> import dataclasses
>>> @dataclasses.dataclass(frozen=True)
... class Demo:
...     steps: int = 10
...     lr: float = 1e-3
>>> registry = {"quick": Demo(steps=2), "default": Demo()}
>>> resolve(registry, "quick", {"lr": "0.5"})
Demo(steps=2, lr=0.5)
>>> resolve(registry, "quick", {"stepz": 3})
Traceback (most recent call last):
...
ValueError: unknown parameter(s) ['stepz'] for preset 'quick'; known: ['lr', 'steps']
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

PRESET_ENV = "QATLIB_PRESET"
DEFAULT_PRESET = "default"

T = TypeVar("T")

__all__ = ["PRESET_ENV", "choose_preset", "resolve", "resolve_from_namespace", "coerce"]


def choose_preset(preset: str | None) -> str:
    """The preset name: the explicit one, else ``$QATLIB_PRESET``, else ``"default"``."""
    if preset is not None:
        return preset
    return os.environ.get(PRESET_ENV) or DEFAULT_PRESET


def coerce(value: Any, annotation: Any) -> Any:
    """Convert a command-line string to a field's annotated type (int, float, bool, str, tuples).

    >>> coerce("3", int), coerce("1e-3", float), coerce("false", bool), coerce("1,2", tuple[int, ...])
    (3, 0.001, False, (1, 2))
    """
    if not isinstance(value, str):
        if annotation is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if typing.get_origin(annotation) is tuple and isinstance(value, list):
            return tuple(value)
        return value
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is bool:
        lowered = value.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ValueError(f"cannot read {value!r} as a boolean")
    if annotation in (int, float):
        return annotation(value)
    if origin is tuple:
        element = args[0] if args else str
        return tuple(coerce(part.strip(), element) for part in value.split(",") if part.strip())
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value.strip().lower() == "none" and type(None) in args:
            return None
        for candidate in args:
            if candidate is type(None):
                continue
            try:
                return coerce(value, candidate)
            except (TypeError, ValueError):
                continue
        raise ValueError(f"cannot read {value!r} as {annotation}")
    return value


def _field_types(config: Any) -> dict[str, Any]:
    hints = typing.get_type_hints(type(config))
    return {field.name: hints.get(field.name, Any) for field in dataclasses.fields(config)}


def resolve(registry: Mapping[str, T], preset: str | None, overrides: Mapping[str, Any] | None = None) -> T:
    """Select ``registry[preset]`` and apply ``overrides``, checking every name and type first."""
    name = choose_preset(preset)
    if name not in registry:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(registry)}")
    config = registry[name]
    overrides = dict(overrides or {})
    types = _field_types(config)
    unknown = sorted(set(overrides) - set(types))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for preset {name!r}; known: {sorted(types)}")
    converted = {key: coerce(value, types[key]) for key, value in overrides.items()}
    result = dataclasses.replace(config, **converted)
    validate = getattr(result, "validate", None)
    if callable(validate):
        validate()
    return result


def resolve_from_namespace(
    registry: Mapping[str, T],
    namespace: Mapping[str, Any],
    before: Iterable[str],
) -> T:
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
