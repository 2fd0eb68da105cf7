"""Presets of the ResNet50 chapter: the identical-initial-period experiment (Section 6.1, Tables 4-5).

Every preset runs the same code (:func:`qatlib.branching.run_experiment`): Q-hat-net (bin-normalised
HTGE, sharpness 5.5 / w_max, 2-bit kernels over their He-uniform ranges) trains alone for the first
10% of the steps; then the SGD branches (baseline STE-net, lr-tweak, unadjusted) and the Adam
branches (baseline, lr-tweak) continue in lock step with it on the same batches.

* ``quick`` -- CI and nbval: a *reduced* ResNet (one bottleneck block of the Flax example, 4
  filters: the ResNet50 code path, model, trainer, branch point and metrics, at a tiny size) on
  full MNIST at 32x32x3, 12 steps of batch 8 for SGD and for Adam, accuracy on 200 training and
  200 test images. Checks the plumbing, not the paper's numbers. Run time on the project's 2-core
  CPU: to be re-measured with the full-MNIST data (almost all of it is XLA compilation).
* ``default`` -- the book build: the full ResNet50 (3-4-6-3, 64 filters, 23.5M quantized weights)
  on full MNIST (the 60,000 training images, zero-padded to 32x32x3: not ImageNet), 160 steps of
  batch 16 (2,560 images, 0.04 of an epoch; the first 16 steps shared) for SGD and for Adam: 4 + 3
  ResNet50s in lock step; Table 5 accuracy on the first 1,000 training and the first 1,000 test
  images. Earlier timings and results were measured on the old 4,000-digit split and are stale:
  run time and results to be re-measured (the step count, and so the training cost, is unchanged).
* ``state_map_control`` -- ``default`` plus one control branch per optimizer: the baseline
  STE-net with Q-hat-net's optimizer state copied *unmapped* (``baseline_raw_state``), to measure
  what the momentum / Adam-moment map of :mod:`qatlib.branching` buys. A results artefact
  (``results/resnet50/state_map_control``) that the chapter renders; not run by the book build.
* ``mnist_10_epochs`` -- the full ResNet50 on full MNIST at 32x32x3 for 10 epochs of batch 128
  (``10 * (60000 // 128)`` = 4,680 steps), the first epoch shared (``shared_fraction`` 0.1, the
  paper's identical 10%), SGD and Adam, ``conv_impl="lax"``, Table 5 accuracy on the first
  10,000 training images and all 10,000 test images, a checkpoint every epoch (a rerun resumes).
  Meant for a GPU machine, where it takes minutes; hours on the project's 2-core CPU. Results to
  be measured.
* ``paper`` -- the paper's configuration for a user with ImageNet prepared for tfds and an
  accelerator: imagenet2012 at 224x224, 100 epochs of batch 128 (the Flax example's defaults),
  10 shared epochs, checkpoints every epoch, data parallel over all local devices. Never run for
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

import dataclasses

from qatlib.imagenet import MNIST_TRAIN_SIZE
from qatlib.resnet import RESNET50_STAGE_SIZES

__all__ = ["ResNet50Config", "PRESETS"]


@dataclasses.dataclass(frozen=True)
class ResNet50Config:
    """One run of the ResNet50 identical-initial-period experiment."""

    # data
    dataset: str = "mnist32"  # "mnist32" (full MNIST, 32x32x3: not ImageNet) | "imagenet2012" (tfds, prepared)
    data_dir: str = ""  # tfds data_dir for imagenet2012 ("" -> tfds default)
    batch_size: int = 16
    # training images and evaluation (MNIST: test) images, each, for Table 5 accuracy and loss: the
    # first eval_examples of each split, or the whole split if it is smaller
    eval_examples: int = 1000
    # model
    stage_sizes: tuple[int, ...] = RESNET50_STAGE_SIZES
    num_filters: int = 64
    bits: int = 2
    conv_impl: str = "im2col"  # "im2col" on CPU, "lax" on GPU/TPU
    # estimator Q-hat
    estimator: str = "htge"
    sharpness: float = 5.5
    estimator_scale: str = "range"
    normalize: bool = True
    # optimisation
    optimizers: tuple[str, ...] = ("sgd", "adam")
    sgd_lr: float = 1e-3
    adam_lr: float = 1e-4
    momentum: float = 0.9
    b1: float = 0.9
    b2: float = 0.95
    warmup_fraction: float = 0.05
    total_steps: int = 160
    shared_fraction: float = 0.1
    controls: tuple[str, ...] = ()  # extra branches beyond the paper's: "baseline_raw_state"
    seed: int = 0
    # running
    log_every: int = 10
    num_devices: int = 0  # 0 -> all local devices
    checkpoint_every: int = 0  # 0 -> no checkpoints
    # "" -> results/resnet50/<preset>/checkpoints when checkpoint_every > 0; a rerun resumes from it
    # (delete it to start over: a checkpoint only fits the config that wrote it)
    checkpoint_dir: str = ""

    def validate(self) -> None:
        """ValueError for a config that cannot run, before any work starts.

        >>> ResNet50Config(batch_size=100_000).validate()
        Traceback (most recent call last):
        ...
        ValueError: batch_size must be <= 60000 (MNIST's training images) for mnist32, got 100000
        """
        if self.dataset not in ("mnist32", "imagenet2012"):
            raise ValueError(f"dataset must be 'mnist32' or 'imagenet2012', got {self.dataset!r}")
        for name in ("batch_size", "eval_examples", "num_filters", "bits", "total_steps", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.stage_sizes or min(self.stage_sizes) < 1:
            raise ValueError(f"stage_sizes must be positive, got {self.stage_sizes}")
        if self.total_steps < 2:
            raise ValueError("total_steps must be >= 2 (a shared period and at least one branched step)")
        if not 0.0 < self.shared_fraction < 1.0:
            raise ValueError(f"shared_fraction must be in (0, 1), got {self.shared_fraction}")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        if self.dataset == "mnist32" and self.batch_size > MNIST_TRAIN_SIZE:
            raise ValueError(
                f"batch_size must be <= {MNIST_TRAIN_SIZE} (MNIST's training images) for mnist32, got {self.batch_size}"
            )
        unknown = set(self.optimizers) - {"sgd", "adam"}
        if unknown or not self.optimizers:
            raise ValueError(f"optimizers must be a non-empty subset of ('sgd', 'adam'), got {self.optimizers}")
        if set(self.controls) - {"baseline_raw_state"}:
            raise ValueError(f"controls must be a subset of ('baseline_raw_state',), got {self.controls}")
        if self.conv_impl not in ("im2col", "lax"):
            raise ValueError(f"conv_impl must be 'im2col' or 'lax', got {self.conv_impl!r}")
        if min(self.sgd_lr, self.adam_lr) <= 0:
            raise ValueError("learning rates must be positive")
        if self.num_devices < 0 or self.checkpoint_every < 0:
            raise ValueError("num_devices and checkpoint_every must be >= 0")

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
