"""Presets of the Theorems chapter (Section 5, Appendices C-H).

The chapter trains Q̂-net (2-bit, bin-normalised HTGE with k = 5.5/w_max) and STE-net side by
side (:mod:`qatlib.experiments.twins`) on softmax regression over n of the 60,000 training images of the
shipped full MNIST, in float64, for SGD (Theorem 5.1), SGD with momentum (Theorem D.3) and Adam
(Theorem 5.2); checks the per-step bound at every (weight, step) pair; runs the two cases where it
is not guaranteed (the plain STE as partner, Appendix G; the un-normalised HTGE, α > 1, against
Eq. 6 as printed); and sweeps η over ≥ 4 decades for the O(η²) scaling.

>>> from qatlib.experiments.config import resolve
>>> cfg = resolve(PRESETS, "quick")
>>> len(cfg.sweep_sgd) >= 5 and max(cfg.sweep_sgd) / min(cfg.sweep_sgd) >= 1e4
True
"""

from __future__ import annotations

import math

import pydantic
from pydantic import Field

from qatlib.data import MNIST_TRAIN_SIZE
from qatlib.experiments.config import Config

__all__ = ["TheoremsConfig", "PRESETS", "decades"]


def decades(low: float, high: float, per_decade: int = 2) -> tuple[float, ...]:
    """Log-spaced learning rates from ``low`` to ``high`` with ``per_decade`` points per decade.

    >>> decades(1e-4, 1e-2, 1)
    (0.0001, 0.001, 0.01)
    """
    if not (0 < low < high):
        raise ValueError(f"need 0 < low < high, got {low!r}, {high!r}")
    n = round(math.log10(high / low) * per_decade)
    return tuple(float(f"{low * 10 ** (i / per_decade):.6g}") for i in range(n + 1))


class TheoremsConfig(Config):
    """Configuration of the Theorems chapter.

    Attributes:
      bits, sharpness: the quantizer (2^bits levels on ±√(6/784)) and HTGE's k = sharpness/w_max.
      n_examples, batch_size: how many of the 60,000 training images of the shipped full MNIST
        to use (a shuffled choice; 1 ≤ n_examples ≤ 60,000) and the mini-batch size.
      steps: steps of the three bound-checking runs.
      eta_sgd, eta_momentum, eta_adam: Q̂-net's learning rates for those runs.
      eta_unnormalized: SGD learning rate of the run with the un-normalised HTGE (Appendix H's
        k/cosh² form, slope up to k ≈ 63 at 2 bits, so a ~30× smaller η than eta_sgd).
      momentum, b1, b2: β of SGD with momentum; Adam's β₁, β₂ (the paper's 0.9 and 0.95).
      sweep_sgd, sweep_momentum, sweep_adam: learning rates of the scaling sweeps (≥ 4 decades).
      sweep_steps: steps per sweep run (fixed, so Ē should shrink like η²).
      seed: initial weights and batch order.
    """

    bits: int = Field(2, ge=2)  # the theorems need finite bins
    sharpness: float = Field(5.5, gt=0, allow_inf_nan=False)
    n_examples: int = Field(5000, ge=1, le=MNIST_TRAIN_SIZE)  # of the 60,000 training images
    batch_size: int = Field(250, ge=1)
    steps: int = Field(300, ge=1)
    eta_sgd: float = Field(1e-2, gt=0, allow_inf_nan=False)
    eta_momentum: float = Field(1e-3, gt=0, allow_inf_nan=False)
    eta_adam: float = Field(1e-4, gt=0, allow_inf_nan=False)
    eta_unnormalized: float = Field(3e-4, gt=0, allow_inf_nan=False)
    momentum: float = Field(0.9, ge=0, lt=1)
    b1: float = Field(0.9, ge=0, lt=1)
    b2: float = Field(0.95, ge=0, lt=1)
    sweep_sgd: tuple[float, ...] = decades(1e-5, 1e-1)
    sweep_momentum: tuple[float, ...] = decades(1e-6, 1e-2)
    sweep_adam: tuple[float, ...] = decades(1e-7, 1e-3)
    sweep_steps: int = Field(100, ge=1)
    seed: int = 0

    @pydantic.field_validator("sweep_sgd", "sweep_momentum", "sweep_adam")
    @classmethod
    def _four_decades(cls, etas: tuple[float, ...], info: pydantic.ValidationInfo) -> tuple[float, ...]:
        if len(etas) < 2 or min(etas) <= 0:
            raise ValueError(f"{info.field_name} needs at least two positive learning rates, got {etas!r}")
        if max(etas) / min(etas) < 1e4:
            raise ValueError(f"{info.field_name} must span at least 4 decades, got {min(etas)!r}..{max(etas)!r}")
        return etas

    @pydantic.model_validator(mode="after")
    def _batch_fits(self) -> TheoremsConfig:
        if self.batch_size > self.n_examples:
            raise ValueError(f"batch_size {self.batch_size} exceeds n_examples {self.n_examples}")
        return self


PRESETS: dict[str, TheoremsConfig] = {
    # quick: CI/nbval. 2,000 real MNIST digits, 50-step runs, 5-point sweeps of 50 steps over
    # 4 decades (runs and sweeps share compilations); ~25 s (incl. JIT) on 2 CPU cores.
    "quick": TheoremsConfig(
        n_examples=2000,
        batch_size=200,
        steps=50,
        sweep_sgd=decades(1e-5, 1e-1, 1),
        sweep_momentum=decades(1e-6, 1e-2, 1),
        sweep_adam=decades(1e-7, 1e-3, 1),
        sweep_steps=50,
    ),
    # default: the book build. 5,000 of the 60,000 training digits, 300-step runs, 9-point sweeps
    # of 100 steps over 4 decades; ~1 min on 2 idle CPU cores (2 min on a busy machine).
    "default": TheoremsConfig(),
    # paper: the paper's batch of 600 and 1,000-step runs, sweeps over 6 decades with 3 points per
    # decade; ~5 min on 2 CPU cores (measured 299 s, papermill, busy machine).
    "paper": TheoremsConfig(
        batch_size=600,
        steps=1000,
        sweep_sgd=decades(1e-6, 1.0, 3),
        sweep_momentum=decades(1e-7, 1e-1, 3),
        sweep_adam=decades(1e-8, 1e-2, 3),
        sweep_steps=300,
    ),
}
