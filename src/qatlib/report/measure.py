"""Run a chapter's measurement and write its results artefact: the one place results are written.

``python -m qatlib run CHAPTER`` and the chapters call these; each returns the in-memory result and
the path it wrote (:func:`qatlib.report.artefacts.output_path`: ``results/`` under the CLI, the
untracked ``runs/`` otherwise, so a book build never rewrites a committed artefact).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from qatlib import data
from qatlib.experiments.beyond import BeyondConfig, run_sweep
from qatlib.experiments.mnist import MNISTConfig, MNISTRun, run_mnist, run_seeds
from qatlib.experiments.records import RunRecord
from qatlib.experiments.resnet50 import ResNet50Config, ResNet50Result, run_experiment
from qatlib.report import artefacts
from qatlib.training.checkpoint import run_lock

__all__ = ["mnist_artefact", "measure_mnist", "check_mnist", "unit_cache", "resnet50_artefact", "measure_resnet50", "measure_beyond"]


def _mnist_data(dataset: data.MNIST) -> dict[str, Any]:
    return {"source": dataset.source, "note": dataset.note, "train": len(dataset.train_labels), "val": len(dataset.val_labels)}


def mnist_artefact(records: list[RunRecord], config: MNISTConfig, preset: str, dataset: data.MNIST, seconds: float) -> dict[str, Any]:
    """The results JSON of an MNIST preset: its records (one per seed x optimizer x length) plus
    provenance (data, steps, seconds, device, versions, config)."""
    return {
        "runs": [record.to_json() for record in records],
        "data": _mnist_data(dataset),
        "provenance": artefacts.provenance(
            data=_mnist_data(dataset), steps=config.steps, seconds=seconds, config=config, preset=preset,
            train_seconds=sum(record.train_seconds for record in records), workers=config.workers,
        ),
    }


def unit_cache() -> Path:
    """``runs/checkpoints/mnist/units``: every finished MNIST run, keyed by what sets its numbers
    (:func:`qatlib.experiments.mnist.unit_key`), shared by the presets that contain it."""
    return artefacts.runs_root() / "checkpoints" / "mnist" / "units"


def measure_mnist(config: MNISTConfig, preset: str) -> tuple[dict[str, Any], Path]:
    """Run every seed x optimizer x length of ``config`` (resuming: each finished run is cached, long
    ones checkpoint inside) and write the preset's artefact: ``(artefact, path)``. A run that
    checkpoints locks its folder (:func:`qatlib.training.checkpoint.run_lock`): a second run of
    the same config refuses at once with :class:`~qatlib.training.checkpoint.CheckpointInUse`."""
    start = time.perf_counter()
    dataset = data.load_mnist(config.source, data_dir=config.data_dir or None)
    with run_lock(artefacts.checkpoint_dir("mnist", preset, config) if config.checkpoint_every else None):
        records = run_seeds(config, cache_dir=unit_cache())
    out = mnist_artefact(records, config, preset, dataset, time.perf_counter() - start)
    return out, artefacts.write_json(artefacts.output_path("mnist", preset), out)


def check_mnist(config: MNISTConfig) -> MNISTRun:
    """The chapter's own run: the preset's first seed, every optimizer in lock step, in this process
    (a reproduction check of the committed artefact, and the arrays its figures draw)."""
    first = config.replace(seeds=config.seeds[:1], steps=(config.lengths or (config.steps,))[-1], lengths=())
    return run_mnist(first)


def resnet50_artefact(result: ResNet50Result, config: ResNet50Config, preset: str) -> dict[str, Any]:
    """The results JSON of a ResNet50 run (:func:`run_experiment`'s result) with its provenance."""
    out = result.to_json()
    out["provenance"] = artefacts.provenance(
        data=result.description["data"], steps=config.total_steps, seconds=result.seconds, config=config, preset=preset,
        train_seconds=result.train_seconds, data_parallel_devices=result.data_parallel_devices,
        processes={key: result.parallel[key] for key in ("process_count", "devices_per_process", "coordinator")},
    )
    return out


#: Set by ``python -m qatlib run`` for the notebook of a run it has already measured over several
#: processes: the path of that run's artefact, which :func:`measure_resnet50` then returns instead of
#: training again in the notebook's single-process kernel.
MEASURED_ENV = "QATLIB_MEASURED_ARTEFACT"


def measured_artefact(config: ResNet50Config) -> tuple[dict[str, Any], Path] | None:
    """The artefact named by ``$QATLIB_MEASURED_ARTEFACT`` if it was made with ``config`` (else None)."""
    named = os.environ.get(MEASURED_ENV)
    if not named or not Path(named).is_file():
        return None
    out = artefacts.read_json(named)
    return (out, Path(named)) if out.get("provenance", {}).get("config") == artefacts.to_jsonable(config) else None


def measure_resnet50(config: ResNet50Config, preset: str, *, progress: bool = True) -> tuple[dict[str, Any], Path]:
    """Run the ResNet50 experiment at ``config`` and write its artefact: ``(metrics_json, path)``.

    A seeded config (``seeds``) runs once per seed and writes ``{"runs": [...]}``, one record per
    seed x optimizer (:func:`qatlib.report.artefacts.run_records` of each run), with its provenance.
    Over several processes every process runs it and only process 0 writes the file (the others
    return the path it goes to). Under ``$QATLIB_MEASURED_ARTEFACT`` (:func:`measured_artefact`)
    nothing runs: that artefact is returned.
    """
    import jax

    if (measured := measured_artefact(config)) is not None:
        return measured
    path = artefacts.output_path("resnet50", preset)
    if not config.seeds:
        checkpoints = str(artefacts.checkpoint_dir("resnet50", preset, config)) if config.checkpoint_every else None
        out = resnet50_artefact(run_experiment(config, progress=progress, checkpoint_dir=checkpoints), config, preset)
        return out, (artefacts.write_json(path, out) if jax.process_index() == 0 else path)
    start, records, data_note = time.perf_counter(), [], None
    for seed in config.seeds:
        one = config.replace(seed=seed, seeds=())
        checkpoints = str(artefacts.checkpoint_dir("resnet50", preset, one)) if one.checkpoint_every else None
        result = run_experiment(one, progress=progress, checkpoint_dir=checkpoints)
        data_note = result.description["data"]
        records += result.records(seed, config.total_steps)
    out = {
        "runs": [record.to_json() for record in records],
        "provenance": artefacts.provenance(data=data_note, steps=config.total_steps, seconds=time.perf_counter() - start,
                                           config=config, preset=preset, train_seconds=sum(r.train_seconds for r in records)),
    }
    return out, (artefacts.write_json(path, out) if jax.process_index() == 0 else path)


def measure_beyond(config: BeyondConfig, preset: str) -> tuple[dict[str, Any], Path]:
    """Run the sweep of ``config`` (resuming: every finished run is cached under ``runs/checkpoints``)
    and write ``{"runs": [...], "provenance": ...}``: ``(artefact, path)``."""
    start = time.perf_counter()
    dataset = data.load_mnist("idx")
    cache = artefacts.checkpoint_dir("beyond", preset, config) if config.cache else None
    runs = run_sweep(config, cache_dir=cache, dataset=dataset)
    described = {
        "source": dataset.source, "note": dataset.note, "train": len(dataset.train_labels),
        "val": len(dataset.val_labels), "eval_examples": config.eval_examples,
    }
    out = {
        "runs": [run.to_json() for run in runs],
        "provenance": artefacts.provenance(
            data=described, steps=config.steps, seconds=time.perf_counter() - start, config=config, preset=preset,
            train_seconds=sum(run.seconds for run in runs),
        ),
    }
    return out, artefacts.write_json(artefacts.output_path("beyond", preset), out)
