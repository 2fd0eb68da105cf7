"""Command line: run a chapter's notebook at a preset, producing an executed notebook and its results.

    python -m qatlib run mnist --preset quick|default|paper|sgd_no_momentum [-p NAME VALUE ...]

The chapter's MyST Markdown source ``book/<chapter>.md`` is read as a notebook by jupytext and
executed with papermill (its ``parameters`` cell receives ``preset`` and every ``-p``) into
``runs/<chapter>/<preset>/<chapter>.ipynb`` (or ``--output``); the notebook
itself writes ``results/<chapter>/<preset>/metrics.json`` (only this command writes ``results/``:
a book build writes ``runs/``). ``--no-notebook`` runs the chapter's measurement alone (no
papermill, no Jupyter kernel: e.g. on a headless GPU machine) and writes the same artefact. Every ``-p`` name must be a field of the
chapter's preset config and its value must convert to the field's type: both are checked *before*
anything runs, so a typo fails at once.

Chapters are a registry: adding one is one line in :data:`CHAPTERS`.

Several processes (the ResNet50 chapter, one process per host of a TPU pod slice or GPU node):
``--distributed`` joins the run through ``jax.distributed.initialize``, which finds the coordinator
by itself on a Cloud TPU VM and under SLURM or Open MPI; elsewhere ``--coordinator-address``,
``--num-processes`` and ``--process-id`` (or ``$JAX_COORDINATOR_ADDRESS``, ``$JAX_NUM_PROCESSES``,
``$JAX_PROCESS_ID``) say who is who. Every process runs the measurement; only process 0 writes
``results/`` and the notebook. Without any of these a run is one process, as it always was.
A second run of a config whose checkpoint folder is in use refuses at once (exit status 3).

>>> parse_args(["run", "mnist", "--preset", "quick", "-p", "steps", "5"]).parameters
[['steps', '5']]
>>> sorted(CHAPTERS)
['beyond', 'intuition', 'mnist', 'resnet50', 'theorems']
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qatlib.experiments import config as presets_lib
from qatlib.report import artefacts as results

__all__ = ["Chapter", "CHAPTERS", "DETERMINISTIC_XLA_FLAG", "PROCESS_ENV", "deterministic_xla_flags", "parse_args", "process_arguments", "check_parameters", "run_chapter", "main"]

#: Set by ``python -m qatlib`` for its runs (the notebook's kernel inherits it): XLA's GPU kernels
#: without atomics-based reductions or nondeterministic convolution algorithms, so that a GPU run
#: reproduces itself (the README's numerics section gives the measurement). It has no effect on a
#: CPU. Each artefact's provenance records XLA_FLAGS.
DETERMINISTIC_XLA_FLAG = "--xla_gpu_deterministic_ops=true"


def deterministic_xla_flags(flags: str) -> str:
    """``XLA_FLAGS`` with :data:`DETERMINISTIC_XLA_FLAG` added, unless ``flags`` already set it
    either way (``--xla_gpu_deterministic_ops=false`` is a user's choice and stays).

    >>> deterministic_xla_flags("")
    '--xla_gpu_deterministic_ops=true'
    >>> deterministic_xla_flags("--xla_dump_to=/tmp/x")
    '--xla_gpu_deterministic_ops=true --xla_dump_to=/tmp/x'
    >>> deterministic_xla_flags("--xla_gpu_deterministic_ops=false")
    '--xla_gpu_deterministic_ops=false'
    """
    if "--xla_gpu_deterministic_ops" in flags:
        return flags
    return f"{DETERMINISTIC_XLA_FLAG} {flags}".strip()


@dataclasses.dataclass(frozen=True)
class Chapter:
    """A chapter's notebook source (a MyST Markdown notebook, path relative to the repository root)
    and its preset registry."""

    notebook: str
    presets: str  # "module:attribute" of the {name: config} registry
    measure: str = ""  # "module:function" (config, preset) -> (result, artefact path), if it has artefacts
    multi_process: bool = False  # its measurement runs over several processes (jax.distributed)

    def registry(self) -> dict[str, Any]:
        return _resolve(self.presets)

    def measurement(self) -> Any:
        return _resolve(self.measure) if self.measure else None


def _resolve(reference: str) -> Any:
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


CHAPTERS: dict[str, Chapter] = {
    "intuition": Chapter("book/intuition.md", "qatlib.experiments.intuition:PRESETS"),
    "theorems": Chapter("book/theorems.md", "qatlib.experiments.theorems:PRESETS"),
    "mnist": Chapter("book/mnist.md", "qatlib.experiments.mnist:PRESETS", "qatlib.report.measure:measure_mnist"),
    "resnet50": Chapter("book/resnet50.md", "qatlib.experiments.resnet50:PRESETS", "qatlib.report.measure:measure_resnet50", multi_process=True),
    "beyond": Chapter("book/beyond.md", "qatlib.experiments.beyond:PRESETS", "qatlib.report.measure:measure_beyond"),
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse ``run <chapter> --preset NAME [-p NAME VALUE ...] [--output PATH]``."""
    parser = argparse.ArgumentParser(prog="python -m qatlib", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="execute a chapter notebook at a preset")
    run.add_argument("chapter", help=f"one of {sorted(CHAPTERS)}")
    run.add_argument("--preset", default=None, help="preset name (default: $QATLIB_PRESET or 'default')")
    run.add_argument(
        "-p", "--parameter", dest="parameters", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
        help="override one field of the preset's config (repeatable)",
    )
    run.add_argument("--output", default=None, help="executed notebook path (default runs/<chapter>/<preset>/)")
    run.add_argument("--kernel", default=None, help="Jupyter kernel name (default: the notebook's)")
    run.add_argument("--no-progress", action="store_true", help="do not show papermill's cell progress bar")
    run.add_argument(
        "--no-notebook", action="store_true",
        help="run the chapter's measurement without papermill and write its results artefact only",
    )
    processes = run.add_argument_group("several processes (jax.distributed; the resnet50 chapter)")
    processes.add_argument(
        "--distributed", action="store_true",
        help="join a multi-process run; JAX finds the coordinator on a Cloud TPU VM, under SLURM or Open MPI",
    )
    processes.add_argument("--coordinator-address", default=None, help="host:port of process 0 (default: $JAX_COORDINATOR_ADDRESS)")
    processes.add_argument("--num-processes", type=int, default=None, help="how many processes (default: $JAX_NUM_PROCESSES)")
    processes.add_argument("--process-id", type=int, default=None, help="this process's index, 0..N-1 (default: $JAX_PROCESS_ID)")
    processes.add_argument(
        "--heartbeat-timeout", type=int, default=100, metavar="SECONDS",
        help="a process silent this long counts as dead: every other one stops with an error naming it (default 100)",
    )
    return parser.parse_args(argv)


#: Environment variables read when the flags are not given (the first is JAX's own).
PROCESS_ENV = {"coordinator_address": "JAX_COORDINATOR_ADDRESS", "num_processes": "JAX_NUM_PROCESSES", "process_id": "JAX_PROCESS_ID"}


def process_arguments(args: argparse.Namespace, environ: Any = None) -> dict[str, Any] | None:
    """The ``jax.distributed`` arguments of a multi-process run (None: one process, as always).

    Flags win over the environment; ``--distributed`` alone leaves all three to JAX's cluster
    detection. ValueError, naming the parameter, for an unusable value or an incomplete set.

    >>> process_arguments(parse_args(["run", "resnet50"]), environ={}) is None
    True
    >>> process_arguments(parse_args(["run", "resnet50", "--process-id", "1"]), environ={"JAX_NUM_PROCESSES": "2",
    ...     "JAX_COORDINATOR_ADDRESS": "localhost:1234"})
    {'coordinator_address': 'localhost:1234', 'num_processes': 2, 'process_id': 1}
    """
    from qatlib.training.parallel import check_process_arguments

    environ = os.environ if environ is None else environ
    given: dict[str, Any] = {}
    for name, variable in PROCESS_ENV.items():
        value = getattr(args, name)
        if value is None and environ.get(variable):
            value = environ[variable]
            if name != "coordinator_address":
                try:
                    value = int(value)
                except ValueError:
                    raise ValueError(f"${variable} must be an int, got {value!r}") from None
        given[name] = value
    if not args.distributed and all(value is None for value in given.values()):
        return None
    check_process_arguments(**given)
    if isinstance(args.heartbeat_timeout, bool) or args.heartbeat_timeout < 1:
        raise ValueError(f"--heartbeat-timeout must be an int >= 1 (seconds), got {args.heartbeat_timeout}")
    return given


def repository_root() -> Path:
    """The checkout holding ``pyproject.toml`` and ``book/`` (from the working directory, else this file)."""
    for start in (Path.cwd().resolve(), Path(__file__).resolve().parent):
        for folder in (start, *start.parents):
            if (folder / "pyproject.toml").is_file() and (folder / "book").is_dir():
                return folder
    raise FileNotFoundError("cannot find the qatlib repository (pyproject.toml and book/) above the working directory")


def check_parameters(
    chapter: str, preset: str | None, parameters: Sequence[Sequence[str]]
) -> tuple[str, dict[str, Any]]:
    """Resolve the chapter's config now (unknown chapter, preset, name or bad value -> ValueError;
    data the config needs but cannot find -> FileNotFoundError, via its optional ``preflight()``).

    Returns the preset name and the overrides converted to their fields' types.
    """
    if chapter not in CHAPTERS:
        raise ValueError(f"unknown chapter {chapter!r}; choose one of {sorted(CHAPTERS)}")
    overrides: dict[str, Any] = {}
    for name, value in parameters:
        if name == "preset":
            raise ValueError("give the preset with --preset, not -p preset")
        if name in overrides:
            raise ValueError(f"parameter {name!r} given twice")
        overrides[name] = value
    name = presets_lib.choose_preset(preset)
    config = presets_lib.resolve(CHAPTERS[chapter].registry(), name, overrides)
    preflight = getattr(config, "preflight", None)
    if callable(preflight):
        preflight()  # e.g. the chapter's data must be on disk
    converted = {key: results.to_jsonable(getattr(config, key)) for key in overrides}
    return name, converted


def run_chapter(
    chapter: str,
    preset: str | None,
    parameters: Sequence[Sequence[str]] = (),
    *,
    output: str | None = None,
    kernel: str | None = None,
    progress: bool = True,
) -> Path:
    """Check the parameters, then execute the chapter notebook with papermill; returns the output path.

    The source is read with jupytext (MyST Markdown or ``.ipynb``): the book's chapters exist only as
    ``book/<chapter>.md``, and the executed copy is an ``.ipynb`` under ``runs/``.
    """
    name, converted = check_parameters(chapter, preset, parameters)
    root = repository_root()
    notebook = root / CHAPTERS[chapter].notebook
    if not notebook.is_file():
        raise FileNotFoundError(f"chapter notebook {notebook} is missing")
    target = Path(output) if output else root / "runs" / chapter / name / f"{notebook.stem}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    import jupytext
    import papermill

    with results.writing_results():  # the kernel inherits it: this command writes results/
        papermill.execute_notebook(
            jupytext.read(notebook),
            str(target),
            parameters={"preset": name, **converted},
            cwd=str(notebook.parent),
            kernel_name=kernel,
            progress_bar=progress,
        )
    return target


def _check_processes(args: argparse.Namespace) -> dict[str, Any] | None:
    """:func:`process_arguments`, and ValueError if the chapter does not run over several processes."""
    processes = process_arguments(args)
    if processes is not None and not CHAPTERS[args.chapter].multi_process:
        chapters = sorted(name for name, chapter in CHAPTERS.items() if chapter.multi_process)
        raise ValueError(f"chapter {args.chapter!r} runs in one process; several processes run only {chapters}")
    return processes


def _measure(args: argparse.Namespace, name: str) -> Path:
    """Run the chapter's measurement in this process and write its artefact (process 0 only)."""
    config = presets_lib.resolve(CHAPTERS[args.chapter].registry(), name, dict(args.parameters))
    with results.writing_results():
        _, metrics_file = CHAPTERS[args.chapter].measurement()(config, name)
    return metrics_file


def _run_processes(args: argparse.Namespace, name: str, processes: dict[str, Any]) -> int:
    """One process of a multi-process run: measure with the others; then process 0 alone renders
    the notebook from the artefact just written (no second training in its kernel)."""
    import jax

    from qatlib.report.measure import MEASURED_ENV
    from qatlib.training.parallel import start_processes

    start = time.perf_counter()
    group = start_processes(**processes, heartbeat_timeout_seconds=args.heartbeat_timeout)
    print(
        f"process {group.process_index} of {group.process_count} ({group.devices_per_process} devices each, "
        f"coordinator: {group.coordinator}) joined in {time.perf_counter() - start:.1f} s", flush=True,
    )
    metrics_file = _measure(args, name)
    jax.distributed.shutdown()  # every process waits here for the others: none leaves the run early
    if group.process_index != 0:
        return 0
    print(f"metrics: {metrics_file} ({time.perf_counter() - start:.0f} s)")
    if not args.no_notebook:
        os.environ[MEASURED_ENV] = str(metrics_file)
        target = run_chapter(args.chapter, name, args.parameters, output=args.output, kernel=args.kernel, progress=not args.no_progress)
        print(f"executed notebook: {target}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m qatlib``; returns the process exit status (2: bad arguments,
    3: the run's checkpoint folder is in use by another run)."""
    from qatlib.training.checkpoint import CheckpointInUse

    args = parse_args(argv)
    if args.command == "run":
        try:
            name, _ = check_parameters(args.chapter, args.preset, args.parameters)
            processes = _check_processes(args)
        except (ValueError, FileNotFoundError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        if (args.no_notebook or processes is not None) and CHAPTERS[args.chapter].measurement() is None:
            print(f"error: chapter {args.chapter!r} has no results artefact to measure", file=sys.stderr)
            return 2
        try:
            return _run(args, name, processes)
        except CheckpointInUse as error:
            print(f"error: {error}", file=sys.stderr)
            return 3
    return 2  # pragma: no cover - argparse rejects other commands


def _run(args: argparse.Namespace, name: str, processes: dict[str, Any] | None) -> int:
    """Measure (``--no-notebook``) or execute the notebook, in this process or over several."""
    if processes is not None:
        return _run_processes(args, name, processes)
    start = time.perf_counter()
    if args.no_notebook:
        metrics_file = _measure(args, name)
        print(f"metrics: {metrics_file} ({time.perf_counter() - start:.0f} s)")
        return 0
    target = run_chapter(
        args.chapter, name, args.parameters, output=args.output, kernel=args.kernel, progress=not args.no_progress
    )
    print(f"executed notebook: {target} ({time.perf_counter() - start:.0f} s)")
    metrics_file = results.metrics_path(args.chapter, name)
    if metrics_file.is_file():
        print(f"metrics: {metrics_file}")
    return 0
