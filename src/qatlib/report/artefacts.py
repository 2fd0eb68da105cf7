"""Results artefacts: ``results/<chapter>/<preset>/metrics.json`` written atomically, with provenance.

A long run (the authors' MNIST schedule, ResNet50) is stored as JSON next to its provenance:
the data it used, the number of steps, the wall time, the device, the package versions, the git
commit and the full config. The chapters render these files; ``python -m qatlib run <chapter>
--preset <name>`` regenerates them.

>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> path = write_json(root / "demo" / "metrics.json", {"E_bar": 0.005})
>>> read_json(path)
{'E_bar': 0.005}
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import subprocess
from importlib import metadata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from qatlib.experiments.records import RunRecord, SweepRecord
from qatlib.files import read_json, to_jsonable, write_json

__all__ = [
    "percent",
    "duration",
    "RESULTS_ENV",
    "results_root",
    "metrics_path",
    "runs_root",
    "writing_results",
    "output_path",
    "checkpoint_dir",
    "to_jsonable",
    "write_json",
    "read_json",
    "run_records",
    "sweep_records",
    "RUN_DEPENDENT_KEYS",
    "differing_values",
    "cpu_isa",
    "isa_tag",
    "device_info",
    "package_versions",
    "provenance",
]

RESULTS_ENV = "QATLIB_RESULTS_DIR"
WRITE_ENV = "QATLIB_WRITE_RESULTS"  # set to 1 by `python -m qatlib run`: only that command writes results/
COMMIT_ENV = "QATLIB_GIT_COMMIT"  # the commit of a checkout without .git (e.g. a copy on a GPU machine)
VERSIONED_PACKAGES = ("qatlib", "jax", "jaxlib", "flax", "optax", "numpy", "orbax-checkpoint", "tensorflow-datasets")


def _repo_root(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "src" / "qatlib").is_dir():
            return folder
    return None


def results_root() -> Path:
    """``$QATLIB_RESULTS_DIR``, else ``results/`` of the qatlib checkout around the working directory
    (or around this file), else ``./results``."""
    if os.environ.get(RESULTS_ENV):
        return Path(os.environ[RESULTS_ENV]).expanduser()
    root = _repo_root(Path.cwd().resolve()) or _repo_root(Path(__file__).resolve().parent)
    return (root / "results") if root is not None else Path("results").resolve()


def metrics_path(chapter: str, preset: str, root: str | os.PathLike[str] | None = None) -> Path:
    """``<root>/<chapter>/<preset>/metrics.json``."""
    for name, value in (("chapter", chapter), ("preset", preset)):
        if not value or "/" in value or value.startswith("."):
            raise ValueError(f"bad {name} name {value!r}")
    return Path(root if root is not None else results_root()) / chapter / preset / "metrics.json"


def runs_root() -> Path:
    """``runs/`` beside ``results/``: untracked output of book builds and checkpoints."""
    return results_root().parent / "runs"


@contextlib.contextmanager
def writing_results() -> Iterator[None]:
    """Inside this block (and in kernels started in it) chapters write ``results/``: what ``python -m
    qatlib run`` does. The previous setting of ``$QATLIB_WRITE_RESULTS`` is restored afterwards, so a
    caller in the same process (a test, a notebook) goes on writing ``runs/``."""
    previous = os.environ.get(WRITE_ENV)
    os.environ[WRITE_ENV] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(WRITE_ENV, None)
        else:
            os.environ[WRITE_ENV] = previous


def output_path(chapter: str, preset: str) -> Path:
    """Where a chapter writes its metrics: ``results/`` under ``python -m qatlib run`` (which sets
    ``$QATLIB_WRITE_RESULTS=1``), else the untracked ``runs/<chapter>/<preset>/metrics.json`` -- so
    building the book never rewrites a committed artefact."""
    if os.environ.get(WRITE_ENV) == "1":
        return metrics_path(chapter, preset)
    return metrics_path(chapter, preset, runs_root())


def checkpoint_dir(chapter: str, preset: str, config: Any) -> Path:
    """``runs/checkpoints/<chapter>/<preset>/<key>``: the key hashes the config (minus ``progress``)
    and the code's commit, so a rerun resumes only a checkpoint of the same run."""
    import hashlib

    described = to_jsonable(config)
    if isinstance(described, dict):
        described = {k: v for k, v in described.items() if k != "progress"}
    commit = (_git_commit() or "unknown").removesuffix("+dirty")
    key = hashlib.sha256(json.dumps([described, commit], sort_keys=True).encode()).hexdigest()[:16]
    return metrics_path(chapter, preset, runs_root() / "checkpoints").parent / key


#: Keys of a results artefact that describe the run rather than its result (wall times, where it
#: resumed, provenance): two runs of one config that agree in everything else reproduce each other.
RUN_DEPENDENT_KEYS = frozenset({"provenance", "seconds", "train_seconds", "first_step_seconds", "resumed_from_step"})


def differing_values(first: Any, second: Any) -> tuple[list[str], int]:
    """The paths (``/sgd/baseline/E_bar``, ``/E_t/steps[3]``) of the values in which two artefacts
    differ, and how many values were compared; :data:`RUN_DEPENDENT_KEYS` are skipped at every depth.

    >>> differing_values({"a": [1, 2], "train_seconds": 5}, {"a": [1, 3], "train_seconds": 6})
    (['/a[1]'], 2)
    """

    def flat(tree: Any, path: str) -> dict[str, Any]:
        if isinstance(tree, dict):
            return {k: v for key, value in tree.items() if key not in RUN_DEPENDENT_KEYS for k, v in flat(value, f"{path}/{key}").items()}
        if isinstance(tree, list):
            return {k: v for i, value in enumerate(tree) for k, v in flat(value, f"{path}[{i}]").items()}
        return {path: tree}

    a, b = flat(first, ""), flat(second, "")
    paths = sorted(set(a) | set(b))
    return [path for path in paths if path not in a or path not in b or a[path] != b[path]], len(paths)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


#: Instruction-set levels of x86-64 CPUs, newest first, by the /proc/cpuinfo flag that marks each.
ISA_LEVELS = (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"), ("sse4_2", "SSE4.2"))


def cpu_isa(flags: str | None = None) -> str:
    """The CPU's vector instruction-set level (``"AVX-512"``, ``"AVX2"``, ...) from its cpuinfo flags.

    >>> cpu_isa("fpu sse4_2 avx avx2 fma"), cpu_isa("sse4_2 avx2 avx512f avx512bw"), cpu_isa("neon")
    ('AVX2', 'AVX-512', 'unknown')
    """
    if flags is None:
        try:
            flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
        except (OSError, StopIteration):
            flags = ""
    present = set(flags.replace(":", " ").split())
    return next((name for flag, name in ISA_LEVELS if flag in present), "unknown")


def isa_tag(isa: str | None = None) -> str:
    """``isa`` (by default this CPU's :func:`cpu_isa`) as the tag in a benchmark result's file name:
    lower case, without ``-`` and ``.``.

    >>> isa_tag("AVX-512"), isa_tag("AVX2"), isa_tag("SSE4.2"), isa_tag("unknown")
    ('avx512', 'avx2', 'sse42', 'unknown')
    """
    return (cpu_isa() if isa is None else isa).lower().replace("-", "").replace(".", "")


def device_info() -> dict[str, Any]:
    """The JAX backend and devices, the CPU model, its instruction-set level and core count."""
    import jax

    devices = jax.devices()
    return {
        "backend": jax.default_backend(),
        "devices": [getattr(device, "device_kind", str(device)) for device in devices],
        "cpu": _cpu_model(),
        "isa": cpu_isa(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
    }


def package_versions(packages: tuple[str, ...] = VERSIONED_PACKAGES) -> dict[str, str | None]:
    """Installed versions of the packages that shape the numbers (``None`` where absent)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _git_commit() -> str | None:
    if os.environ.get(COMMIT_ENV):
        return os.environ[COMMIT_ENV]
    root = _repo_root(Path(__file__).resolve().parent)
    if root is None:
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        )
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", "src"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def provenance(
    *, data: Any, steps: int, seconds: float, config: Any, preset: str | None = None, **extra: Any
) -> dict[str, Any]:
    """Provenance of a run: data, steps, seconds, device, versions, XLA flags, git commit, config, UTC time."""
    return {
        "data": data,
        "steps": int(steps),
        "seconds": float(seconds),
        "preset": preset,
        "device": device_info(),
        "versions": package_versions(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),  # e.g. GPU determinism (scripts/gpu_artefacts.sh)
        "git_commit": _git_commit(),
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "config": to_jsonable(config),
        **extra,
    }


def percent(fraction: float, decimals: int = 3) -> str:
    """A fraction as the chapters print it: ``percent(0.00515) == '0.515%'``.

    >>> percent(0.9831, 2)
    '98.31%'
    """
    return f"{100 * fraction:.{decimals}f}%"


def duration(seconds: float) -> str:
    """A wall time in words: seconds below 90 s, minutes above.

    >>> duration(42.4), duration(3421)
    ('42 seconds', '57.0 minutes')
    """
    return f"{seconds / 60:.1f} minutes" if seconds >= 90 else f"{seconds:.0f} seconds"


def run_records(artefact: dict[str, Any]) -> list[RunRecord]:
    """The typed records of a results artefact: its ``runs``, or one record per optimizer of a
    single-run artefact of the older shape (``{"sgd": {pair: ...}, "accuracy": {"sgd": {role: ...}}}``).
    A field the record types do not know is refused (:meth:`RunRecord.from_json`)."""
    if "runs" in artefact:
        return [RunRecord.from_json(run) for run in artefact["runs"]]
    provenance = artefact.get("provenance", {})
    config = provenance.get("config", {})
    seed = config.get("init_seed", config.get("seed", 0))
    return [
        RunRecord.from_json({
            "seed": seed,
            "spec": {"optimizer": optimizer, "steps": provenance.get("steps")},
            "pairs": artefact[optimizer],
            "nets": artefact.get("accuracy", {}).get(optimizer, {}),
        })
        for optimizer in ("sgd", "adam")
        if optimizer in artefact
    ]


def sweep_records(artefact: dict[str, Any]) -> list[SweepRecord]:
    """The typed runs of a Beyond sweep artefact (``{"runs": [...], "provenance": ...}``)."""
    return [SweepRecord.from_json(run) for run in artefact["runs"]]
