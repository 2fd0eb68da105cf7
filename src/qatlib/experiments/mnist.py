"""Presets of the MNIST chapter (paper Section 6, Tables 3-5, Figure 3).

Every preset runs the same code (:func:`run_mnist`) on full MNIST (the
project's shipped, MD5-verified IDX files: the 60,000 training images for training, the 10,000 test
images for evaluation, as in the paper): seven copies of the Chollet convnet (2-bit kernels over
their He-uniform ranges, Q-hat = the paper's threshold-centred, bin-normalised HTGE with sharpness
5.5 / w_max per layer) train in lock step on identical batches: for SGD (momentum 0.9) Q-hat-net,
STE-net (M-initialised, lr alpha*eta), Q-hat-net with lr 1.01*eta and the unadjusted STE-net; for
Adam (beta1 0.9, beta2 0.95) Q-hat-net, STE-net and the lr-tweaked Q-hat-net. The learning rate is
the peak of a linear warm-up over 2% of the steps followed by cosine decay.

* ``quick`` -- nbval and CI: 40 steps of batch 64 (2,560 of the training images). Under a minute
  on the project's 2-core CPU, most of it compilation. Checks the plumbing; the nets reach only
  ~60% accuracy, so the numbers are not the paper's.
* ``default`` -- the book build: 400 steps of batch 128 (0.85 epoch). A few minutes on the
  project's 2-core CPU; its committed artefact is ``results/mnist/default/metrics.json``.
* ``paper`` -- the authors' configuration: 10 epochs of 100 steps of batch 600 (1,000 steps, a fresh
  permutation per epoch), SGD momentum 0.9 at lr 1e-3 and Adam (beta2 0.95) at 1e-4, 2% warm-up
  then cosine. Gradients in chunks of 25 examples (``microbatch``: the same mean gradient to float32
  rounding, 2-3x faster on a CPU). Checkpointed every epoch: an interrupted ``python -m qatlib run
  mnist --preset paper`` resumes where it stopped. Its committed artefact is
  ``results/mnist/paper/metrics.json``; ``benchmarks/bench_mnist_step.py`` times it. The paper's values (Tables 4, 5): E_bar 0.515%
  / 0.572% / 2.52% (SGD baseline / lr-tweak / unadjusted), 2.81% / 1.74% (Adam), agreement
  98.31% / 98.66% / 96.53% and 94.42% / 95.4%, accuracy ~97%.
* ``paper_gpu`` -- the ``paper`` preset as a GPU runs it: whole-batch gradients (chunks would leave
  a GPU idle), cuDNN convolutions (``conv_impl="lax"``), no checkpoints (a lent GPU machine is given
  back). The same schedule and nets; other summation orders, so its numbers differ from the CPU
  artefact's in the last bits, which 1,000 steps amplify. Its committed artefact
  ``results/mnist/paper_gpu/metrics.json`` is made by ``scripts/gpu_artefacts.sh``; the chapter
  compares its verdicts with the CPU artefact's.
* ``sgd_no_momentum`` -- a control for the chapter: the ``default`` run with plain SGD (momentum 0,
  Theorem 5.1's setting) at lr 1e-2, the same step size eta / (1 - momentum) as the paper's
  momentum 0.9 at 1e-3; SGD experiments only. Committed as
  ``results/mnist/sgd_no_momentum/metrics.json``.
* ``level_centred_control`` -- the ``default`` run with Q-hat' centred on the levels instead of the
  thresholds (the shape this project used before it followed the paper's Appendix B): how much
  does the estimator's phase matter? Committed as ``results/mnist/level_centred_control/``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import pydantic
from pydantic import Field

import qatlib
from qatlib import data, estimators, metrics, models
from qatlib.experiments.comparison import EVAL_MICROBATCH, LR_TWEAK, Pair, comparison, conv_layers, pair_metrics, q_hat, ste_partner
from qatlib.experiments.config import Config, EstimatorName, check_microbatch
from qatlib.quantizers import quantized_leaves
from qatlib.training import Checkpointer, lockstep, optimizers

__all__ = ["MNISTConfig", "PRESETS", "MNISTRun", "conv_layers", "run_mnist"]

PyTree = Any


class MNISTConfig(Config):
    """One lock-step comparison run of the MNIST chapter (every field validated on construction)."""

    # data: full MNIST, 60,000 training / 10,000 test images
    source: Literal["idx", "tfds"] = "idx"  # the shipped, MD5-verified IDX files | prepared tfds MNIST
    data_seed: int = 0  # batch order (one permutation per epoch)
    data_dir: str = ""  # "" -> data/mnist (idx) or $TFDS_DATA_DIR / ~/tensorflow_datasets (tfds)
    # model and estimator
    bits: int = Field(2, ge=1)
    estimator: EstimatorName = "htge"  # Q-hat: any registered estimator by name (HTGE reads sharpness and centre)
    sharpness: float = Field(5.5, gt=0, allow_inf_nan=False)  # HTGE k = sharpness / w_max per layer
    centre: Literal["threshold", "level"] = "threshold"  # where Q-hat' peaks (the paper's | a control)
    conv_impl: Literal["im2col", "lax"] = "im2col"
    init_seed: int = 0
    # optimisation
    optimizers: tuple[Literal["sgd", "adam"], ...] = ("sgd", "adam")
    steps: int = Field(400, ge=1)
    batch_size: int = Field(128, ge=1)
    sgd_lr: float = Field(1e-3, gt=0, allow_inf_nan=False)
    sgd_momentum: float = Field(0.9, ge=0, lt=1)  # the paper's; 0 gives plain SGD (Eq. 3, Theorem 5.1)
    adam_lr: float = Field(1e-4, gt=0, allow_inf_nan=False)
    lr_tweak: float = Field(LR_TWEAK, gt=0)  # the lr-tweak net's learning-rate factor
    # measurement
    log_every: int = Field(20, ge=1)  # E^(t) every this many steps
    tracked_weights: int = Field(4096, ge=0)  # weights whose level sequence is recorded every step
    eval_batch_size: int = Field(1000, ge=1)
    # speed: examples per gradient chunk (0 = the whole batch at once). The chunks' mean gradient
    # equals the batch's to float32 rounding and is 2-3x faster on a CPU at batch 600, but training
    # amplifies the last bits, so a run's final metrics move (see the `paper` preset's note); the
    # committed CPU artefacts were made with 0 and reproduce bit for bit with it.
    microbatch: int = Field(0, ge=0)
    train_eval_examples: int = Field(0, ge=0)  # training images for Table 5's train columns (0 = all)
    progress: bool = True
    # resuming: save everything every this many steps (0 = never); a rerun resumes from the newest
    checkpoint_every: int = Field(0, ge=0)

    @pydantic.model_validator(mode="after")
    def _microbatch_divides(self) -> "MNISTConfig":
        check_microbatch(self.microbatch, self.batch_size)
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


PRESETS: dict[str, MNISTConfig] = {
    "quick": MNISTConfig(
        steps=40, batch_size=64, log_every=10, tracked_weights=1024, train_eval_examples=1000, progress=False
    ),
    "default": MNISTConfig(checkpoint_every=100),
    "paper": MNISTConfig(
        steps=1000, batch_size=600, microbatch=25, log_every=50, tracked_weights=8192, checkpoint_every=100
    ),
    "sgd_no_momentum": MNISTConfig(optimizers=("sgd",), sgd_momentum=0.0, sgd_lr=1e-2, checkpoint_every=100),
    "level_centred_control": MNISTConfig(centre="level", checkpoint_every=100),
}
PRESETS["paper_gpu"] = PRESETS["paper"].model_copy(update={"microbatch": 0, "conv_impl": "lax", "checkpoint_every": 0})


@dataclasses.dataclass
class MNISTRun:
    """Everything the MNIST chapter shows: JSON-ready metrics plus arrays for the figures."""

    metrics: dict[str, Any]
    config: MNISTConfig
    data: data.MNIST
    quantizers: PyTree
    estimator: estimators.Estimator
    params: dict[str, PyTree]  # final params by net name
    initial_params: dict[str, PyTree]
    pairs: list[Pair]
    history: dict[str, Any]  # E^(t) along training
    levels: dict[str, np.ndarray] | None  # tracked level sequences (steps + 1, tracked) by net
    train_seconds: float
    seconds: float

    def layer_quantizers(self) -> dict[str, Any]:
        """``{layer name: quantizer}`` of the quantized kernels (e.g. ``{"conv_0": ...}``)."""
        return {path.split("/")[0]: q for path, _, q in quantized_leaves(self.quantizers, self.quantizers)}


def run_mnist(
    config: MNISTConfig, dataset: data.MNIST | None = None, *, checkpoint_dir: Any = None
) -> MNISTRun:
    """Run the lock-step comparison of ``config`` and measure Tables 3-5, Figure 3 and E^(t).

    With ``config.checkpoint_every > 0`` and a ``checkpoint_dir``, everything is saved there every
    that many steps, and a rerun with the same config resumes from the newest checkpoint and ends
    bit-identical to an uninterrupted run (:func:`qatlib.training.lockstep.train_lockstep`).
    """
    start = time.perf_counter()
    if dataset is None:
        dataset = data.load_mnist(config.source, data_dir=config.data_dir or None)
    estimator = q_hat(config.sharpness, config.centre, name=config.estimator)
    model = models.CholletConvNet(bits=config.bits, estimator=estimator, conv_impl=config.conv_impl)
    params0 = jax.jit(model.init)(jax.random.key(config.init_seed), jnp.zeros((1, 28, 28, 1), jnp.float32))["params"]
    quantizers = models.quantizer_tree(params0, config.bits)
    convs = conv_layers(quantizers)
    learning_rates = {"sgd": config.sgd_lr, "adam": config.adam_lr}

    nets, states, pairs = [], [], []
    optimizer_factories = {
        "sgd": functools.partial(optimizers.make_optimizer, momentum=config.sgd_momentum),
        "adam": optimizers.make_optimizer,
    }
    for optimizer in config.optimizers:
        n, s, p = comparison(
            optimizer, model, params0, quantizers, estimator, learning_rates[optimizer], config.steps,
            lr_tweak=config.lr_tweak, make_optimizer=optimizer_factories[optimizer],
        )
        nets += n
        states += s
        pairs += p
    names = [net.name for net in nets]
    initial_params = {name: state.params for name, state in zip(names, states, strict=True)}

    total_weights = sum(int(math.prod(leaf.shape)) for _, leaf, _ in quantized_leaves(params0, quantizers))
    tracked = min(config.tracked_weights, total_weights)
    sample = np.sort(np.random.default_rng(config.init_seed).choice(total_weights, tracked, replace=False))

    def observe(before: list[lockstep.TrainState], after: list[lockstep.TrainState]) -> dict[str, Any]:
        # Per step: each net's path length over the conv kernels (the authors' denominator) and the
        # quantized levels of the tracked weights.
        observation: dict[str, Any] = {
            "path_conv": jnp.stack([metrics.path_length(b.params, a.params, convs) for b, a in zip(before, after, strict=True)])
        }
        if tracked:
            observation["levels"] = {
                name: metrics.flat_level_indices(state.params, quantizers, sample) for name, state in zip(names, after, strict=True)
            }
        return observation

    def on_log(step: int, by_name: dict[str, lockstep.TrainState]) -> dict[str, float]:
        params = {name: state.params for name, state in by_name.items()}
        values = {}
        for pair in pairs:
            for key, value in pair_metrics(pair, params, quantizers, estimator).items():
                values[f"{pair.optimizer}/{pair.experiment}/{key}"] = value
        return values

    checkpointer = None
    if config.checkpoint_every and checkpoint_dir is not None:
        checkpointer = Checkpointer(checkpoint_dir, every=config.checkpoint_every)
    result = lockstep.train_lockstep(
        nets,
        states,
        lambda first: data.batch_stream(
            dataset.train_images, dataset.train_labels, config.batch_size, config.data_seed, start_step=first
        ),
        config.steps,
        observe=observe,
        on_log=on_log,
        log_every=config.log_every,
        progress=config.progress,
        description=f"{len(nets)} nets in lock step",
        checkpointer=checkpointer,
        microbatch=config.microbatch,
    )
    if checkpointer is not None:
        checkpointer.close()
    final = {name: state.params for name, state in result.states.items()}

    history: dict[str, Any] = {"steps": [int(s) for s in result.log_steps]}
    for pair in pairs:
        history.setdefault(pair.optimizer, {})[pair.experiment] = {
            key: [float(v) for v in result.log_values[f"{pair.optimizer}/{pair.experiment}/{key}"]]
            for key in ("E_bar", "E_bar_conv", "agreement")
        }
    path_conv = dict(zip(names, np.asarray(result.observations["path_conv"], np.float64).sum(axis=0), strict=True))

    levels = None
    if tracked:
        levels = {
            name: np.concatenate(
                [
                    np.asarray(metrics.flat_level_indices(initial_params[name], quantizers, sample))[None],
                    np.asarray(result.observations["levels"][name]),
                ]
            )
            for name in names
        }

    # Table 5: accuracy and loss on the training images and the 10,000 test images (eval mode).
    logits = {}
    accuracy: dict[str, dict[str, dict[str, float]]] = {}
    train_count = config.train_eval_examples or len(dataset.train_labels)
    # the forward pass is Q(w) whatever the estimator; in chunks: the same logits, about 4x faster
    evaluate = lockstep.make_evaluator(model, microbatch=EVAL_MICROBATCH)
    for net in nets:
        state = result.states[net.name]
        tr = evaluate(state, data.eval_batches(dataset.train_images[:train_count], dataset.train_labels[:train_count], config.eval_batch_size))
        va = evaluate(state, data.eval_batches(dataset.val_images, dataset.val_labels, config.eval_batch_size))
        logits[net.name] = va["logits"]
        optimizer, role = net.name.split("/")
        accuracy.setdefault(optimizer, {})[role] = {
            "train_acc": tr["accuracy"],
            "train_loss": tr["loss"],
            "val_acc": va["accuracy"],
            "val_loss": va["loss"],
        }

    table: dict[str, Any] = {}
    for pair in pairs:
        # Ē and agreement of the final nets: the last logging point is the last step (log_points).
        prefix = f"{pair.optimizer}/{pair.experiment}/"
        entry: dict[str, Any] = {
            key.removeprefix(prefix): float(column[-1]) for key, column in result.log_values.items() if key.startswith(prefix)
        }
        mapping = estimator if pair.mapped else None
        # The authors' code's measure: Σ|M(w_a) − w_b|/w_max over conv kernels / net b's conv path length.
        entry["authors_measure"] = metrics.summed_alignment_error(
            final[pair.net_a], final[pair.net_b], convs, mapping
        ) / max(path_conv[pair.net_b], 1e-30)
        entry["path_length_conv"] = path_conv[pair.net_b]
        entry["E_bar_per_layer"] = metrics.E_bar_per_layer(final[pair.net_a], final[pair.net_b], quantizers, mapping)
        entry["agreement_per_layer"] = metrics.agreement_per_layer(final[pair.net_a], final[pair.net_b], quantizers)
        entry["prediction_agreement"] = metrics.prediction_agreement(logits[pair.net_a], logits[pair.net_b])
        entry["nets"] = [pair.net_a, pair.net_b]
        if levels is not None:
            entry["mirror_room"] = metrics.crossing_statistics(levels[pair.net_a], levels[pair.net_b])
        table.setdefault(pair.optimizer, {})[pair.experiment] = entry

    layer_quantizers = {path: q for path, _, q in quantized_leaves(params0, quantizers)}
    output = {
        **table,
        "accuracy": accuracy,
        "E_t": history,
        "alpha": {path: qatlib.alpha(q, estimator) for path, q in layer_quantizers.items()},
        "w_max": {path: q.representable_range[1] for path, q in layer_quantizers.items()},
        "estimator": {"q_hat": repr(estimator), "ste_net": repr(ste_partner(estimator, quantizers))},
        "data": {
            "source": dataset.source,
            "note": dataset.note,
            "train": len(dataset.train_labels),
            "val": len(dataset.val_labels),
        },
        "tracked_weights": int(tracked),
        "train_seconds": result.seconds,
        "first_step_seconds": result.first_step_seconds,
        "resumed_from_step": result.resumed_from,
        "train_eval_examples": int(train_count),
    }
    return MNISTRun(
        metrics=output,
        config=config,
        data=dataset,
        quantizers=quantizers,
        estimator=estimator,
        params=final,
        initial_params=initial_params,
        pairs=pairs,
        history=history,
        levels=levels,
        train_seconds=result.seconds,
        seconds=time.perf_counter() - start,
    )

