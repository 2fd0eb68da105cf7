"""Training: optimizers and schedules, the lock-step trainer and its evaluator, the optimizer-state
map at a branch point, checkpoints, data-parallel sharding, and the paper's recipe for a user's loop.

* :mod:`qatlib.training.optimizers` — warm-up + cosine schedules, SGD/Adam, STE-net's α·η;
* :mod:`qatlib.training.lockstep` — several nets on one batch stream in one compiled step;
* :mod:`qatlib.training.branch` — M on the optimizer state when STE-net branches off Q̂-net;
* :mod:`qatlib.training.checkpoint` — orbax checkpoints: resume bit-identically; one run per checkpoint folder;
* :mod:`qatlib.training.parallel` — data parallelism over the devices of one process or of many (jax.distributed);
* :mod:`qatlib.training.recipe` — STE-net's start and optimizer for any Flax model and optax loop.
"""

from qatlib.training import branch, lockstep, optimizers, parallel, recipe
from qatlib.training.checkpoint import Checkpointer, run_with_checkpoints
from qatlib.training.recipe import SteRecipe, ste_recipe

__all__ = [
    "branch",
    "lockstep",
    "optimizers",
    "parallel",
    "recipe",
    "Checkpointer",
    "run_with_checkpoints",
    "SteRecipe",
    "ste_recipe",
]
