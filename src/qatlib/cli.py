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

>>> parse_args(["run", "mnist", "--preset", "quick", "-p", "steps", "5"]).parameters
[['steps', '5']]
>>> sorted(CHAPTERS)
['beyond', 'intuition', 'mnist', 'resnet50', 'theorems']
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qatlib.experiments import config as presets_lib
from qatlib.report import artefacts as results

__all__ = ["Chapter", "CHAPTERS", "DETERMINISTIC_XLA_FLAG", "deterministic_xla_flags", "parse_args", "check_parameters", "run_chapter", "main"]

#: Set by ``python -m qatlib`` for its runs (the notebook's kernel inherits it): XLA's GPU kernels
#: without atomics-based reductions or nondeterministic convolution algorithms, so that a GPU run
#: reproduces itself (without it two paper_gpu runs on one H100 differed in 441 of 531 values). It
#: has no effect on a CPU. Each artefact's provenance records XLA_FLAGS.
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
    "resnet50": Chapter("book/resnet50.md", "qatlib.experiments.resnet50:PRESETS", "qatlib.report.measure:measure_resnet50"),
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
    return parser.parse_args(argv)


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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m qatlib``; returns the process exit status."""
    args = parse_args(argv)
    if args.command == "run":
        try:
            name, _ = check_parameters(args.chapter, args.preset, args.parameters)
        except (ValueError, FileNotFoundError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        start = time.perf_counter()
        if args.no_notebook:
            measurement = CHAPTERS[args.chapter].measurement()
            if measurement is None:
                print(f"error: chapter {args.chapter!r} has no results artefact to measure", file=sys.stderr)
                return 2
            config = presets_lib.resolve(CHAPTERS[args.chapter].registry(), name, dict(args.parameters))
            with results.writing_results():
                _, metrics_file = measurement(config, name)
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
    return 2  # pragma: no cover - argparse rejects other commands

