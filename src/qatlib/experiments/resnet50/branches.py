"""One optimizer's run of the ResNet50 chapter: Q-hat-net alone for the shared steps, then the
branches, each started from its state by its plan, in lock step (:func:`run_optimizer`).

Branches (all start from the same Q-hat-net state at step ``b`` and see the same batches after it)
--------------------------------------------------------------------------------------------------
======================  =============================================  ==========================
branch                  SGD + momentum                                 Adam
======================  =============================================  ==========================
``baseline``            STE-net: ``w -> M(w)``, ``m -> m / Q-hat'``,   STE-net: ``w`` unchanged,
                        lr ``alpha eta`` on kernels, Appendix G        ``mu, nu`` mapped, lr ``eta``,
                        partner ``PWL[M(w_min), M(w_max)]``;           partner ``PWL[w_min, w_max]``;
                        E = ``|M(w_Q) - w_STE|``                       E = ``|w_Q - w_STE|``
``lr_tweak``            Q-hat-net with lr ``1.01 eta``; E = ``|w - w'|``  the same
``unadjusted``          STE-net (same partner) with neither the weight  --
                        map nor the state map nor ``alpha``: lr ``eta``;
                        E = ``|w_Q - w_STE|``
======================  =============================================  ==========================

``alpha eta`` is applied as a per-leaf learning-rate factor ``alpha`` on the quantized kernels only
(BatchNorm parameters and biases have the same gradient in both nets, so they keep ``eta``), which
for SGD with momentum is the same as scaling STE's slope by ``alpha`` -- what the authors did.

>>> from qatlib import models
>>> from qatlib.experiments.comparison import q_hat
>>> plan = branch_plan("baseline", "sgd", q_hat(), {"kernel": models.kernel_quantizer(2, 576)})
>>> plan.map_weights, plan.map_state, plan.lr_factor, plan.compare_mapped
(True, True, 'alpha', True)
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import optax

import qatlib
from qatlib import estimators, metrics
from qatlib.experiments.comparison import LR_TWEAK
from qatlib.experiments.records import AGREEMENT, E_BAR
from qatlib.experiments.resnet50.config import BRANCHES, CONTROLS, PyTree
from qatlib.training import Checkpointer, lockstep, optimizers
from qatlib.training.branch import fit_state, map_optimizer_state, shared_steps
from qatlib.training.recipe import recipe_plan

@dataclasses.dataclass(frozen=True)
class BranchPlan:
    """How one branch starts from Q-hat-net's state at the branch step.

    Attributes:
      name: ``"baseline"``, ``"lr_tweak"`` or ``"unadjusted"``.
      estimator: the branch net's gradient estimator.
      map_weights: apply M to the kernels (SGD baseline).
      map_state: map the optimizer state (:func:`map_optimizer_state`).
      lr_factor: ``"alpha"`` (per-kernel alpha), a float (every leaf), or 1.0.
      compare_mapped: E uses ``|M(w_Q) - w|`` (SGD baseline) rather than ``|w_Q - w|``.
    """

    name: str
    estimator: estimators.Estimator
    map_weights: bool
    map_state: bool
    lr_factor: str | float
    compare_mapped: bool


def branch_plan(name: str, optimizer: str, estimator: estimators.Estimator, quantizers: PyTree) -> BranchPlan:
    """The plan of branch ``name`` for ``optimizer`` (``"sgd"`` or ``"adam"``); see the module table."""
    if optimizer not in BRANCHES:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {sorted(BRANCHES)}")
    if name not in BRANCHES[optimizer] + CONTROLS:
        raise ValueError(f"unknown branch {name!r} for {optimizer}; choose one of {BRANCHES[optimizer] + CONTROLS}")
    if name == "baseline_raw_state":
        return dataclasses.replace(branch_plan("baseline", optimizer, estimator, quantizers), name=name, map_state=False)
    if name == "lr_tweak":
        return BranchPlan(name, estimator, False, False, LR_TWEAK, False)
    recipe = recipe_plan(estimator, quantizers, optimizer)  # the paper's recipe decides STE-net's start, lr and estimator
    if name == "baseline":
        # SGD: M, α and the mapped optimizer state; Adam: nothing but the partner (its state is mapped too)
        return BranchPlan(name, recipe.estimator, recipe.maps_weights, True, "alpha" if recipe.scales_lr else 1.0, recipe.maps_weights)
    return BranchPlan(name, recipe.estimator, False, False, 1.0, False)  # unadjusted


def branch_start(
    plan: BranchPlan,
    params: PyTree,
    opt_state: PyTree,
    quantizers: PyTree,
    estimator: estimators.Estimator,
) -> tuple[PyTree, PyTree]:
    """(params, optimizer state) of the branch net at the branch step, from Q-hat-net's."""
    new_params = qatlib.weight_map(params, quantizers, estimator) if plan.map_weights else params
    new_state = map_optimizer_state(opt_state, params, quantizers, estimator) if plan.map_state else opt_state
    return new_params, new_state


def lr_scale_tree(plan: BranchPlan, params: PyTree, quantizers: PyTree, estimator: estimators.Estimator) -> PyTree | None:
    """Per-leaf lr factors of the branch: alpha on the quantized kernels for ``lr_factor="alpha"``,
    else ``None`` (a float factor scales the whole learning rate instead, :meth:`_Schedule.transform`)."""
    return optimizers.alpha_scale_tree(params, quantizers, estimator) if plan.lr_factor == "alpha" else None


# ----------------------------------------------------------------------------------------------
# The experiment: shared period, branch, lock-step continuation, Table 4/5 metrics.

#: Net names of the branches, as in the MNIST chapter's results (``accuracy`` and ``nets`` keys).
NET_NAMES = {
    "baseline": "ste_net",
    "lr_tweak": "q_net_lr_tweak",
    "unadjusted": "ste_net_unadjusted",
    "baseline_raw_state": "ste_net_raw_state",
}


@dataclasses.dataclass
class OptimizerRun:
    """What one optimizer's identical-initial-period experiment produced (see :func:`run_optimizer`)."""

    optimizer: str
    shared_steps: int
    metrics: dict[str, dict[str, float]]  # branch -> {measure of ALIGNMENT: value} at the last step
    curve_steps: list[int]  # training steps at which E_bar^(t) was measured (from the branch on)
    curves: dict[str, dict[str, list[float]]]  # branch -> {measure of ALIGNMENT: [value per logging step]}
    losses: dict[str, list[float]]  # net -> training loss per step it took
    nets: dict[str, Any]
    states: dict[str, Any]
    seconds: float


@dataclasses.dataclass(frozen=True)
class _Schedule:
    """The optimizer every net of one optimizer's run uses: its family, peak learning rate and schedule."""

    optimizer: str
    learning_rate: float
    total_steps: int
    momentum: float
    b1: float
    b2: float
    warmup_fraction: float

    def transform(self, factor: float = 1.0, lr_scale: PyTree | None = None) -> optax.GradientTransformation:
        """The schedule over ``total_steps`` with peak ``factor`` x ``learning_rate`` (and per-leaf ``lr_scale``)."""
        return optimizers.make_optimizer(
            self.optimizer, self.learning_rate * factor, self.total_steps, momentum=self.momentum, b1=self.b1,
            b2=self.b2, warmup_fraction=self.warmup_fraction, lr_scale=lr_scale,
        )


@dataclasses.dataclass(frozen=True)
class _Phases:
    """How a phase of one optimizer's run trains: on which devices, where it checkpoints, whether it
    shows a progress bar."""

    optimizer: str
    data_parallel: Any
    checkpoint_dir: str | None
    checkpoint_every: int
    progress: bool

    def train(self, phase: str, nets: list[lockstep.Net], states: list[lockstep.TrainState], batch_fn: Callable[[int], Any],
              start: int, steps: int, *, on_log: Callable[[int, dict[str, Any]], dict[str, float]] | None = None,
              log_every: int = 0) -> lockstep.TrainResult:
        """``steps`` steps of ``nets`` in lock step (:func:`qatlib.training.lockstep.train_lockstep`) on
        the run's batches ``batch_fn(start)``, ``batch_fn(start + 1)``, ..., resuming from and saving to
        the phase's checkpoints (``<checkpoint_dir>/<optimizer>/<phase>``)."""
        batches = lambda first: map(batch_fn, range(start + first, start + steps))  # noqa: E731
        checkpointer = None
        if self.checkpoint_dir and self.checkpoint_every > 0:
            checkpointer = Checkpointer(f"{self.checkpoint_dir}/{self.optimizer}/{phase}", every=self.checkpoint_every)
        with checkpointer if checkpointer is not None else contextlib.nullcontext():
            return lockstep.train_lockstep(
                nets, states, batches, steps, on_log=on_log, log_every=log_every, data_parallel=self.data_parallel,
                progress=self.progress, description=f"{self.optimizer}: {phase}", checkpointer=checkpointer,
            )


def run_optimizer(
    *,
    optimizer: str,
    model: Any,
    variables: PyTree,
    quantizers: PyTree,
    estimator: estimators.Estimator,
    learning_rate: float,
    total_steps: int,
    batch_fn: Callable[[int], dict[str, Any]],
    shared_fraction: float = 0.1,
    warmup_fraction: float = 0.05,
    momentum: float = 0.9,
    b1: float = 0.9,
    b2: float = 0.95,
    log_every: int = 10,
    data_parallel: Any = None,
    checkpoint_dir: str | None = None,
    checkpoint_every: int = 0,
    progress: bool = False,
    branches: tuple[str, ...] | None = None,
) -> OptimizerRun:
    """The identical initial period for one optimizer: Q-hat-net alone, then every branch in lock step.

    ``model`` is a Flax module with an ``estimator`` field (cloned per branch), ``variables`` its
    initial ``{"params", "batch_stats"}``, ``batch_fn(step)`` the training batch of ``step`` (the
    same batches for every net): the whole batch, or one already placed by ``data_parallel``
    (over several processes, each builds its own rows: :meth:`DataParallel.shard_local_batch`).
    The learning-rate schedule runs over ``total_steps`` for every net and continues across the branch point (optax keeps the step count in the state). With
    ``checkpoint_dir`` and ``checkpoint_every`` both phases save every N steps and resume from
    their last checkpoint (:mod:`qatlib.training.checkpoint`); each phase's checkpoint folder is
    locked while the phase runs. ``branches`` defaults to the paper's
    (:data:`BRANCHES`); :data:`CONTROLS` may be added.
    """
    start_time = time.perf_counter()
    shared = shared_steps(total_steps, shared_fraction)
    schedule = _Schedule(optimizer, learning_rate, total_steps, momentum, b1, b2, warmup_fraction)
    phases = _Phases(optimizer, data_parallel, checkpoint_dir, checkpoint_every, progress)

    q_net = lockstep.Net("q_net", model.clone(estimator=estimator), schedule.transform())
    q_state, shared_losses = _shared_period(q_net, variables, batch_fn, shared, phases)
    plans = [branch_plan(name, optimizer, estimator, quantizers) for name in (BRANCHES[optimizer] if branches is None else branches)]
    nets, states = _branch_nets(plans, q_net, q_state, model, quantizers, estimator, schedule, data_parallel)
    alignment = functools.partial(_alignment, plans, quantizers, estimator)
    result = _branch_period(nets, states, alignment, batch_fn, shared, total_steps - shared, log_every, phases)
    return _optimizer_run(optimizer, shared, plans, nets, result, shared_losses, time.perf_counter() - start_time)


def _shared_period(q_net: lockstep.Net, variables: PyTree, batch_fn: Callable[[int], Any], shared: int,
                   phases: _Phases) -> tuple[lockstep.TrainState, np.ndarray]:
    """Phase 1: Q-hat-net alone for the ``shared`` steps; its state after them and its loss per step."""
    state = lockstep.init_state(q_net, variables["params"], variables.get("batch_stats"))  # train_lockstep places it
    result = phases.train("shared", [q_net], [state], batch_fn, 0, shared)
    return result.states[q_net.name], result.logs["loss"][:, 0]


def _branch_nets(plans: list[BranchPlan], q_net: lockstep.Net, q_state: lockstep.TrainState, model: Any,
                 quantizers: PyTree, estimator: estimators.Estimator, schedule: _Schedule,
                 data_parallel: Any) -> tuple[list[lockstep.Net], list[lockstep.TrainState]]:
    """The branch point: Q-hat-net and every branch's net, each branch started from Q-hat-net's state
    by its plan (Tables 1 and 2)."""
    nets, states = [q_net], [q_state]
    for plan in plans:
        factor = float(plan.lr_factor) if isinstance(plan.lr_factor, float) else 1.0
        tx = schedule.transform(factor, lr_scale_tree(plan, q_state.params, quantizers, estimator))
        branch_params, branch_opt = branch_start(plan, q_state.params, q_state.opt_state, quantizers, estimator)
        branch_opt = fit_state(branch_opt, tx.init(branch_params))
        branch_state = lockstep.TrainState(branch_params, q_state.batch_stats, branch_opt, q_state.step)
        if data_parallel is not None:
            branch_state = data_parallel.replicate(branch_state)
        nets.append(lockstep.Net(NET_NAMES[plan.name], model.clone(estimator=plan.estimator), tx))
        states.append(branch_state)
    return nets, states


#: What :func:`_alignment` measures of each branch against Q-hat-net, in this order.
ALIGNMENT = (E_BAR, AGREEMENT)


def _log_key(branch: str, measure: str) -> str:
    """The name under which a branch's :data:`ALIGNMENT` measure is logged (lock-step logs are keyed by text)."""
    return f"{branch}/{measure}"


def _alignment(plans: list[BranchPlan], quantizers: PyTree, estimator: estimators.Estimator,
               states: list[lockstep.TrainState]) -> dict[str, float]:
    """``{"<branch>/<measure>": value}``: each branch's E_bar against Q-hat-net (Eq. 5, the variant
    with E = 0 at the branch; through M where the plan compares mapped weights) and its
    quantized-weight agreement (:data:`ALIGNMENT`), each rounded to float32."""
    reference = states[0].params
    values = {}
    for plan, branch_state in zip(plans, states[1:], strict=True):
        mapped_with = estimator if plan.compare_mapped else None
        measured = (metrics.E_bar(reference, branch_state.params, quantizers, mapped_with),
                    metrics.agreement(reference, branch_state.params, quantizers))
        values.update({_log_key(plan.name, name): float(np.float32(value)) for name, value in zip(ALIGNMENT, measured, strict=True)})
    return values


def _branch_period(nets: list[lockstep.Net], states: list[lockstep.TrainState], alignment: Callable[[list], dict[str, float]],
                   batch_fn: Callable[[int], Any], shared: int, remaining: int, log_every: int,
                   phases: _Phases) -> lockstep.TrainResult:
    """Phase 2: every net in lock step on the same batches for the ``remaining`` steps, with
    :func:`_alignment` logged at the branch point, every ``log_every`` steps and at the end."""

    def on_log(step: int, by_name: dict[str, lockstep.TrainState]) -> dict[str, float]:
        return alignment([by_name[net.name] for net in nets])

    return phases.train("branches", nets, states, batch_fn, shared, remaining, on_log=on_log, log_every=max(1, log_every))


def _optimizer_run(optimizer: str, shared: int, plans: list[BranchPlan], nets: list[lockstep.Net], result: lockstep.TrainResult,
                   shared_losses: np.ndarray, seconds: float) -> OptimizerRun:
    """The run's :class:`OptimizerRun`: final and per-log-step alignment, and every net's losses."""
    names = list(result.states)
    losses = {name: [float(v) for v in result.logs["loss"][:, j]] for j, name in enumerate(names)}
    losses["q_net"] = [float(v) for v in shared_losses] + losses["q_net"]
    curves = {plan.name: {name: result.log_values[_log_key(plan.name, name)] for name in ALIGNMENT} for plan in plans}
    return OptimizerRun(
        optimizer=optimizer,
        shared_steps=shared,
        metrics={branch: {name: column[-1] for name, column in curve.items()} for branch, curve in curves.items()},
        curve_steps=[shared + int(step) for step in result.log_steps],
        curves={branch: {name: column.tolist() for name, column in curve.items()} for branch, curve in curves.items()},
        losses=losses,
        nets={net.name: net for net in nets},
        states=dict(result.states),
        seconds=seconds,
    )
