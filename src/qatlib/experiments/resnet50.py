"""ResNet50 chapter (Section 6.1, Tables 4-5): the identical initial period, then the branches in lock step.

Q-hat-net trains alone for the first 10% of the steps; then the branches start from its state
(:mod:`qatlib.training.branch` maps the weights and the optimizer state) and continue in lock step
on the same batches:

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

>>> plan = branch_plan("baseline", "sgd", q_hat(), {"kernel": models.kernel_quantizer(2, 576)})
>>> plan.map_weights, plan.map_state, plan.lr_factor, plan.compare_mapped
(True, True, 'alpha', True)
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pydantic
from pydantic import Field

import qatlib
from qatlib import data as data_lib
from qatlib import estimators, metrics, models
from qatlib.experiments.comparison import EXPERIMENTS, LR_TWEAK, q_hat
from qatlib.data import MNIST_TRAIN_SIZE
from qatlib.experiments.config import Config, EstimatorName
from qatlib.models.resnet import RESNET50_STAGE_SIZES
from qatlib.quantizers import quantized_leaves
from qatlib.training import Checkpointer, lockstep, optimizers, run_with_checkpoints
from qatlib.training.checkpoint import run_lock
from qatlib.training.branch import fit_state, map_optimizer_state, shared_steps
from qatlib.training.parallel import DataParallel, process_group
from qatlib.training.recipe import recipe_plan
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
    "run_optimizer",
]

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
    """Per-leaf lr factors of the branch (``None`` when every factor is 1)."""
    if plan.lr_factor == "alpha":
        return optimizers.alpha_scale_tree(params, quantizers, estimator)
    if plan.lr_factor == 1.0:
        return None
    return jax.tree_util.tree_map(lambda _: float(plan.lr_factor), params)


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
    metrics: dict[str, dict[str, float]]  # branch -> {"E_bar", "agreement"} at the last step
    curve_steps: list[int]  # training steps at which E_bar^(t) was measured (from the branch on)
    curves: dict[str, dict[str, list[float]]]  # branch -> {"E_bar": [...], "agreement": [...]}
    losses: dict[str, list[float]]  # net -> training loss per step it took
    nets: dict[str, Any]
    states: dict[str, Any]
    seconds: float


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
    params, batch_stats = variables["params"], variables.get("batch_stats")

    def optimizer_for(factor: float = 1.0, lr_scale: PyTree | None = None) -> optax.GradientTransformation:
        return optimizers.make_optimizer(
            optimizer, learning_rate * factor, total_steps, momentum=momentum, b1=b1, b2=b2,
            warmup_fraction=warmup_fraction, lr_scale=lr_scale,
        )

    def place(batch: dict[str, Any]) -> dict[str, Any]:
        return data_parallel.shard_batch(batch) if data_parallel is not None else batch

    def run_phase(phase: str, step_fn: Callable[[Any, int], Any], carry: dict[str, Any], steps: int) -> dict[str, Any]:
        """``steps`` steps of ``step_fn`` from ``carry``, resuming from and saving to the phase's checkpoints."""
        if data_parallel is not None:  # every array of the carry on every device: checkpoints are collective
            carry = data_parallel.replicate(carry)
        checkpointer = None
        if checkpoint_dir and checkpoint_every > 0:
            checkpointer = Checkpointer(f"{checkpoint_dir}/{optimizer}/{phase}", every=checkpoint_every)
        with checkpointer if checkpointer is not None else contextlib.nullcontext():
            return run_with_checkpoints(step_fn, carry, steps, checkpointer, on_step=tick)

    # Phase 1: Q-hat-net alone for the shared steps.
    q_net = lockstep.Net("q_net", model.clone(estimator=estimator), optimizer_for())
    state = lockstep.init_state(q_net, params, batch_stats)
    if data_parallel is not None:
        state = data_parallel.replicate(state)
    step_one = lockstep.make_lockstep_step([q_net])

    def shared_step(carry: dict[str, Any], step: int) -> dict[str, Any]:
        (new_state,), logs, _ = step_one(carry["states"], place(batch_fn(step)))
        return {"states": [new_state], "loss": carry["loss"].at[step].set(logs["loss"][0])}

    carry = {"states": [state], "loss": jnp.zeros((shared,), jnp.float32)}
    from tqdm.auto import tqdm

    bar = tqdm(total=total_steps, desc=f"{optimizer}: shared period", disable=not progress, mininterval=5.0)
    tick = lambda _state, _done: bar.update(1)  # noqa: E731
    carry = run_phase("shared", shared_step, carry, shared)
    (q_state,) = carry["states"]
    shared_losses = carry["loss"]

    # The branch point: every branch starts from Q-hat-net's state (Tables 1 and 2).
    names = BRANCHES[optimizer] if branches is None else tuple(branches)
    plans = [branch_plan(name, optimizer, estimator, quantizers) for name in names]
    nets, states = [q_net], [q_state]
    for plan in plans:
        lr_scale = lr_scale_tree(plan, q_state.params, quantizers, estimator)
        factor = float(plan.lr_factor) if isinstance(plan.lr_factor, float) else 1.0
        tx = optimizer_for(factor, lr_scale if plan.lr_factor == "alpha" else None)
        net = lockstep.Net(NET_NAMES[plan.name], model.clone(estimator=plan.estimator), tx)
        branch_params, branch_opt = branch_start(plan, q_state.params, q_state.opt_state, quantizers, estimator)
        branch_opt = fit_state(branch_opt, tx.init(branch_params))
        branch_state = lockstep.TrainState(branch_params, q_state.batch_stats, branch_opt, q_state.step)
        if data_parallel is not None:
            branch_state = data_parallel.replicate(branch_state)
        nets.append(net)
        states.append(branch_state)

    def measure(all_states: list[Any]) -> np.ndarray:
        """(branches, 2): E_bar (Eq. 5, the variant with E = 0 at the branch) and agreement."""
        reference = all_states[0].params
        rows = []
        for plan, branch_state in zip(plans, all_states[1:], strict=True):
            mapped_with = estimator if plan.compare_mapped else None
            rows.append([
                metrics.E_bar(reference, branch_state.params, quantizers, mapped_with),
                metrics.agreement(reference, branch_state.params, quantizers),
            ])
        return np.asarray(rows, np.float32)

    # Phase 2: every net in lock step on the same batches.
    remaining = total_steps - shared
    log_steps = sorted({*range(0, remaining + 1, max(1, log_every)), remaining})
    step_all = lockstep.make_lockstep_step(nets)

    def branch_step(carry: dict[str, Any], step: int) -> dict[str, Any]:
        new_states, logs, _ = step_all(carry["states"], place(batch_fn(shared + step)))
        curve = carry["curve"]
        if step + 1 in log_steps:
            curve = curve.at[log_steps.index(step + 1)].set(measure(new_states))
        return {"states": list(new_states), "loss": carry["loss"].at[step].set(logs["loss"]), "curve": curve}

    curve0 = jnp.zeros((len(log_steps), len(plans), 2), jnp.float32).at[0].set(measure(states))
    carry = {"states": states, "loss": jnp.zeros((remaining, len(nets)), jnp.float32), "curve": curve0}
    bar.set_description(f"{optimizer}: {len(nets)} nets in lock step")
    carry = run_phase("branches", branch_step, carry, remaining)
    bar.close()

    curve = np.asarray(jax.device_get(carry["curve"]), np.float64)
    branch_losses = np.asarray(jax.device_get(carry["loss"]))
    names = [net.name for net in nets]
    losses = {name: [float(v) for v in branch_losses[:, j]] for j, name in enumerate(names)}
    losses["q_net"] = [float(v) for v in jax.device_get(shared_losses)] + losses["q_net"]
    return OptimizerRun(
        optimizer=optimizer,
        shared_steps=shared,
        metrics={plan.name: {"E_bar": curve[-1, i, 0], "agreement": curve[-1, i, 1]} for i, plan in enumerate(plans)},
        curve_steps=[shared + s for s in log_steps],
        curves={
            plan.name: {"E_bar": curve[:, i, 0].tolist(), "agreement": curve[:, i, 1].tolist()}
            for i, plan in enumerate(plans)
        },
        losses=losses,
        nets=dict(zip(names, nets, strict=True)),
        states=dict(zip(names, carry["states"], strict=True)),
        seconds=time.perf_counter() - start_time,
    )

EVAL_BATCH = 100


def _first_examples(batches: Any, count: int) -> Any:
    """The first ``count`` examples of a stream of batches (the last batch cut short if needed).

    >>> stream = ({"label": np.arange(100)} for _ in range(10))
    >>> [len(batch["label"]) for batch in _first_examples(stream, 250)]
    [100, 100, 50]
    """
    seen = 0
    if count < 1:
        return
    for batch in batches:  # stops without pulling another batch (a training stream is endless)
        n = len(batch["label"])
        take = min(n, count - seen)
        yield batch if take == n else {key: value[:take] for key, value in batch.items()}
        seen += take
        if seen >= count:
            return


def _eval_batches(data: Any, cfg: Any, split: str, batch_size: int = EVAL_BATCH) -> Any:
    """The first ``cfg.eval_examples`` training (``"train"``) or evaluation (``"val"``) examples (or all)."""
    if split == "train":
        if hasattr(data, "train_eval_iterator"):
            return data.train_eval_iterator(batch_size, limit=cfg.eval_examples)
        return _first_examples(data.train_iterator(batch_size), cfg.eval_examples)
    return _first_examples(data.eval_iterator(batch_size), cfg.eval_examples)


def _eval_batch_size(data_parallel: DataParallel) -> int:
    """:data:`EVAL_BATCH` rounded up to a multiple of the device count, so every evaluation batch
    is sharded over all devices (100 on 1, 2 or 4 devices; 112 on 16)."""
    return -(-EVAL_BATCH // data_parallel.num_devices) * data_parallel.num_devices


def _train_batches(data: Any, cfg: ResNet50Config, data_parallel: DataParallel) -> Callable[[int], Any]:
    """``batch_fn(step)``: the global training batch of ``step``, placed over every device, of which
    this process builds only its own rows (all of them on one process). The batches are the same
    whatever the number of processes: a row's content depends on the step and its place in the
    batch, not on which process reads it."""
    rows = data_parallel.local_rows(cfg.batch_size)

    def place(local: dict[str, Any]) -> Any:
        return data_parallel.shard_local_batch(local, cfg.batch_size)

    if isinstance(data, data_lib.imagenet.MNIST32):
        return lambda step: place(data.train_batch(step, cfg.batch_size, rows=rows))
    stream: dict[str, Any] = {}  # a stream: read in order, reopened at the right step after a resume

    def batch_fn(step: int) -> Any:
        if stream.get("next") != step:
            stream["iterator"] = data.train_iterator(cfg.batch_size, start_step=step, rows=rows)
        stream["next"] = step + 1
        return place(next(stream["iterator"]))

    return batch_fn


def _data_description(data: Any, cfg: Any) -> dict[str, Any]:
    if data.name == "mnist32":
        return {
            "source": "idx",
            "note": (
                "full MNIST from the shipped MD5-verified IDX files (60,000 training / 10,000 test images), "
                "zero-padded from 28x28 to 32x32 and repeated to 3 channels, Flax ImageNet normalisation "
                "-- not ImageNet"
            ),
            "train": data.train_size,
            "val": data.eval_size,
            "image_size": data.image_size,
        }
    return {"source": "tfds imagenet2012", "note": "ILSVRC 2012 with the Flax ImageNet example's preprocessing",
            "image_size": data.image_size}


def run_experiment(
    cfg: ResNet50Config, *, progress: bool = False, checkpoint_dir: str | None = None
) -> dict[str, Any]:
    """Run the ResNet50 chapter's experiment for ``cfg`` (no I/O beyond optional checkpoints).

    With ``cfg.checkpoint_every > 0`` both phases checkpoint under ``cfg.checkpoint_dir`` or, when
    that is empty, ``checkpoint_dir``; a rerun resumes from the newest checkpoint. The folder is
    locked for the whole run (:func:`qatlib.training.checkpoint.run_lock`): a second run of the
    same config refuses before any work with :class:`~qatlib.training.checkpoint.CheckpointInUse`.

    Over several processes (:func:`qatlib.training.parallel.start_processes`, before this call)
    every process calls this: each reads only its rows of each global batch, the devices of all
    processes share the batch, checkpoints are written collectively, and each process returns the
    same result.

    Returns the results JSON (the MNIST chapter's keys): per optimizer the Table 4 branches
    ``{"E_bar", "agreement", "prediction_agreement", "nets"}``; ``"accuracy"`` (Table 5, every
    net, training and validation accuracy and loss in eval mode); ``"E_t"`` (E_bar and agreement
    along training from the branch point); ``"losses"``; ``"alpha"``; ``"seconds"`` (provenance is
    added by :func:`qatlib.report.measure.measure_resnet50`, with ``"parallel"``: the processes and
    devices that ran it).
    """
    checkpoint_dir = cfg.checkpoint_dir or checkpoint_dir
    with run_lock(checkpoint_dir if checkpoint_dir and cfg.checkpoint_every > 0 else None):
        return _run_experiment(cfg, progress=progress, checkpoint_dir=checkpoint_dir)


def _run_experiment(cfg: ResNet50Config, *, progress: bool, checkpoint_dir: str | None) -> dict[str, Any]:
    start = time.perf_counter()
    imagenet = {"data_dir": cfg.data_dir or None, "read_shards": cfg.read_shards}
    data = data_lib.imagenet.load(cfg.dataset, seed=cfg.seed, **(imagenet if cfg.dataset == "imagenet2012" else {}))
    data_parallel = DataParallel.create(cfg.num_devices or None)
    data_parallel.check_batch_size(cfg.batch_size)
    estimator = q_hat(cfg.sharpness, name=cfg.estimator, scale=cfg.estimator_scale, normalize=cfg.normalize)
    model = models.ResNet(
        stage_sizes=tuple(cfg.stage_sizes), num_filters=cfg.num_filters, num_classes=data.num_classes,
        bits=cfg.bits, estimator=estimator, conv_impl=cfg.conv_impl,
    )
    sample = jnp.zeros((1, data.image_size, data.image_size, 3), jnp.float32)
    initial = jax.jit(lambda key: model.init(key, sample, train=False))(jax.random.key(cfg.seed))
    variables = {"params": initial["params"], "batch_stats": initial["batch_stats"]}
    quantizers = models.quantizer_tree(variables["params"], cfg.bits)

    batch_fn = _train_batches(data, cfg, data_parallel)
    eval_batch = _eval_batch_size(data_parallel)
    evaluate = lockstep.make_evaluator(model, data_parallel)
    out: dict[str, Any] = {"accuracy": {}, "E_t": {}, "losses": {}}
    train_seconds = 0.0
    for optimizer in cfg.optimizers:
        run = run_optimizer(
            optimizer=optimizer, model=model, variables=variables, quantizers=quantizers, estimator=estimator,
            learning_rate=cfg.sgd_lr if optimizer == "sgd" else cfg.adam_lr, total_steps=cfg.total_steps,
            batch_fn=batch_fn, shared_fraction=cfg.shared_fraction, warmup_fraction=cfg.warmup_fraction,
            momentum=cfg.momentum, b1=cfg.b1, b2=cfg.b2, log_every=cfg.log_every, data_parallel=data_parallel,
            checkpoint_dir=checkpoint_dir, checkpoint_every=cfg.checkpoint_every, progress=progress,
            branches=BRANCHES[optimizer] + tuple(cfg.controls),
        )
        train_seconds += run.seconds
        evaluations = {
            name: {split: evaluate(state, _eval_batches(data, cfg, split, eval_batch)) for split in ("train", "val")}
            for name, state in run.states.items()
        }
        out["accuracy"][optimizer] = {
            name: {
                "train_acc": ev["train"]["accuracy"], "train_loss": ev["train"]["loss"],
                "val_acc": ev["val"]["accuracy"], "val_loss": ev["val"]["loss"],
            }
            for name, ev in evaluations.items()
        }
        reference = evaluations["q_net"]["val"]["predictions"]
        convs = metrics.select_layers(quantizers, lambda path: not path.startswith("head"))  # every conv kernel

        def conv_metrics(branch: str) -> dict[str, float]:
            a, b = run.states["q_net"].params, run.states[NET_NAMES[branch]].params
            mapped = estimator if branch_plan(branch, optimizer, estimator, quantizers).compare_mapped else None
            return {"E_bar_conv": metrics.E_bar(a, b, convs, mapped), "agreement_conv": metrics.agreement(a, b, convs)}

        out[optimizer] = {
            branch: {
                **values,
                **conv_metrics(branch),
                "prediction_agreement": float(np.mean(reference == evaluations[NET_NAMES[branch]]["val"]["predictions"])),
                "nets": [f"{optimizer}/q_net", f"{optimizer}/{NET_NAMES[branch]}"],
            }
            for branch, values in run.metrics.items()
        }
        out["E_t"]["steps"] = run.curve_steps
        out["E_t"]["shared_steps"] = run.shared_steps
        out["E_t"][optimizer] = run.curves
        out["losses"][optimizer] = run.losses
    out["alpha"] = {path: float(a) for path, a, _ in quantized_leaves(
        optimizers.alpha_scale_tree(variables["params"], quantizers, estimator), quantizers)}
    out["w_max"] = {path: float(q.representable_range[1]) for path, _, q in quantized_leaves(
        variables["params"], quantizers)}
    out["estimator"] = {"q_hat": repr(estimator), "ste_net": repr(branch_plan("baseline", "sgd", estimator, quantizers).estimator)}
    out["model"] = {
        "name": "ResNet50" if cfg.is_full_resnet50 else f"ResNet(stage_sizes={tuple(cfg.stage_sizes)}, filters={cfg.num_filters})",
        "quantized_weights": int(sum(leaf.size for _, leaf, _ in quantized_leaves(variables["params"], quantizers))),
        "parameters": int(sum(leaf.size for leaf in jax.tree_util.tree_leaves(variables["params"]))),
    }
    out["data"] = _data_description(data, cfg)
    out["train_seconds"] = train_seconds
    out["seconds"] = time.perf_counter() - start
    out["data_parallel_devices"] = data_parallel.num_devices
    out["parallel"] = dataclasses.asdict(process_group())
    return out

