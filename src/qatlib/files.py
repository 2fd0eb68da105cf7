"""JSON files written atomically: the one way results, caches and artefacts reach the disk.

Experiments cache finished runs with these, and :mod:`qatlib.report.artefacts` writes the results
artefacts with them (it re-exports all three).

>>> import tempfile, pathlib
>>> path = write_json(pathlib.Path(tempfile.mkdtemp()) / "a" / "b.json", {"x": (1, 2.5), "nan": float("nan")})
>>> read_json(path)
{'x': [1, 2.5], 'nan': None}
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["to_jsonable", "write_json", "read_json"]


def to_jsonable(value: Any) -> Any:
    """Plain JSON types from numpy/JAX scalars and arrays, dataclasses, tuples and paths (NaN -> None)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    if hasattr(value, "model_dump") and not isinstance(value, type):  # a pydantic config
        return to_jsonable({name: getattr(value, name) for name in type(value).model_fields})
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if hasattr(value, "__array__"):
        return to_jsonable(np.asarray(value).tolist())
    if value is None or isinstance(value, str):
        return value
    return repr(value)


def write_json(path: str | os.PathLike[str], payload: Any) -> Path:
    """Write ``payload`` as JSON atomically: a temporary file in the same folder, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(to_jsonable(payload), indent=2, sort_keys=False, allow_nan=False) + "\n"
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return path


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON artefact."""
    return json.loads(Path(path).read_text())
