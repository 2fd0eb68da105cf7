"""Tests for qatlib.cli: parameter checks before running, papermill execution, the chapter registry."""

from __future__ import annotations

import json
import os

import jupytext
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from qatlib import cli


def test_registry_and_argument_parsing():
    assert "mnist" in cli.CHAPTERS
    assert "steps" in type(cli.CHAPTERS["mnist"].registry()["quick"]).model_fields
    args = cli.parse_args(["run", "mnist", "--preset", "quick", "-p", "steps", "5", "-p", "bits", "4"])
    assert (args.chapter, args.preset, args.parameters) == ("mnist", "quick", [["steps", "5"], ["bits", "4"]])


def test_parameters_are_checked_and_converted_before_running():
    name, converted = cli.check_parameters("mnist", "quick", [["steps", "5"], ["optimizers", "sgd"], ["sgd_lr", "2e-3"]])
    assert name == "quick"
    assert converted == {"steps": 5, "optimizers": ["sgd"], "sgd_lr": 0.002}
    with pytest.raises(ValueError, match="unknown parameter"):
        cli.check_parameters("mnist", "quick", [["stepz", "5"]])
    with pytest.raises(ValueError, match="unknown preset"):
        cli.check_parameters("mnist", "fast", [])
    with pytest.raises(ValueError, match="unknown chapter"):
        cli.check_parameters("cifar", "quick", [])
    with pytest.raises(ValueError):
        cli.check_parameters("mnist", "quick", [["steps", "many"]])
    with pytest.raises(ValueError, match="twice"):
        cli.check_parameters("mnist", "quick", [["steps", "1"], ["steps", "2"]])


def test_main_rejects_unknown_names_without_running(monkeypatch, capsys):
    def fail(*args, **kwargs):
        raise AssertionError("must not run")

    monkeypatch.setattr(cli, "run_chapter", fail)
    assert cli.main(["run", "mnist", "--preset", "quick", "-p", "nope", "1"]) == 2
    assert "unknown parameter" in capsys.readouterr().err


def test_run_chapter_executes_the_notebook_with_papermill(monkeypatch, tmp_path):
    monkeypatch.delenv("QATLIB_WRITE_RESULTS", raising=False)
    (tmp_path / "book").mkdir()
    notebook = new_notebook(cells=[
        new_code_cell(
            "import json, os, pathlib\nfrom qatlib.experiments import config as presets\nfrom test_cli_registry import REGISTRY\n"
            "_before = set(globals())"
        ),
        new_code_cell("preset = None", metadata={"tags": ["parameters"]}),
        new_code_cell(
            "cfg = presets.resolve_from_namespace(REGISTRY, globals(), _before)\n"
            "pathlib.Path('out.json').write_text(json.dumps({'steps': cfg.steps, 'lr': cfg.lr, 'preset': preset,\n"
            "    'write': os.environ.get('QATLIB_WRITE_RESULTS')}))"
        ),
    ])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    jupytext.write(notebook, tmp_path / "book" / "toy.md", fmt="md:myst")  # chapters are MyST sources
    (tmp_path / "book" / "test_cli_registry.py").write_text(
        "from qatlib.experiments.config import Config\n"
        "class Toy(Config):\n    steps: int = 3\n    lr: float = 0.1\n"
        "REGISTRY = {'quick': Toy(steps=1), 'default': Toy()}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "book"))
    monkeypatch.setitem(cli.CHAPTERS, "toy", cli.Chapter("book/toy.md", "test_cli_registry:REGISTRY"))
    monkeypatch.setattr(cli, "repository_root", lambda: tmp_path)
    target = cli.run_chapter("toy", "quick", [["lr", "0.5"]], progress=False)
    assert target == tmp_path / "runs" / "toy" / "quick" / "toy.ipynb" and target.is_file()
    # The kernel writes results/ (it saw QATLIB_WRITE_RESULTS=1); this process does not go on doing so.
    assert json.loads((tmp_path / "book" / "out.json").read_text()) == {
        "steps": 1, "lr": 0.5, "preset": "quick", "write": "1",
    }
    assert "QATLIB_WRITE_RESULTS" not in os.environ
    with pytest.raises(ValueError, match="unknown parameter"):
        cli.run_chapter("toy", "quick", [["epochs", "2"]])


def test_missing_tfds_data_fails_before_running(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="download_and_prepare"):
        cli.check_parameters("mnist", "paper", [["source", "tfds"]])
    monkeypatch.setattr(cli, "run_chapter", lambda *a, **k: (_ for _ in ()).throw(AssertionError("must not run")))
    assert cli.main(["run", "mnist", "--preset", "paper", "-p", "source", "tfds"]) == 2
    assert "not prepared" in capsys.readouterr().err


def test_corrupt_mnist_fails_before_anything_runs_or_is_written(monkeypatch, tmp_path, capsys):
    import gzip
    import shutil

    from qatlib import data

    for name, _, _ in data.MNIST_FILES.values():
        shutil.copy(data.mnist_dir() / name, tmp_path / name)
    target = tmp_path / "t10k-images-idx3-ubyte.gz"
    raw = bytearray(gzip.decompress(target.read_bytes()))
    raw[-1] ^= 0x01  # one byte changed
    target.write_bytes(gzip.compress(bytes(raw)))
    monkeypatch.setattr(cli, "run_chapter", lambda *a, **k: (_ for _ in ()).throw(AssertionError("must not run")))
    results_dir = tmp_path / "results"
    monkeypatch.setenv("QATLIB_RESULTS_DIR", str(results_dir))
    for extra in ([], ["--no-notebook"]):
        assert cli.main(["run", "mnist", "--preset", "quick", "-p", "data_dir", str(tmp_path), *extra]) == 2
        assert "t10k-images-idx3-ubyte.gz is corrupt" in capsys.readouterr().err
    assert not results_dir.exists()


def test_no_notebook_needs_a_chapter_with_artefacts(capsys):
    assert cli.main(["run", "theorems", "--preset", "quick", "--no-notebook"]) == 2
    assert "no results artefact" in capsys.readouterr().err


@pytest.mark.parametrize(("given", "expected"), [
    (None, "--xla_gpu_deterministic_ops=true"),
    ("--xla_dump_to=/tmp/x", "--xla_gpu_deterministic_ops=true --xla_dump_to=/tmp/x"),
    ("--xla_gpu_deterministic_ops=false", "--xla_gpu_deterministic_ops=false"),  # a user's explicit choice
])
def test_python_m_qatlib_runs_with_deterministic_gpu_kernels(monkeypatch, given, expected):
    """`python -m qatlib` sets XLA_FLAGS before main() runs anything (the kernel and the provenance inherit it)."""
    import runpy

    seen = {}

    def fake_main():
        seen["flags"] = os.environ["XLA_FLAGS"]
        return 0

    if given is None:
        monkeypatch.delenv("XLA_FLAGS", raising=False)
    else:
        monkeypatch.setenv("XLA_FLAGS", given)
    monkeypatch.setattr(cli, "main", fake_main)
    with pytest.raises(SystemExit) as exited:
        runpy.run_module("qatlib", run_name="__main__")
    assert exited.value.code == 0
    assert seen["flags"] == expected
