"""Tests for the multi-process and one-run-per-folder parts of qatlib.cli: the jax.distributed
arguments are checked before any work, chapters that run in one process refuse several, and two
launches of one MNIST preset at once (as a user would start them) give one run and one clear
refusal that names it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import qatlib
from qatlib import cli

SRC = Path(qatlib.__file__).resolve().parents[1]


def arguments(*extra: str, environ: dict[str, str] | None = None):
    return cli.process_arguments(cli.parse_args(["run", "resnet50", *extra]), environ=environ or {})


def test_one_process_unless_asked():
    assert arguments() is None
    assert arguments(environ={"SLURM_NTASKS": "4"}) is None  # a cluster alone starts nothing: --distributed does
    assert arguments("--distributed") == {"coordinator_address": None, "num_processes": None, "process_id": None}


def test_flags_win_over_the_environment():
    environ = {"JAX_COORDINATOR_ADDRESS": "node0:1234", "JAX_NUM_PROCESSES": "4", "JAX_PROCESS_ID": "3"}
    assert arguments(environ=environ) == {"coordinator_address": "node0:1234", "num_processes": 4, "process_id": 3}
    assert arguments("--process-id", "0", environ=environ)["process_id"] == 0


@pytest.mark.parametrize(
    ("extra", "environ", "message"),
    [
        (["--num-processes", "2"], {}, "coordinator_address, process_id missing"),
        (["--coordinator-address", "node0", "--num-processes", "2", "--process-id", "0"], {}, "host:port .* got 'node0'"),
        (["--coordinator-address", "node0:70000", "--num-processes", "2", "--process-id", "0"], {}, "port in 1..65535"),
        (["--coordinator-address", "node0:1234", "--num-processes", "0", "--process-id", "0"], {}, "num_processes must be an int >= 1, got 0"),
        (["--coordinator-address", "node0:1234", "--num-processes", "2", "--process-id", "2"], {}, r"0 <= process_id < num_processes \(2\), got 2"),
        ([], {"JAX_COORDINATOR_ADDRESS": "node0:1234", "JAX_NUM_PROCESSES": "two", "JAX_PROCESS_ID": "0"}, r"\$JAX_NUM_PROCESSES must be an int, got 'two'"),
        (["--distributed", "--heartbeat-timeout", "0"], {}, "heartbeat-timeout must be an int >= 1"),
    ],
)
def test_bad_process_arguments_name_the_parameter(extra, environ, message):
    with pytest.raises(ValueError, match=message):
        arguments(*extra, environ=environ)


def test_main_refuses_before_any_work(monkeypatch, capsys):
    def fail(*args, **kwargs):
        raise AssertionError("must not start")

    from qatlib.training import parallel

    monkeypatch.setattr(parallel, "start_processes", fail)
    monkeypatch.setattr(cli, "run_chapter", fail)
    for key in cli.PROCESS_ENV.values():
        monkeypatch.delenv(key, raising=False)
    assert cli.main(["run", "mnist", "--preset", "quick", "--distributed"]) == 2
    assert "chapter 'mnist' runs in one process; several processes run only ['resnet50']" in capsys.readouterr().err
    assert cli.main(["run", "resnet50", "--preset", "quick", "--coordinator-address", "x:1", "--num-processes", "2"]) == 2
    assert "process_id missing" in capsys.readouterr().err


@pytest.mark.slow
def test_two_runs_of_one_preset_at_once_one_runs_and_the_other_refuses(tmp_path):
    """The issue's report, as a user would try it: two launches started together share one checkpoint
    folder; the second must refuse at once, naming the first, and the first must finish."""
    command = [sys.executable, "-m", "qatlib", "run", "mnist", "--preset", "quick", "--no-notebook",
               "-p", "steps", "60", "-p", "checkpoint_every", "10"]
    env = dict(os.environ, JAX_PLATFORMS="cpu", QATLIB_RESULTS_DIR=str(tmp_path / "results"),
               PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
    runs = [subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for _ in range(2)]
    try:
        started = time.monotonic()
        outputs, ended = [], []
        for run in runs:
            outputs.append(run.communicate(timeout=900)[0])
            ended.append(time.monotonic() - started)
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
                run.wait(timeout=30)
    codes = [run.returncode for run in runs]
    assert sorted(codes) == [0, 3], "\n".join(out[-3000:] for out in outputs)
    refused, finished = (1, 0) if codes[1] == 3 else (0, 1)
    message = outputs[refused]
    assert re.search(rf'error: checkpoint folder \S+ is in use by another run: .*"pid": {runs[finished].pid}', message), message
    assert "Traceback" not in message and "commit_success" not in message
    assert "metrics:" in outputs[finished]
