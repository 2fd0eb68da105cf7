"""Sweeps: many independent runs, each cached as JSON the moment it finishes, optionally in parallel.

A sweep is a list of :class:`Task` (a cache key, a ``"module:function"`` and its JSON-able keyword
arguments). :func:`run_tasks` reads the tasks already in the cache folder and runs the others; an
interrupted sweep re-run with the same tasks resumes after its last finished task. With
``workers > 1`` the tasks run in that many spawned processes, each with single-threaded XLA (Eigen)
and pinned to its own core where the machine has as many: on the project's 2-core CPU two
single-threaded MNIST runs side by side finish about 1.4-1.7x sooner than the same runs one after
another on both cores (``benchmarks/``), and each run's numbers are the same bit for bit (a run's
arithmetic does not depend on how many threads share it; ``tests/experiments/test_mnist.py``).

>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> run_tasks([Task("a", "qatlib.experiments.sweep:_echo", {"value": 7})], folder, progress=False)
[{'value': 7}]
>>> run_tasks([Task("a", "qatlib.experiments.sweep:_echo", {"value": 8})], folder, progress=False)   # cached
[{'value': 7}]
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import importlib
import multiprocessing
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qatlib import files

__all__ = ["Task", "SINGLE_THREAD_FLAG", "with_xla_flag", "run_tasks"]

#: Added to ``XLA_FLAGS`` in worker processes: XLA:CPU's matrix products on one thread.
SINGLE_THREAD_FLAG = "--xla_cpu_multi_thread_eigen=false"


def with_xla_flag(flag: str, flags: str | None = None) -> str:
    """An ``XLA_FLAGS`` value: ``flags`` (by default the environment's ``XLA_FLAGS``, ``""`` when unset)
    with ``flag`` appended after a space, the ends stripped. Nothing is de-duplicated, and nothing is
    written to the environment: the caller puts the value where a process (or its children) reads it.

    >>> with_xla_flag("--b=2", ""), with_xla_flag("--b=2", "--a=1"), with_xla_flag("", "--a=1")
    ('--b=2', '--a=1 --b=2', '--a=1')
    """
    if flags is None:
        flags = os.environ.get("XLA_FLAGS", "")
    return f"{flags} {flag}".strip()


@dataclasses.dataclass(frozen=True)
class Task:
    """One run of a sweep: its cache key, ``"module:function"`` and the function's keyword arguments
    (JSON-able, so that the task can cross to a worker process). The function returns a JSON-able dict."""

    key: str
    function: str
    kwargs: dict[str, Any]


def _echo(value: Any) -> dict[str, Any]:  # the module doctest's task
    return {"value": value}


def _call(task: Task, path: str | None) -> dict[str, Any]:
    module, _, name = task.function.partition(":")
    outcome = getattr(importlib.import_module(module), name)(**task.kwargs)
    if path is not None:
        files.write_json(path, outcome)  # at once: an interruption loses at most the tasks in progress
    return files.read_json(path) if path is not None else outcome


def run_tasks(
    tasks: Sequence[Task],
    cache_dir: str | os.PathLike[str] | None,
    *,
    workers: int = 1,
    progress: bool = True,
    description: str = "runs",
) -> list[dict[str, Any]]:
    """Every task's outcome, in the order of ``tasks``: read from ``cache_dir/<key>.json`` where a
    previous call finished it, else run (and cached at once when ``cache_dir`` is given).

    Outcomes are returned as read back from their JSON (tuples become lists), so a cached and a
    fresh outcome look the same.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    keys = [task.key for task in tasks]
    if len(set(keys)) != len(keys):
        raise ValueError(f"task keys must be unique, got {keys}")
    from tqdm.auto import tqdm

    cache = Path(cache_dir) if cache_dir is not None else None
    paths = [str(cache / f"{task.key}.json") if cache is not None else None for task in tasks]
    outcomes: list[dict[str, Any] | None] = [
        files.read_json(path) if path is not None and os.path.isfile(path) else None for path in paths
    ]
    todo = [index for index, outcome in enumerate(outcomes) if outcome is None]
    bar = tqdm(total=len(tasks), initial=len(tasks) - len(todo), desc=description, disable=not progress)
    if workers == 1 or len(todo) <= 1:
        for index in todo:
            outcomes[index] = _call(tasks[index], paths[index])
            bar.update()
    else:
        context = multiprocessing.get_context("spawn")
        previous = os.environ.get("XLA_FLAGS")
        os.environ["XLA_FLAGS"] = with_xla_flag(SINGLE_THREAD_FLAG, previous or "")  # inherited by the workers
        try:
            with concurrent.futures.ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=context) as pool:
                futures = {pool.submit(_call, tasks[index], paths[index]): index for index in todo}
                for future in concurrent.futures.as_completed(futures):
                    outcomes[futures[future]] = future.result()
                    bar.update()
        finally:
            if previous is None:
                os.environ.pop("XLA_FLAGS", None)
            else:
                os.environ["XLA_FLAGS"] = previous
    bar.close()
    return [outcome for outcome in outcomes if outcome is not None]
