"""Presets of the MNIST chapter (paper Section 6, Tables 3-5, Figure 3).

Every preset runs the same code (:func:`qatlib.experiments.run_mnist`) on full MNIST (the
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
  then cosine. Checkpointed every epoch: an interrupted ``python -m qatlib run mnist --preset
  paper`` resumes where it stopped. About an hour on the project's 2-core CPU; its committed
  artefact is ``results/mnist/paper/metrics.json``. The paper's values (Tables 4, 5): E_bar 0.515%
  / 0.572% / 2.52% (SGD baseline / lr-tweak / unadjusted), 2.81% / 1.74% (Adam), agreement
  98.31% / 98.66% / 96.53% and 94.42% / 95.4%, accuracy ~97%.
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

__all__ = ["MNISTConfig", "PRESETS"]


@dataclasses.dataclass(frozen=True)
class MNISTConfig:
    """One lock-step comparison run of the MNIST chapter."""

    # data: full MNIST, 60,000 training / 10,000 test images
    source: str = "idx"  # "idx" (the shipped, MD5-verified IDX files) | "tfds" (prepared tfds MNIST)
    data_seed: int = 0  # batch order (one permutation per epoch)
    data_dir: str = ""  # "" -> data/mnist (idx) or $TFDS_DATA_DIR / ~/tensorflow_datasets (tfds)
    # model and estimator
    bits: int = 2
    sharpness: float = 5.5  # HTGE k = sharpness / w_max per layer, bin-normalised
    centre: str = "threshold"  # where Q-hat' peaks: "threshold" (the paper's) | "level" (a phase control)
    conv_impl: str = "im2col"
    init_seed: int = 0
    # optimisation
    optimizers: tuple[str, ...] = ("sgd", "adam")
    steps: int = 400
    batch_size: int = 128
    sgd_lr: float = 1e-3
    sgd_momentum: float = 0.9  # the paper's; 0 gives plain SGD (Eq. 3), the setting of Theorem 5.1
    adam_lr: float = 1e-4
    lr_tweak: float = 1.01  # the lr-tweak net's learning-rate factor
    # measurement
    log_every: int = 20  # E^(t) every this many steps
    tracked_weights: int = 4096  # weights whose level sequence is recorded every step (0 = none)
    eval_batch_size: int = 1000
    train_eval_examples: int = 0  # training images for Table 5's train columns (0 = all)
    progress: bool = True
    # resuming: save everything every this many steps (0 = never); a rerun resumes from the newest
    checkpoint_every: int = 0

    def validate(self) -> None:
        """ValueError for a config that cannot run, before any work starts."""
        if self.source not in ("idx", "tfds"):
            raise ValueError(f"source must be 'idx' or 'tfds', got {self.source!r}")
        if self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be >= 0 (0 = no checkpoints), got {self.checkpoint_every}")
        for name in ("steps", "batch_size", "bits", "log_every", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.train_eval_examples < 0:
            raise ValueError(f"train_eval_examples must be >= 0, got {self.train_eval_examples}")
        if self.tracked_weights < 0:
            raise ValueError(f"tracked_weights must be >= 0, got {self.tracked_weights}")
        if not self.optimizers or set(self.optimizers) - {"sgd", "adam"} or len(set(self.optimizers)) != len(
            self.optimizers
        ):
            raise ValueError(f"optimizers must be distinct names from ('sgd', 'adam'), got {self.optimizers}")
        for name in ("sgd_lr", "adam_lr", "sharpness", "lr_tweak"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0.0 <= self.sgd_momentum < 1.0:
            raise ValueError(f"sgd_momentum must be in [0, 1), got {self.sgd_momentum}")
        if self.centre not in ("threshold", "level"):
            raise ValueError(f"centre must be 'threshold' or 'level', got {self.centre!r}")
        if self.conv_impl not in ("im2col", "lax"):
            raise ValueError(f"conv_impl must be 'im2col' or 'lax', got {self.conv_impl!r}")

    def preflight(self) -> None:
        """Before any work: FileNotFoundError when the chosen data is absent, CorruptDataError
        (a ValueError) when a shipped MNIST file fails its checksum."""
        from qatlib import data

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
    "paper": MNISTConfig(steps=1000, batch_size=600, log_every=50, tracked_weights=8192, checkpoint_every=100),
    "sgd_no_momentum": MNISTConfig(optimizers=("sgd",), sgd_momentum=0.0, sgd_lr=1e-2, checkpoint_every=100),
    "level_centred_control": MNISTConfig(centre="level", checkpoint_every=100),
}
