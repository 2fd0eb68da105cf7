"""Presets of the Intuition chapter (Section 4): Figure 1 and the funhouse mirror (Figure 2).

The chapter draws the gradient estimators of Figure 1 from :mod:`qatlib.estimators` (with α of
Eq. 4 printed for each) and runs Q̂-net (HTGE, η) and STE-net (the Appendix G partner, αη,
initialised at M(w⁽⁰⁾)) side by side with plain SGD on softmax regression over n of the 60,000
training images of the shipped full MNIST (:func:`qatlib.experiments.twins.mnist_problem`), to show one
weight and its mirror image crossing bin boundaries at the same steps.

>>> from qatlib.experiments.config import resolve
>>> resolve(PRESETS, "quick").steps
100
"""

from __future__ import annotations

import pydantic
from pydantic import Field

from qatlib.data import MNIST_TRAIN_SIZE
from qatlib.experiments.config import Config

__all__ = ["IntuitionConfig", "PRESETS"]


class IntuitionConfig(Config):
    """Configuration of the Intuition chapter.

    Attributes:
      bits: bits of the multi-bit quantizer drawn in Figure 1 and used for the mirror run.
      sharpness: HTGE sharpness in "range" units (k = sharpness / w_max; the paper's 5.5).
      ede_t: the EDE's t for the binary panel of Figure 1 (Qin et al. 2020 anneal t from 0.1 to 10).
      grid_points: points per curve in Figure 1.
      eta: Q̂-net's SGD learning rate in the mirror run (STE-net uses αη).
      steps: SGD steps of the mirror run.
      batch_size: mini-batch size.
      n_examples: how many of the 60,000 training images of the shipped full MNIST to use
        (a shuffled choice; 1 ≤ n_examples ≤ 60,000).
      n_traced: weights whose full trajectories are kept (the chapter shows one of them, chosen by
        :func:`qatlib.experiments.twins.mirror_candidate`).
      seed: initial weights and batch order.
    """

    bits: int = Field(2, ge=2)  # the multi-bit panels need finite bins
    sharpness: float = Field(5.5, gt=0, allow_inf_nan=False)
    ede_t: float = Field(2.0, gt=0, allow_inf_nan=False)
    grid_points: int = Field(1201, ge=1)
    eta: float = Field(1e-2, gt=0, allow_inf_nan=False)
    steps: int = Field(300, ge=1)
    batch_size: int = Field(250, ge=1)
    n_examples: int = Field(5000, ge=1, le=MNIST_TRAIN_SIZE)  # of the 60,000 training images
    n_traced: int = Field(200, ge=1)
    seed: int = 0

    @pydantic.model_validator(mode="after")
    def _batch_fits(self) -> IntuitionConfig:
        if self.batch_size > self.n_examples:
            raise ValueError(f"batch_size {self.batch_size} exceeds n_examples {self.n_examples}")
        return self


PRESETS: dict[str, IntuitionConfig] = {
    # quick: CI/nbval. Three 100-step SGD runs on 2,000 real MNIST digits; ~20 s (incl. JIT) on
    # 2 idle CPU cores.
    "quick": IntuitionConfig(grid_points=301, steps=100, n_examples=2000, batch_size=200, n_traced=20),
    # default: the book build. Three 300-step runs on 5,000 of the 60,000 training digits; ~30 s
    # on 2 CPU cores.
    "default": IntuitionConfig(),
    # paper: the paper's MNIST estimator (2-bit, HTGE 5.5/w_max) over 1,000 steps (= 50 epochs of
    # the 5,000 digits at batch 250); ~1.5 min on 2 CPU cores. The figure is the same kind.
    "paper": IntuitionConfig(steps=1000, n_traced=400),
}
