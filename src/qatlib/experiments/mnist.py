"""Presets of the MNIST chapter (paper Section 6, Tables 3-5, Figure 3).

Every preset runs the same code (:func:`run_mnist`, one seed at a time) on full MNIST (the
project's shipped, MD5-verified IDX files: the 60,000 training images for training, the 10,000 test
images for evaluation, as in the paper): copies of one convnet (2-bit kernels over their He-uniform
ranges, Q-hat = the paper's threshold-centred, bin-normalised HTGE with sharpness 5.5 / w_max per
layer) train in lock step on identical batches: for SGD (momentum 0.9) Q-hat-net, STE-net
(M-initialised, lr alpha*eta), Q-hat-net with lr 1.01*eta and the unadjusted STE-net; for Adam
(beta1 0.9, beta2 0.95) Q-hat-net, STE-net and the lr-tweaked Q-hat-net. The learning rate is the
peak of a linear warm-up over 2% of the steps followed by cosine decay. A seed sets both the
initialisation and the batch order.

A preset's runs are one per seed x optimizer x length (:func:`unit_configs`); each is cached as it
finishes (:mod:`qatlib.experiments.sweep`), so an interrupted preset resumes, and ``workers`` of them
run side by side. The numbers of a run do not depend on which optimizers share its process or on
the worker count (``tests/experiments/test_mnist.py``); they do depend on the CPU's core count and
vector unit (the README's "Numerics across machines").

Single runs (one seed):

* ``quick`` -- nbval and CI: 40 steps of batch 64 (2,560 of the training images). Under a minute
  on the project's 2-core CPU, most of it compilation. Checks the plumbing; the nets reach only
  ~60% accuracy, so the numbers are not the paper's.
* ``default`` -- 400 steps of batch 128 (0.85 epoch). A few minutes on the project's 2-core CPU.
* ``paper`` -- the authors' configuration: 10 epochs of 100 steps of batch 600 (1,000 steps, a fresh
  permutation per epoch), SGD momentum 0.9 at lr 1e-3 and Adam (beta2 0.95) at 1e-4, 2% warm-up
  then cosine. Gradients in chunks of 25 examples (``microbatch``: the same mean gradient to float32
  rounding, 2-3x faster on a CPU). Checkpointed every epoch. Measured for its artefact
  (``python -m qatlib run mnist --preset paper --no-notebook``), its SGD and Adam runs go side by
  side in two single-threaded processes (``workers=2``): one process keeps only about one of two
  cores busy at this step size, so on a 2-core CPU this is 1.2x sooner (``benchmarks/``); the
  chapter's own check in a notebook runs in the kernel. The paper's values (Tables 4, 5): E_bar
  0.515% / 0.572% / 2.52% (SGD baseline / lr-tweak / unadjusted), 2.81% / 1.74% (Adam), agreement
  98.31% / 98.66% / 96.53% and 94.42% / 95.4%, accuracy ~97%.
* ``paper_gpu`` -- the ``paper`` preset as a GPU runs it: whole-batch gradients, cuDNN convolutions
  (``conv_impl="lax"``), no checkpoints; made by ``scripts/gpu_artefacts.sh``.
* ``sgd_no_momentum`` -- the ``default`` run with plain SGD (momentum 0, Theorem 5.1's setting) at lr
  1e-2, the same step size eta / (1 - momentum) as the paper's momentum 0.9 at 1e-3.
* ``level_centred_control`` -- the ``default`` run with Q-hat' centred on the levels instead of the
  thresholds: how much does the estimator's phase matter?

Seeded presets, on which the book's verdicts rest (each pair's ratio is measured per seed and the
verdict taken over seeds, :mod:`qatlib.report.claims`). Beside the paper's pairs they train the
yardsticks: Q-hat-nets at lr x 1.001 and x 1.1 (with the paper's x 1.01: the "equivalent lr
change" of a pair) and Q-hat-net's rounding twin, which sums the same gradient over other chunks
(its E_bar is the float32 rounding floor):

* ``paper_seeds`` -- ``paper`` over seeds 0-4 (the headline; about 2-3 hours on the 2-core CPU);
* ``paper_lengths`` -- ``paper_seeds``' first 3 seeds at 100, 300 and 1,000 steps (each length its
  own schedule; the 1,000-step runs are those of ``paper_seeds``);
* ``paper_no_momentum`` -- the control on the paper's schedule: plain SGD at lr 1e-2, seeds 0-2;
* ``authors_setup`` -- the authors' public code's setup: the Flax example's CNN (conv kernels
  quantized, dense layers full precision), HTGE sharpness 6.5 / w_max, alpha on STE-net's slope,
  SGD momentum 0.9 at 1e-3 and Adam at 1e-4, batch 600, warm-up + cosine; 100, 300 and 1,000 steps,
  seeds 0-2 (no yardsticks);
* ``quick_seeds``, ``default_seeds``, ``sgd_no_momentum_seeds`` -- those presets over seeds 0-2.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import time
import warnings
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import pydantic
from pydantic import Field

import qatlib
from qatlib import data, estimators, metrics, models
from qatlib.experiments import sweep
from qatlib.experiments.comparison import (
    EVAL_MICROBATCH, LR_TWEAK, Pair, comparison, conv_layers, pair_metrics, q_hat, rounding_microbatch, ste_partner,
)
from qatlib.experiments.config import Config, EstimatorName, check_microbatch
from qatlib.experiments.records import METRICS, NetRecord, PairMetrics, PairRecord, RunRecord
from qatlib.quantizers import quantized_leaves
from qatlib.training import Checkpointer, lockstep, optimizers

__all__ = ["MNISTConfig", "PRESETS", "MNISTRun", "conv_layers", "run_mnist", "unit_configs", "run_seeds", "UNIT_FIELDS"]

PyTree = Any


class MNISTConfig(Config):
    """The lock-step comparisons of one MNIST preset: every seed, optimizer and length (validated on construction)."""

    # data: full MNIST, 60,000 training / 10,000 test images
    source: Literal["idx", "tfds"] = "idx"  # the shipped, MD5-verified IDX files | prepared tfds MNIST
    data_dir: str = ""  # "" -> data/mnist (idx) or $TFDS_DATA_DIR / ~/tensorflow_datasets (tfds)
    # seeds: each seed is one run's initialisation and batch order (changed together)
    seeds: tuple[int, ...] = (0,)
    # model and estimator
    model: Literal["chollet", "flax_example"] = "chollet"  # the paper's net | the authors' code's net
    quantize_dense: bool = True  # chollet: quantize the dense kernel too (the flax_example never does)
    bits: int = Field(2, ge=1)
    estimator: EstimatorName = "htge"  # Q-hat: any registered estimator by name (HTGE reads sharpness and centre)
    sharpness: float = Field(5.5, gt=0, allow_inf_nan=False)  # HTGE k = sharpness / w_max per layer
    centre: Literal["threshold", "level"] = "threshold"  # where Q-hat' peaks (the paper's | a control)
    conv_impl: Literal["im2col", "lax"] = "im2col"
    # optimisation
    optimizers: tuple[Literal["sgd", "adam"], ...] = ("sgd", "adam")
    steps: int = Field(400, ge=1)
    lengths: tuple[int, ...] = ()  # if given, every seed runs at each of these lengths (its schedule scaled), not `steps`
    batch_size: int = Field(128, ge=1)
    sgd_lr: float = Field(1e-3, gt=0, allow_inf_nan=False)
    sgd_momentum: float = Field(0.9, ge=0, lt=1)  # the paper's; 0 gives plain SGD (Eq. 3, Theorem 5.1)
    adam_lr: float = Field(1e-4, gt=0, allow_inf_nan=False)
    lr_tweak: float = Field(LR_TWEAK, gt=0)  # the lr-tweak net's learning-rate factor (the paper's 1%)
    alpha_on: Literal["lr", "slope"] = "lr"  # where STE-net's α goes: its learning rate (the paper) | its slope (the authors' code)
    # yardsticks: Q-hat-nets at these further lr factors, and Q-hat-net's rounding twin (other gradient chunks)
    extra_lr_tweaks: tuple[float, ...] = ()
    rounding_twin: bool = False
    # measurement
    log_every: int = Field(20, ge=1)  # E^(t) every this many steps
    tracked_weights: int = Field(4096, ge=0)  # weights whose level sequence is recorded every step
    eval_batch_size: int = Field(1000, ge=1)
    # speed: examples per gradient chunk (0 = the whole batch at once). The chunks' mean gradient
    # equals the batch's to float32 rounding and is 2-3x faster on a CPU at batch 600, but training
    # amplifies the last bits, so a run's final metrics move (the `rounding` pair measures by how much).
    microbatch: int = Field(0, ge=0)
    train_eval_examples: int = Field(0, ge=0)  # training images for Table 5's train columns (0 = all)
    progress: bool = True
    workers: int = Field(1, ge=1)  # runs (seed x optimizer x length) in parallel processes, one core each
    # resuming: save everything every this many steps (0 = never); a rerun resumes from the newest
    checkpoint_every: int = Field(0, ge=0)

    @pydantic.model_validator(mode="after")
    def _check(self) -> "MNISTConfig":
        check_microbatch(self.microbatch, self.batch_size)
        for name in ("seeds", "lengths", "extra_lr_tweaks"):
            value = getattr(self, name)
            if len(set(value)) != len(value):
                raise ValueError(f"{name} must not repeat a value, got {value}")
        if not self.seeds:
            raise ValueError("seeds must not be empty")
        if any(length < 1 for length in self.lengths):
            raise ValueError(f"lengths must be >= 1, got {self.lengths}")
        if any(not (factor > 0 and factor != 1.0 and factor != self.lr_tweak) for factor in self.extra_lr_tweaks):
            raise ValueError(f"extra_lr_tweaks must be positive factors other than 1 and lr_tweak, got {self.extra_lr_tweaks}")
        if self.model == "flax_example" and self.quantize_dense:
            raise ValueError("model 'flax_example' keeps its dense layers in full precision: set quantize_dense=False")
        if self.rounding_twin:
            rounding_microbatch(self.batch_size, self.microbatch)  # the batch must split another way
        return self

    @pydantic.field_validator("optimizers")
    @classmethod
    def _distinct(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or len(set(value)) != len(value):
            raise ValueError(f"optimizers must be distinct names from ('sgd', 'adam'), got {value}")
        return value

    def preflight(self) -> None:
        """Before any work: FileNotFoundError when the chosen data is absent, CorruptDataError
        (a ValueError) when a shipped MNIST file fails its checksum."""
        if self.source == "tfds":
            root = data.tfds_data_dir(self.data_dir or None)
            if data.tfds_prepared_dir(root) is None:
                raise FileNotFoundError(data.PREPARE_HINT.format(data_dir=root))
        else:
            data.verify_mnist(self.data_dir or None)

    def learning_rate(self, optimizer: str) -> float:
        return {"sgd": self.sgd_lr, "adam": self.adam_lr}[optimizer]


#: Fields of a config that make no difference to a run's numbers (its cache key leaves them out).
UNIT_FIELDS_IGNORED = ("progress", "workers", "checkpoint_every", "data_dir", "seeds", "lengths", "optimizers", "steps")
UNIT_FIELDS = tuple(name for name in MNISTConfig.model_fields if name not in UNIT_FIELDS_IGNORED)

_PAPER = dict(steps=1000, batch_size=600, microbatch=25, log_every=50, tracked_weights=8192, checkpoint_every=100)
PRESETS: dict[str, MNISTConfig] = {
    "quick": MNISTConfig(
        steps=40, batch_size=64, log_every=10, tracked_weights=1024, train_eval_examples=1000, progress=False
    ),
    "default": MNISTConfig(checkpoint_every=100),
    "paper": MNISTConfig(**_PAPER, workers=2),
    "sgd_no_momentum": MNISTConfig(optimizers=("sgd",), sgd_momentum=0.0, sgd_lr=1e-2, checkpoint_every=100),
    "level_centred_control": MNISTConfig(centre="level", checkpoint_every=100),
}
PRESETS["paper_gpu"] = PRESETS["paper"].replace(microbatch=0, conv_impl="lax", checkpoint_every=0, workers=1)
# The seeded presets: the book's verdicts rest on these (intervals over seeds), with the yardsticks.
_YARDSTICKS = dict(extra_lr_tweaks=(1.001, 1.1), rounding_twin=True, workers=2)
PRESETS["quick_seeds"] = PRESETS["quick"].replace(seeds=(0, 1, 2), **_YARDSTICKS)
PRESETS["default_seeds"] = PRESETS["default"].replace(seeds=(0, 1, 2), **_YARDSTICKS)
PRESETS["sgd_no_momentum_seeds"] = PRESETS["sgd_no_momentum"].replace(seeds=(0, 1, 2), **_YARDSTICKS)
PRESETS["paper_seeds"] = PRESETS["paper"].replace(seeds=(0, 1, 2, 3, 4), **_YARDSTICKS)
PRESETS["paper_lengths"] = PRESETS["paper_seeds"].replace(seeds=(0, 1, 2), lengths=(100, 300, 1000))
PRESETS["paper_no_momentum"] = PRESETS["paper_seeds"].replace(
    seeds=(0, 1, 2), optimizers=("sgd",), sgd_momentum=0.0, sgd_lr=1e-2
)
PRESETS["authors_setup"] = PRESETS["paper"].replace(
    model="flax_example", quantize_dense=False, sharpness=6.5, alpha_on="slope", seeds=(0, 1, 2),
    lengths=(100, 300, 1000), tracked_weights=0, workers=2,
)


@dataclasses.dataclass
class MNISTRun:
    """One seed's lock-step run: its records (one per optimizer) plus arrays for the figures."""

    records: list[RunRecord]
    config: MNISTConfig
    seed: int
    data: data.MNIST
    quantizers: PyTree
    estimator: estimators.Estimator
    params: dict[str, PyTree]  # final params by net name (NetId.name)
    initial_params: dict[str, PyTree]
    pairs: list[Pair]
    levels: dict[str, np.ndarray] | None  # tracked level sequences (steps + 1, tracked) by net
    train_seconds: float
    seconds: float

    def layer_quantizers(self) -> dict[str, Any]:
        """``{layer name: quantizer}`` of the quantized kernels (e.g. ``{"conv_0": ...}``)."""
        return {path.split("/")[0]: q for path, _, q in quantized_leaves(self.quantizers, self.quantizers)}


@dataclasses.dataclass(frozen=True)
class _Setup:
    model: Any
    estimator: estimators.Estimator
    params0: PyTree
    quantizers: PyTree
    nets: list[lockstep.Net]
    states: list[lockstep.TrainState]
    pairs: list[Pair]


def _build(config: MNISTConfig, seed: int) -> _Setup:
    """The model, Q-hat, initial params (He-uniform from ``seed``) and every optimizer's nets and pairs."""
    estimator = q_hat(config.sharpness, config.centre, name=config.estimator)
    cls = models.MNIST_MODELS[config.model]
    options = {"quantize_dense": config.quantize_dense} if config.model == "chollet" else {}
    model = cls(bits=config.bits, estimator=estimator, conv_impl=config.conv_impl, **options)
    params0 = jax.jit(model.init)(jax.random.key(seed), jnp.zeros((1, 28, 28, 1), jnp.float32))["params"]
    quantizers = model.quantizers(params0)
    factories = {
        "sgd": functools.partial(optimizers.make_optimizer, momentum=config.sgd_momentum),
        "adam": optimizers.make_optimizer,
    }
    rounding = rounding_microbatch(config.batch_size, config.microbatch) if config.rounding_twin else None
    nets, states, pairs = [], [], []
    for optimizer in config.optimizers:
        n, s, p = comparison(
            optimizer, model, params0, quantizers, estimator, config.learning_rate(optimizer), config.steps,
            lr_tweak=config.lr_tweak, extra_lr_tweaks=config.extra_lr_tweaks, rounding_chunks=rounding,
            alpha_on=config.alpha_on, make_optimizer=factories[optimizer],
        )
        nets += n
        states += s
        pairs += p
    return _Setup(model, estimator, params0, quantizers, nets, states, pairs)


def _train(config: MNISTConfig, seed: int, setup: _Setup, dataset: data.MNIST, checkpoint_dir: Any) -> tuple[lockstep.TrainResult, np.ndarray]:
    """Train every net in lock step on one batch stream; log E^(t), path lengths and tracked levels."""
    names = [net.name for net in setup.nets]
    convs = conv_layers(setup.quantizers)
    total_weights = sum(int(math.prod(leaf.shape)) for _, leaf, _ in quantized_leaves(setup.params0, setup.quantizers))
    sample = np.sort(np.random.default_rng(seed).choice(total_weights, min(config.tracked_weights, total_weights), replace=False))

    def observe(before: list[lockstep.TrainState], after: list[lockstep.TrainState]) -> dict[str, Any]:
        # Per step: each net's path length over the conv kernels (the authors' denominator) and the
        # quantized levels of the tracked weights.
        observation: dict[str, Any] = {
            "path_conv": jnp.stack([metrics.path_length(b.params, a.params, convs) for b, a in zip(before, after, strict=True)])
        }
        if len(sample):
            observation["levels"] = {
                name: metrics.flat_level_indices(state.params, setup.quantizers, sample) for name, state in zip(names, after, strict=True)
            }
        return observation

    def on_log(step: int, by_name: dict[str, lockstep.TrainState]) -> dict[str, float]:
        params = {name: state.params for name, state in by_name.items()}
        values = {}
        for pair in setup.pairs:
            finite = _finite(params[pair.net_a]) and _finite(params[pair.net_b])
            for metric, value in pair_metrics(pair, params, setup.quantizers, setup.estimator).items():
                values[_log_key(pair, metric)] = value if finite else float("nan")
        return values

    checkpointer = Checkpointer(checkpoint_dir, every=config.checkpoint_every) if config.checkpoint_every and checkpoint_dir is not None else None
    result = lockstep.train_lockstep(
        setup.nets, setup.states,
        lambda first: data.batch_stream(dataset.train_images, dataset.train_labels, config.batch_size, seed, start_step=first),
        config.steps, observe=observe, on_log=on_log, log_every=config.log_every, progress=config.progress,
        description=f"seed {seed}: {len(setup.nets)} nets in lock step", checkpointer=checkpointer,
        microbatch=config.microbatch,
    )
    if checkpointer is not None:
        checkpointer.close()
    return result, sample


def _log_key(pair: Pair, metric: str) -> str:
    """The name under which a pair's metric is logged along training (lock-step logs are keyed by text)."""
    return f"{pair.optimizer}/{pair.experiment}/{metric}"


def _finite(tree: PyTree) -> bool:
    return all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(tree))


def _evaluate(config: MNISTConfig, setup: _Setup, result: lockstep.TrainResult, dataset: data.MNIST) -> tuple[dict[str, NetRecord], dict[str, np.ndarray]]:
    """Table 5 per net (accuracy and loss on the training images and the 10,000 test images, eval
    mode), whether it trained, and its test logits. The forward pass is Q(w) whatever the estimator;
    in chunks: the same logits, several times faster."""
    evaluate = lockstep.make_evaluator(setup.model, microbatch=EVAL_MICROBATCH)
    train_count = config.train_eval_examples or len(dataset.train_labels)
    stats, logits = {}, {}
    tail = max(1, config.steps // 10)
    for index, net in enumerate(setup.nets):
        state = result.states[net.name]
        losses = result.logs["loss"][:, index]
        finite = _finite(state.params) and bool(np.all(np.isfinite(losses)))
        entry = NetRecord(finite=finite, final_train_loss=float(np.mean(losses[-tail:])))
        if finite:
            tr = evaluate(state, data.eval_batches(dataset.train_images[:train_count], dataset.train_labels[:train_count], config.eval_batch_size))
            va = evaluate(state, data.eval_batches(dataset.val_images, dataset.val_labels, config.eval_batch_size))
            logits[net.name] = va["logits"]
            entry = dataclasses.replace(entry, train_acc=tr["accuracy"], train_loss=tr["loss"], val_acc=va["accuracy"], val_loss=va["loss"])
        entry = dataclasses.replace(entry, trained=metrics.trained(entry.val_acc, finite))
        if not entry.trained:
            warnings.warn(
                f"{net.name} did not train (finite: {finite}, test accuracy {entry.val_acc}): "
                "its pairs are reported as 'not trained', not as a verdict", RuntimeWarning, stacklevel=2,
            )
        stats[net.name] = entry
    return stats, logits


def _pair_record(pair: Pair, setup: _Setup, result: lockstep.TrainResult, stats: dict[str, NetRecord], logits: dict[str, np.ndarray],
                 path_conv: dict[str, float], levels: dict[str, np.ndarray] | None) -> PairRecord:
    """Every measure of one pair at the end of training, with its E^(t) along the way."""
    history = PairMetrics(**{metric: [float(v) for v in result.log_values[_log_key(pair, metric)]] for metric in METRICS})
    entry = PairRecord(
        **{metric: column[-1] for metric, column in history.items()},  # the last log point is the last step
        E_t=history, nets=(pair.a, pair.b), trained=bool(stats[pair.net_a].trained and stats[pair.net_b].trained),
    )
    if not (stats[pair.net_a].finite and stats[pair.net_b].finite):
        return entry
    a, b = result.states[pair.net_a].params, result.states[pair.net_b].params
    convs = conv_layers(setup.quantizers)
    mapping = setup.estimator if pair.mapped else None
    return dataclasses.replace(
        entry,
        # The authors' code's measure: Σ|M(w_a) − w_b|/w_max over conv kernels / net b's conv path length.
        authors_measure=metrics.summed_alignment_error(a, b, convs, mapping) / max(path_conv[pair.net_b], 1e-30),
        path_length_conv=path_conv[pair.net_b],
        E_bar_per_layer=metrics.E_bar_per_layer(a, b, setup.quantizers, mapping),
        agreement_per_layer=metrics.agreement_per_layer(a, b, setup.quantizers),
        prediction_agreement=metrics.prediction_agreement(logits[pair.net_a], logits[pair.net_b]),
        mirror_room=metrics.crossing_statistics(levels[pair.net_a], levels[pair.net_b]) if levels is not None else None,
    )


def _spec(config: MNISTConfig, optimizer: str) -> dict[str, Any]:
    """What one record ran: the optimizer, its length and learning rate, and the fields that set its numbers."""
    spec = {name: getattr(config, name) for name in UNIT_FIELDS}
    spec.update(optimizer=optimizer, steps=config.steps, lr=config.learning_rate(optimizer))
    return json.loads(json.dumps(spec, default=list))


def run_mnist(config: MNISTConfig, dataset: data.MNIST | None = None, *, checkpoint_dir: Any = None) -> MNISTRun:
    """One seed (``config.seeds[0]``) of ``config``: train every optimizer's nets in lock step and
    measure Tables 3-5, Figure 3 and E^(t) (one record per optimizer).

    With ``config.checkpoint_every > 0`` and a ``checkpoint_dir``, everything is saved there every
    that many steps, and a rerun with the same config resumes from the newest checkpoint and ends
    bit-identical to an uninterrupted run (:func:`qatlib.training.lockstep.train_lockstep`).
    """
    start = time.perf_counter()
    seed = config.seeds[0]
    if dataset is None:
        dataset = data.load_mnist(config.source, data_dir=config.data_dir or None)
    setup = _build(config, seed)
    result, sample = _train(config, seed, setup, dataset, checkpoint_dir)
    names = [net.name for net in setup.nets]
    initial = {name: state.params for name, state in zip(names, setup.states, strict=True)}
    levels = None
    if len(sample):
        levels = {
            name: np.concatenate([np.asarray(metrics.flat_level_indices(initial[name], setup.quantizers, sample))[None],
                                  np.asarray(result.observations["levels"][name])])
            for name in names
        }
    path_conv = dict(zip(names, np.asarray(result.observations["path_conv"], np.float64).sum(axis=0), strict=True))
    stats, logits = _evaluate(config, setup, result, dataset)
    layers = {path: q for path, _, q in quantized_leaves(setup.params0, setup.quantizers)}
    records = []
    for optimizer in config.optimizers:
        pairs = [pair for pair in setup.pairs if pair.optimizer == optimizer]
        nets = dict.fromkeys(net for pair in pairs for net in (pair.a, pair.b))  # in training order
        records.append(RunRecord(
            seed=seed,
            spec=_spec(config, optimizer),
            pairs={pair.experiment: _pair_record(pair, setup, result, stats, logits, path_conv, levels) for pair in pairs},
            nets={net.role: stats[net.name] for net in nets},
            log_steps=[int(s) for s in result.log_steps],
            alpha={path: qatlib.alpha(q, setup.estimator) for path, q in layers.items()},
            w_max={path: q.representable_range[1] for path, q in layers.items()},
            estimator={"q_hat": repr(setup.estimator), "ste_net": repr(ste_partner(setup.estimator, setup.quantizers, optimizers.family(optimizer)))},
            tracked_weights=int(len(sample)),
            train_eval_examples=int(config.train_eval_examples or len(dataset.train_labels)),
            train_seconds=result.seconds,
            first_step_seconds=result.first_step_seconds,
            resumed_from_step=result.resumed_from,
        ))
    return MNISTRun(
        records=records, config=config, seed=seed, data=dataset, quantizers=setup.quantizers, estimator=setup.estimator,
        params={name: state.params for name, state in result.states.items()}, initial_params=initial, pairs=setup.pairs,
        levels=levels, train_seconds=result.seconds, seconds=time.perf_counter() - start,
    )


def unit_configs(config: MNISTConfig) -> list[MNISTConfig]:
    """The preset's runs, one per seed x optimizer x length, each a one-seed, one-optimizer config."""
    lengths = config.lengths or (config.steps,)
    return [
        config.replace(seeds=(seed,), optimizers=(optimizer,), steps=steps, lengths=(), workers=1, progress=False)
        for steps in lengths for seed in config.seeds for optimizer in config.optimizers
    ]


def unit_key(unit: MNISTConfig) -> str:
    """The cache key of a one-seed, one-optimizer run: a hash of everything that sets its numbers."""
    described = {name: getattr(unit, name) for name in (*UNIT_FIELDS, "seeds", "optimizers", "steps")}
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=list).encode()).hexdigest()[:16]


_DATASETS: dict[tuple[str, str], data.MNIST] = {}


def run_unit(config: dict[str, Any], checkpoint_dir: str | None = None) -> dict[str, Any]:
    """A sweep task: the record of one one-seed, one-optimizer run (``config`` and the record as JSON:
    the sweep caches it and may run it in another process)."""
    unit = MNISTConfig.model_validate(config)
    key = (unit.source, unit.data_dir)
    if key not in _DATASETS:  # once per worker process
        _DATASETS[key] = data.load_mnist(unit.source, data_dir=unit.data_dir or None)
    run = run_mnist(unit, _DATASETS[key], checkpoint_dir=checkpoint_dir)
    return dataclasses.replace(run.records[0], seconds=run.seconds).to_json()


def run_seeds(config: MNISTConfig, cache_dir: Any = None) -> list[RunRecord]:
    """Every run of ``config`` (seed x optimizer x length), each cached in ``cache_dir`` as it finishes
    (an interrupted preset resumes; long runs also checkpoint inside) and run ``config.workers`` at a
    time: the records, in the order of :func:`unit_configs`."""
    from qatlib.files import to_jsonable

    tasks = []
    for unit in unit_configs(config):
        key = unit_key(unit)
        checkpoints = f"{cache_dir}/{key}-checkpoints" if cache_dir is not None and unit.checkpoint_every else None
        tasks.append(sweep.Task(key, "qatlib.experiments.mnist:run_unit", {"config": to_jsonable(unit), "checkpoint_dir": checkpoints}))
    records = sweep.run_tasks(tasks, cache_dir, workers=config.workers, progress=config.progress, description="MNIST runs")
    return [RunRecord.from_json(record) for record in records]
