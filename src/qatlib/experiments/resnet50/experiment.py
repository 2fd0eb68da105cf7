"""The ResNet50 chapter's experiment (:func:`run_experiment`): data, model, every optimizer's run
(:mod:`~qatlib.experiments.resnet50.branches`), its evaluation (Tables 4 and 5) and a description
of what ran."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from qatlib import data as data_lib
from qatlib import estimators, metrics, models
from qatlib.experiments.comparison import q_hat
from qatlib.experiments.records import NetId, NetRecord, PairRecord, RunRecord
from qatlib.experiments.resnet50.branches import NET_NAMES, OptimizerRun, branch_plan, run_optimizer
from qatlib.experiments.resnet50.config import BRANCHES, PyTree, ResNet50Config
from qatlib.quantizers import quantized_leaves
from qatlib.training import lockstep, optimizers
from qatlib.training.checkpoint import run_lock
from qatlib.training.parallel import DataParallel, process_group

EVAL_BATCH = 100


@dataclasses.dataclass(frozen=True)
class ResNet50Result:
    """What :func:`run_experiment` measured: per optimizer, each branch's pair with Q-hat-net at the
    end (paper Table 4) and every net's accuracy and loss (Table 5); the branches' Ē and agreement
    along training from the branch point (``history``: ``steps``, ``shared_steps`` and, per
    optimizer and branch, ``{name: [...]}`` for each name of ``branches.ALIGNMENT``); each net's training loss per
    step; the description of what ran (α, w_max, estimators, model, data); wall times; and the
    devices and processes that ran it."""

    pairs: dict[str, dict[str, PairRecord]]
    nets: dict[str, dict[str, NetRecord]]
    history: dict[str, Any]
    losses: dict[str, dict[str, list[float]]]
    description: dict[str, Any]
    train_seconds: float
    seconds: float
    data_parallel_devices: int
    parallel: dict[str, Any]

    def records(self, seed: int, steps: int) -> list[RunRecord]:
        """One :class:`~qatlib.experiments.records.RunRecord` per optimizer (SGD first), as a seeded
        artefact holds them."""
        return [
            RunRecord(seed=seed, spec={"optimizer": optimizer, "steps": steps}, pairs=self.pairs[optimizer],
                      nets=self.nets[optimizer], train_seconds=self.train_seconds)
            for optimizer in ("sgd", "adam") if optimizer in self.pairs
        ]

    def to_json(self) -> dict[str, Any]:
        """The single-run artefact's results (provenance is the report's): ``accuracy``, ``E_t``,
        ``losses``, one entry per optimizer, the description and ``train_seconds``."""
        return {
            "accuracy": {optimizer: {role: net.to_json() for role, net in nets.items()} for optimizer, nets in self.nets.items()},
            "E_t": self.history,
            "losses": self.losses,
            **{optimizer: {branch: pair.to_json() for branch, pair in pairs.items()} for optimizer, pairs in self.pairs.items()},
            **self.description,
            "train_seconds": self.train_seconds,
        }


def _first_examples(batches: Any, count: int) -> Any:
    """The first ``count`` examples of a stream of batches (the last batch cut short if needed).

    >>> stream = ({"label": np.arange(100)} for _ in range(10))
    >>> [len(batch["label"]) for batch in _first_examples(stream, 250)]
    [100, 100, 50]
    """
    seen = 0
    if count < 1:
        return
    for batch in batches:  # stops without pulling another batch (a training stream is endless)
        n = len(batch["label"])
        take = min(n, count - seen)
        yield batch if take == n else {key: value[:take] for key, value in batch.items()}
        seen += take
        if seen >= count:
            return


def _eval_batches(data: Any, cfg: Any, split: str, batch_size: int = EVAL_BATCH) -> Any:
    """The first ``cfg.eval_examples`` training (``"train"``) or evaluation (``"val"``) examples (or all)."""
    if split == "train":
        if hasattr(data, "train_eval_iterator"):
            return data.train_eval_iterator(batch_size, limit=cfg.eval_examples)
        return _first_examples(data.train_iterator(batch_size), cfg.eval_examples)
    return _first_examples(data.eval_iterator(batch_size), cfg.eval_examples)


def _eval_batch_size(data_parallel: DataParallel) -> int:
    """:data:`EVAL_BATCH` rounded up to a multiple of the device count, so every evaluation batch
    is sharded over all devices (100 on 1, 2 or 4 devices; 112 on 16)."""
    return -(-EVAL_BATCH // data_parallel.num_devices) * data_parallel.num_devices


def _train_batches(data: Any, cfg: ResNet50Config, data_parallel: DataParallel) -> Callable[[int], Any]:
    """``batch_fn(step)``: the global training batch of ``step``, placed over every device, of which
    this process builds only its own rows (all of them on one process). The batches are the same
    whatever the number of processes: a row's content depends on the step and its place in the
    batch, not on which process reads it."""
    rows = data_parallel.local_rows(cfg.batch_size)

    def place(local: dict[str, Any]) -> Any:
        return data_parallel.shard_local_batch(local, cfg.batch_size)

    if isinstance(data, data_lib.imagenet.MNIST32):
        return lambda step: place(data.train_batch(step, cfg.batch_size, rows=rows))
    stream: dict[str, Any] = {}  # a stream: read in order, reopened at the right step after a resume

    def batch_fn(step: int) -> Any:
        if stream.get("next") != step:
            stream["iterator"] = data.train_iterator(cfg.batch_size, start_step=step, rows=rows)
        stream["next"] = step + 1
        return place(next(stream["iterator"]))

    return batch_fn


def _data_description(data: Any, cfg: Any) -> dict[str, Any]:
    if data.name == "mnist32":
        return {
            "source": "idx",
            "note": (
                "full MNIST from the shipped MD5-verified IDX files (60,000 training / 10,000 test images), "
                "zero-padded from 28x28 to 32x32 and repeated to 3 channels, Flax ImageNet normalisation "
                "-- not ImageNet"
            ),
            "train": data.train_size,
            "val": data.eval_size,
            "image_size": data.image_size,
        }
    return {"source": "tfds imagenet2012", "note": "ILSVRC 2012 with the Flax ImageNet example's preprocessing",
            "image_size": data.image_size}


def run_experiment(
    cfg: ResNet50Config, *, progress: bool = False, checkpoint_dir: str | None = None
) -> ResNet50Result:
    """Run the ResNet50 chapter's experiment for ``cfg`` (no I/O beyond optional checkpoints).

    With ``cfg.checkpoint_every > 0`` both phases checkpoint under ``cfg.checkpoint_dir`` or, when
    that is empty, ``checkpoint_dir``; a rerun resumes from the newest checkpoint. The folder is
    locked for the whole run (:func:`qatlib.training.checkpoint.run_lock`): a second run of the
    same config refuses before any work with :class:`~qatlib.training.checkpoint.CheckpointInUse`.

    Over several processes (:func:`qatlib.training.parallel.start_processes`, before this call)
    every process calls this: each reads only its rows of each global batch, the devices of all
    processes share the batch, checkpoints are written collectively, and each process returns the
    same result.

    Returns a :class:`ResNet50Result`; :func:`qatlib.report.measure.measure_resnet50` writes it
    (:meth:`ResNet50Result.to_json`) with its provenance.
    """
    checkpoint_dir = cfg.checkpoint_dir or checkpoint_dir
    with run_lock(checkpoint_dir if checkpoint_dir and cfg.checkpoint_every > 0 else None):
        return _run_experiment(cfg, progress=progress, checkpoint_dir=checkpoint_dir)


@dataclasses.dataclass(frozen=True)
class _Setup:
    """What every optimizer's run of one experiment shares: data, devices, Q-hat, the model, its
    initial variables and its quantizers."""

    data: Any
    data_parallel: DataParallel
    estimator: estimators.Estimator
    model: Any
    variables: PyTree
    quantizers: PyTree


def _build(cfg: ResNet50Config) -> _Setup:
    """The data, the devices and the model with its initial variables (seed ``cfg.seed``)."""
    imagenet = {"data_dir": cfg.data_dir or None, "read_shards": cfg.read_shards}
    data = data_lib.imagenet.load(cfg.dataset, seed=cfg.seed, **(imagenet if cfg.dataset == "imagenet2012" else {}))
    data_parallel = DataParallel.create(cfg.num_devices or None)
    data_parallel.check_batch_size(cfg.batch_size)
    estimator = q_hat(cfg.sharpness, name=cfg.estimator, scale=cfg.estimator_scale, normalize=cfg.normalize)
    model = models.ResNet(
        stage_sizes=tuple(cfg.stage_sizes), num_filters=cfg.num_filters, num_classes=data.num_classes,
        bits=cfg.bits, estimator=estimator, conv_impl=cfg.conv_impl,
    )
    sample = jnp.zeros((1, data.image_size, data.image_size, 3), jnp.float32)
    initial = jax.jit(lambda key: model.init(key, sample, train=False))(jax.random.key(cfg.seed))
    variables = {"params": initial["params"], "batch_stats": initial["batch_stats"]}
    return _Setup(data, data_parallel, estimator, model, variables, models.quantizer_tree(variables["params"], cfg.bits))


def _run_experiment(cfg: ResNet50Config, *, progress: bool, checkpoint_dir: str | None) -> ResNet50Result:
    start = time.perf_counter()
    setup = _build(cfg)
    batch_fn = _train_batches(setup.data, cfg, setup.data_parallel)
    evaluate = lockstep.make_evaluator(setup.model, setup.data_parallel)
    nets: dict[str, dict[str, NetRecord]] = {}
    pairs: dict[str, dict[str, PairRecord]] = {}
    history: dict[str, Any] = {}
    losses: dict[str, dict[str, list[float]]] = {}
    train_seconds = 0.0
    for optimizer in cfg.optimizers:
        run = run_optimizer(
            optimizer=optimizer, model=setup.model, variables=setup.variables, quantizers=setup.quantizers,
            estimator=setup.estimator, learning_rate=cfg.sgd_lr if optimizer == "sgd" else cfg.adam_lr,
            total_steps=cfg.total_steps, batch_fn=batch_fn, shared_fraction=cfg.shared_fraction,
            warmup_fraction=cfg.warmup_fraction, momentum=cfg.momentum, b1=cfg.b1, b2=cfg.b2, log_every=cfg.log_every,
            data_parallel=setup.data_parallel, checkpoint_dir=checkpoint_dir, checkpoint_every=cfg.checkpoint_every,
            progress=progress, branches=BRANCHES[optimizer] + tuple(cfg.controls),
        )
        train_seconds += run.seconds
        nets[optimizer], pairs[optimizer] = _evaluate(run, setup, cfg, evaluate)
        history.update(steps=run.curve_steps, shared_steps=run.shared_steps)
        history[optimizer] = run.curves
        losses[optimizer] = run.losses
    return ResNet50Result(
        pairs=pairs, nets=nets, history=history, losses=losses, description=_description(setup, cfg),
        train_seconds=train_seconds, seconds=time.perf_counter() - start,
        data_parallel_devices=setup.data_parallel.num_devices, parallel=dataclasses.asdict(process_group()),
    )


def _evaluate(run: OptimizerRun, setup: _Setup, cfg: ResNet50Config, evaluate: Callable) -> tuple[dict[str, NetRecord], dict[str, PairRecord]]:
    """One optimizer's Table 5 (every net's accuracy and loss on the train and test examples) and
    Table 4 (each branch's alignment with Q-hat-net: E_bar and agreement over all quantized kernels
    and over the convolutions, and how often their test predictions agree), with ``evaluate``
    (:func:`qatlib.training.lockstep.make_evaluator`)."""
    eval_batch = _eval_batch_size(setup.data_parallel)
    evaluations = {
        name: {split: evaluate(state, _eval_batches(setup.data, cfg, split, eval_batch)) for split in ("train", "val")}
        for name, state in run.states.items()
    }
    accuracy = {
        name: NetRecord(train_acc=ev["train"]["accuracy"], train_loss=ev["train"]["loss"],
                        val_acc=ev["val"]["accuracy"], val_loss=ev["val"]["loss"])
        for name, ev in evaluations.items()
    }
    reference = evaluations["q_net"]["val"]["predictions"]
    convs = metrics.select_layers(setup.quantizers, lambda path: not path.startswith("head"))  # every conv kernel

    def pair(branch: str, values: dict[str, float]) -> PairRecord:
        a, b = run.states["q_net"].params, run.states[NET_NAMES[branch]].params
        mapped = setup.estimator if branch_plan(branch, run.optimizer, setup.estimator, setup.quantizers).compare_mapped else None
        return PairRecord(
            **values,  # Ē and agreement over all quantized kernels at the last step (branches.ALIGNMENT)
            E_bar_conv=metrics.E_bar(a, b, convs, mapped), agreement_conv=metrics.agreement(a, b, convs),
            prediction_agreement=float(np.mean(reference == evaluations[NET_NAMES[branch]]["val"]["predictions"])),
            nets=(NetId(run.optimizer, "q_net"), NetId(run.optimizer, NET_NAMES[branch])),
        )

    return accuracy, {branch: pair(branch, values) for branch, values in run.metrics.items()}


def _description(setup: _Setup, cfg: ResNet50Config) -> dict[str, Any]:
    """What the experiment ran: α and w_max per quantized kernel, the estimators, the model and the data."""
    params, quantizers, estimator = setup.variables["params"], setup.quantizers, setup.estimator
    return {
        "alpha": {path: float(a) for path, a, _ in quantized_leaves(
            optimizers.alpha_scale_tree(params, quantizers, estimator), quantizers)},
        "w_max": {path: float(q.representable_range[1]) for path, _, q in quantized_leaves(params, quantizers)},
        "estimator": {"q_hat": repr(estimator), "ste_net": repr(branch_plan("baseline", "sgd", estimator, quantizers).estimator)},
        "model": {
            "name": "ResNet50" if cfg.is_full_resnet50 else f"ResNet(stage_sizes={tuple(cfg.stage_sizes)}, filters={cfg.num_filters})",
            "quantized_weights": int(sum(leaf.size for _, leaf, _ in quantized_leaves(params, quantizers))),
            "parameters": int(sum(leaf.size for leaf in jax.tree_util.tree_leaves(params))),
        },
        "data": _data_description(setup.data, cfg),
    }
