"""Presets of the Intuition chapter (Section 4): Figure 1 and the funhouse mirror (Figure 2).

The chapter draws the gradient estimators of Figure 1 from :mod:`qatlib.estimators` (with α of
Eq. 4 printed for each) and runs Q̂-net (HTGE, η) and STE-net (the Appendix G partner, αη,
initialised at M(w⁽⁰⁾)) side by side with plain SGD on softmax regression over n of the 60,000
training images of the shipped full MNIST (:func:`qatlib.simulate.mnist_problem`), to show one
weight and its mirror image crossing bin boundaries at the same steps.

>>> from qatlib.presets import resolve
>>> resolve(PRESETS, "quick").steps
100
"""

from __future__ import annotations

import dataclasses
import math

__all__ = ["IntuitionConfig", "PRESETS"]

#: Training images of full MNIST (as :data:`qatlib.simulate.MNIST_TRAIN_SIZE`, without importing JAX).
MNIST_TRAIN_SIZE = 60_000


@dataclasses.dataclass(frozen=True)
class IntuitionConfig:
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
        :func:`qatlib.simulate.mirror_candidate`).
      seed: initial weights and batch order.
    """

    bits: int = 2
    sharpness: float = 5.5
    ede_t: float = 2.0
    grid_points: int = 1201
    eta: float = 1e-2
    steps: int = 300
    batch_size: int = 250
    n_examples: int = 5000
    n_traced: int = 200
    seed: int = 0

    def validate(self) -> None:
        if self.bits < 2:
            raise ValueError(f"bits must be >= 2 for the multi-bit panels, got {self.bits}")
        for name in ("sharpness", "ede_t", "eta"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        for name in ("grid_points", "steps", "batch_size", "n_examples", "n_traced"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.n_examples > MNIST_TRAIN_SIZE:
            raise ValueError(
                f"n_examples must lie in [1, {MNIST_TRAIN_SIZE}] (the shipped full MNIST has "
                f"{MNIST_TRAIN_SIZE:,} training images), got {self.n_examples!r}"
            )
        if self.batch_size > self.n_examples:
            raise ValueError(f"batch_size {self.batch_size} exceeds n_examples {self.n_examples}")


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
