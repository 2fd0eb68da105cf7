"""The ResNet50 chapter's configuration and presets.

Presets
-------
Every preset runs the same code (:func:`run_experiment`): Q-hat-net (bin-normalised
HTGE, sharpness 5.5 / w_max, 2-bit kernels over their He-uniform ranges) trains alone for the first
10% of the steps; then the SGD branches (baseline STE-net, lr-tweak, unadjusted) and the Adam
branches (baseline, lr-tweak) continue in lock step with it on the same batches.

* ``quick`` -- CI and nbval: a *reduced* ResNet (one bottleneck block of the Flax example, 4
  filters: the ResNet50 code path, model, trainer, branch point and metrics, at a tiny size) on
  full MNIST at 32x32x3, 12 steps of batch 8 for SGD and for Adam, accuracy on 200 training and
  200 test images. Checks the plumbing, not the paper's numbers (almost all of its run time is XLA
  compilation).
* ``default`` -- the book build: the full ResNet50 (3-4-6-3, 64 filters, 23.5M quantized weights)
  on full MNIST (the 60,000 training images, zero-padded to 32x32x3: not ImageNet), 160 steps of
  batch 16 (2,560 images, 0.04 of an epoch; the first 16 steps shared) for SGD and for Adam: 4 + 3
  ResNet50s in lock step; Table 5 accuracy on the first 1,000 training and the first 1,000 test
  images. Its committed artefact records its wall time and machine in its provenance.
* ``default_seeds`` -- ``default`` over seeds 0-2, the artefact the chapter's verdicts rest on.
* ``state_map_control`` -- ``default`` plus one control branch per optimizer: the baseline
  STE-net with Q-hat-net's optimizer state copied *unmapped* (``baseline_raw_state``), to measure
  what the momentum / Adam-moment map of :mod:`qatlib.training.branch` buys. A results artefact
  (``results/resnet50/state_map_control``) that the chapter renders; not run by the book build.
* ``mnist_10_epochs`` -- the full ResNet50 on full MNIST at 32x32x3 for 10 epochs of batch 128
  (``10 * (60000 // 128)`` = 4,680 steps), the first epoch shared (``shared_fraction`` 0.1, the
  paper's identical 10%), SGD and Adam, ``conv_impl="lax"``, Table 5 accuracy on the first
  10,000 training images and all 10,000 test images, a checkpoint every epoch (a rerun resumes).
  Meant for a GPU machine, where it takes minutes; hours on the project's 2-core CPU. Not run for
  this book.
* ``paper`` -- the paper's configuration for a user with ImageNet prepared for tfds and an
  accelerator: imagenet2012 at 224x224, 100 epochs of batch 128 (the Flax example's defaults),
  10 shared epochs, checkpoints every epoch, data parallel over every device of every process
  (one process per host; the README's "The paper preset on many hosts"). Never run for
  this book (no accelerator was available); days on one GPU, the paper used a TPU. Expected:
  Table 4 (right) E_bar 5.42% / 5.46% / 7.88% (SGD) and 7.18% / 4.99% (Adam); Table 5 (right)
  train accuracy around 69%.

Learning rates are the paper's: 1e-3 (SGD, momentum 0.9) and 1e-4 (Adam, beta1 0.9, beta2
0.95) as the peak of a linear warm-up over 5% of the steps (the Flax example's 5 of 100 epochs)
and cosine decay to 0. Differences from the Flax example, kept to stay inside the paper's theory:
plain (not Nesterov) momentum and no L2 weight decay (the example uses 1e-4), float32 throughout,
and the learning rate is not rescaled by batch/256.

>>> cfg = PRESETS["mnist_10_epochs"]
>>> cfg.total_steps, round(cfg.shared_fraction * cfg.total_steps), cfg.checkpoint_every  # 1 epoch = 468 steps
(4680, 468, 468)
"""

from __future__ import annotations

from typing import Any, Literal

import jax
import pydantic
from pydantic import Field

from qatlib.data import MNIST_TRAIN_SIZE
from qatlib.experiments.comparison import EXPERIMENTS
from qatlib.experiments.config import Config, EstimatorName
from qatlib.models.resnet import RESNET50_STAGE_SIZES

PyTree = Any
Array = jax.Array

BRANCHES = EXPERIMENTS  # the branches of each optimizer are the MNIST chapter's experiments
#: Opt-in control: the baseline STE-net with Q-hat-net's optimizer state copied unmapped, to
#: measure what the state map buys (not one of the paper's experiments).
CONTROLS = ("baseline_raw_state",)


class ResNet50Config(Config):
    """One run of the ResNet50 identical-initial-period experiment (validated on construction).

    >>> from qatlib.experiments.config import resolve
    >>> resolve(PRESETS, "default", {"batch_size": 100_000})
    Traceback (most recent call last):
    ...
    ValueError: bad parameter for preset 'default': Value error, batch_size must be <= 60000 (MNIST's training images) for mnist32, got 100000
    """

    # data
    dataset: Literal["mnist32", "imagenet2012"] = "mnist32"  # full MNIST at 32x32x3 (not ImageNet) | tfds
    data_dir: str = ""  # tfds data_dir for imagenet2012 ("" -> tfds default)
    # imagenet2012: the training split's even parts, each feeding its rows of every batch; each
    # process reads whole parts, so the process count must divide it (and it the batch size)
    read_shards: int = Field(8, ge=1)
    batch_size: int = Field(16, ge=1)
    # training images and evaluation (MNIST: test) images, each, for Table 5 accuracy and loss: the
    # first eval_examples of each split, or the whole split if it is smaller
    eval_examples: int = Field(1000, ge=1)
    # model
    stage_sizes: tuple[pydantic.PositiveInt, ...] = Field(RESNET50_STAGE_SIZES, min_length=1)
    num_filters: int = Field(64, ge=1)
    bits: int = Field(2, ge=1)
    conv_impl: Literal["im2col", "lax"] = "im2col"  # "im2col" on CPU, "lax" on GPU/TPU
    # estimator Q-hat: any registered estimator by name; HTGE reads sharpness / scale / normalize
    estimator: EstimatorName = "htge"
    sharpness: float = Field(5.5, gt=0, allow_inf_nan=False)
    estimator_scale: Literal["weight", "bin", "range"] = "range"
    normalize: bool = True
    # optimisation
    optimizers: tuple[Literal["sgd", "adam"], ...] = Field(("sgd", "adam"), min_length=1)
    sgd_lr: float = Field(1e-3, gt=0, allow_inf_nan=False)
    adam_lr: float = Field(1e-4, gt=0, allow_inf_nan=False)
    momentum: float = Field(0.9, ge=0, lt=1)
    b1: float = Field(0.9, ge=0, lt=1)
    b2: float = Field(0.95, ge=0, lt=1)
    warmup_fraction: float = Field(0.05, ge=0, lt=1)
    total_steps: int = Field(160, ge=2)  # a shared period and at least one branched step
    shared_fraction: float = Field(0.1, gt=0, lt=1)
    controls: tuple[Literal["baseline_raw_state"], ...] = ()  # extra branches beyond the paper's
    seed: int = 0  # the initialisation and the batch order
    seeds: tuple[int, ...] = ()  # a seeded preset: one run per seed (each with `seed` set), one record per seed x optimizer
    # running
    log_every: int = Field(10, ge=1)
    num_devices: int = Field(0, ge=0)  # 0 -> all local devices
    checkpoint_every: int = Field(0, ge=0)  # 0 -> no checkpoints
    # "" -> runs/checkpoints/resnet50/<preset>/<key> when checkpoint_every > 0; a rerun resumes from it
    checkpoint_dir: str = ""

    @pydantic.model_validator(mode="after")
    def _batch_fits(self) -> ResNet50Config:
        if self.dataset == "mnist32" and self.batch_size > MNIST_TRAIN_SIZE:
            raise ValueError(
                f"batch_size must be <= {MNIST_TRAIN_SIZE} (MNIST's training images) for mnist32, got {self.batch_size}"
            )
        if self.dataset == "imagenet2012" and self.batch_size % self.read_shards:
            raise ValueError(
                f"batch_size must be a multiple of read_shards ({self.read_shards}) for imagenet2012, got {self.batch_size}"
            )
        return self

    @property
    def is_full_resnet50(self) -> bool:
        return tuple(self.stage_sizes) == RESNET50_STAGE_SIZES and self.num_filters == 64


PRESETS: dict[str, ResNet50Config] = {
    "quick": ResNet50Config(
        stage_sizes=(1,),
        num_filters=4,
        batch_size=8,
        total_steps=12,
        log_every=2,
        eval_examples=200,
    ),
    "default": ResNet50Config(),
    "state_map_control": ResNet50Config(controls=("baseline_raw_state",)),
    "default_seeds": ResNet50Config(seeds=(0, 1, 2)),
    "mnist_10_epochs": ResNet50Config(
        batch_size=128,
        total_steps=10 * (MNIST_TRAIN_SIZE // 128),
        shared_fraction=0.1,
        conv_impl="lax",
        log_every=100,
        eval_examples=10_000,
        checkpoint_every=MNIST_TRAIN_SIZE // 128,
    ),
    "paper": ResNet50Config(
        dataset="imagenet2012",
        batch_size=128,
        total_steps=100 * (1_281_167 // 128),
        conv_impl="lax",
        eval_examples=50_000,
        log_every=1_000,
        checkpoint_every=1_281_167 // 128,
    ),
}
