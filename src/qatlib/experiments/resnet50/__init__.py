"""ResNet50 chapter (Section 6.1, Tables 4-5): the identical initial period, then the branches in lock step.

Q-hat-net trains alone for the first 10% of the steps; then the branches start from its state
(:mod:`qatlib.training.branch` maps the weights and the optimizer state) and continue in lock step
on the same batches:

* :mod:`~qatlib.experiments.resnet50.config` -- the configuration and its presets;
* :mod:`~qatlib.experiments.resnet50.branches` -- the branch plans and one optimizer's run
  (:func:`run_optimizer`: the shared period, the branch point, the lock-step branches);
* :mod:`~qatlib.experiments.resnet50.experiment` -- :func:`run_experiment`: data, model, each
  optimizer's run, and its evaluation.
"""

from qatlib.experiments.resnet50.branches import (
    NET_NAMES, BranchPlan, OptimizerRun, branch_plan, branch_start, lr_scale_tree, run_optimizer,
)
from qatlib.experiments.resnet50.config import BRANCHES, CONTROLS, PRESETS, ResNet50Config
from qatlib.experiments.resnet50.experiment import ResNet50Result, run_experiment

__all__ = [
    "ResNet50Config",
    "PRESETS",
    "BRANCHES",
    "CONTROLS",
    "NET_NAMES",
    "BranchPlan",
    "branch_plan",
    "branch_start",
    "lr_scale_tree",
    "run_experiment",
    "ResNet50Result",
    "run_optimizer",
    "OptimizerRun",
]
