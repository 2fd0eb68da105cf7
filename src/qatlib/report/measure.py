"""Run a chapter's measurement and write its results artefact: the one place results are written.

``python -m qatlib run CHAPTER`` and the chapters call these; each returns the in-memory result and
the path it wrote (:func:`qatlib.report.artefacts.output_path`: ``results/`` under the CLI, the
untracked ``runs/`` otherwise, so a book build never rewrites a committed artefact).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from qatlib import data
from qatlib.experiments.beyond import BeyondConfig, run_sweep
from qatlib.experiments.mnist import MNISTConfig, MNISTRun, run_mnist
from qatlib.experiments.resnet50 import ResNet50Config, run_experiment
from qatlib.report import artefacts

__all__ = ["mnist_artefact", "measure_mnist", "resnet50_artefact", "measure_resnet50", "measure_beyond"]


def mnist_artefact(run: MNISTRun, preset: str) -> dict[str, Any]:
    """The results JSON of an MNIST run: its metrics plus provenance (data, steps, seconds, device, versions, config)."""
    return {
        **run.metrics,
        "provenance": artefacts.provenance(
            data=run.metrics["data"],
            steps=run.config.steps,
            seconds=run.seconds,
            config=run.config,
            preset=preset,
            train_seconds=run.train_seconds,
        ),
    }


def measure_mnist(config: MNISTConfig, preset: str, *, progress: bool = True) -> tuple[MNISTRun, Path]:
    """Run ``config`` (resuming from its checkpoints when it has them) and write its artefact."""
    del progress  # the config's own ``progress`` field decides
    checkpoints = artefacts.checkpoint_dir("mnist", preset, config) if config.checkpoint_every else None
    run = run_mnist(config, checkpoint_dir=checkpoints)
    return run, artefacts.write_json(artefacts.output_path("mnist", preset), mnist_artefact(run, preset))


def resnet50_artefact(out: dict[str, Any], config: ResNet50Config, preset: str) -> dict[str, Any]:
    """The results JSON of a ResNet50 run (:func:`run_experiment`'s output) with its provenance."""
    out = dict(out)
    seconds, devices = out.pop("seconds"), out.pop("data_parallel_devices")
    out["provenance"] = artefacts.provenance(
        data=out["data"], steps=config.total_steps, seconds=seconds, config=config, preset=preset,
        train_seconds=out["train_seconds"], data_parallel_devices=devices,
    )
    return out


def measure_resnet50(config: ResNet50Config, preset: str, *, progress: bool = True) -> tuple[dict[str, Any], Path]:
    """Run the ResNet50 experiment at ``config`` and write its artefact: ``(metrics_json, path)``."""
    checkpoints = str(artefacts.checkpoint_dir("resnet50", preset, config)) if config.checkpoint_every else None
    out = resnet50_artefact(run_experiment(config, progress=progress, checkpoint_dir=checkpoints), config, preset)
    return out, artefacts.write_json(artefacts.output_path("resnet50", preset), out)


def measure_beyond(config: BeyondConfig, preset: str, *, progress: bool = True) -> tuple[dict[str, Any], Path]:
    """Run the sweep of ``config`` (resuming: every finished run is cached under ``runs/checkpoints``)
    and write ``{"runs": [...], "provenance": ...}``: ``(artefact, path)``."""
    del progress  # the config's own ``progress`` field decides
    start = time.perf_counter()
    dataset = data.load_mnist("idx")
    cache = artefacts.checkpoint_dir("beyond", preset, config) if config.cache else None
    runs = run_sweep(config, cache_dir=cache, dataset=dataset)
    described = {
        "source": dataset.source, "note": dataset.note, "train": len(dataset.train_labels),
        "val": len(dataset.val_labels), "eval_examples": config.eval_examples,
    }
    out = {
        "runs": runs,
        "provenance": artefacts.provenance(
            data=described, steps=config.steps, seconds=time.perf_counter() - start, config=config, preset=preset,
            train_seconds=sum(run["seconds"] for run in runs),
        ),
    }
    return out, artefacts.write_json(artefacts.output_path("beyond", preset), out)
