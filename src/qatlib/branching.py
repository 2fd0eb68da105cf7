r"""The identical initial training period (paper Section 6.1): branch STE-net off a trained Q-hat-net.

For ResNet50 the paper trained Q-hat-net for the first 10% of the epochs and only then "applied M to
the weights and optimizer state and switched the model's quantizer for the STE". This module
implements that branch point for SGD with momentum and for Adam, and the comparison branches of
Table 4 (``lr_tweak``, ``unadjusted``).

Mapping the optimizer state
---------------------------
Write ``q = Q-hat'(w)`` for the Q-hat-net weight ``w`` at the branch step ``b`` and ``M' = alpha / q``
(Eq. 13).

**SGD with momentum** (optax: ``m <- beta m + q g``, ``w <- w - eta m``). Q-hat-net's trace is
``m_b = sum_i beta^(b-i) q_i g_i``. An STE-net that had mirrored it from the start would hold the
trace of the *raw* gradients, ``m~_b = sum_i beta^(b-i) g_i``. By Theorem D.2, ``q_i / q_b = 1 +
O(eta (b - i))``: the weights move O(eta) per step and log Q-hat' is Lipschitz. So, to first order,

    m~_b = m_b / Q-hat'(w_b)                                                    (branch rule)

and the next STE-net step, ``-alpha eta m~_b = (alpha / q_b)(-eta m_b) = M'(w_b) * (Q-hat-net step)``,
is exactly the first-order change of ``M(w)`` along Q-hat-net's step: the two nets stay mirrored
from the first step after the branch. (Nesterov momentum adds ``beta`` times the same trace to the
same gradient and follows by linearity.) Beyond the representable range a clipping Q-hat has
``q = 0`` and :func:`qatlib.weight_map` continues ``M`` with slope 1, so there the rule is
``m~ = m M'(w) / alpha = m / alpha``: both nets' frozen weights then coast by the same amount.
Without this mapping STE-net would start with a trace in Q-hat'-scaled units, an error of
``(1/q - 1)`` times the whole momentum, decaying only as ``beta^t``.

**Adam** (Table 2: same weights, same eta). Q-hat-net's moments are EMAs of ``q g`` and ``(q g)^2``;
by the same first-order argument the STE-net that had mirrored it holds

    mu~ = mu / Q-hat'(w_b),     nu~ = nu / Q-hat'(w_b)^2,     count unchanged,

which keeps ``mu / sqrt(nu)`` -- Adam's step -- unchanged (exactly, for epsilon = 0): Adam is
invariant to a per-weight rescaling of the gradient (Theorem 5.2), and the mapping makes the moments
consistent with the gradients STE-net will now feed them. Where ``q = 0`` (frozen weights outside
the range; both nets get zero gradients there) the moments are left as they are.

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

>>> import jax.numpy as jnp
>>> from qatlib import estimators
>>> from qatlib.quantizers import UniformQuantizer
>>> q = UniformQuantizer.from_bits(2, 1.0)
>>> est = estimators.HTGE(5.5, scale="range", normalize=True)
>>> w = jnp.array([0.05, 0.4])
>>> m = jnp.array([1.0, 1.0])
>>> mapped = map_momentum(m, w, q, est)
>>> bool(jnp.allclose(mapped * est.derivative(w, q), m))
True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import qatlib
from qatlib import estimators
from qatlib.quantizers import UniformQuantizer

__all__ = [
    "BRANCHES",
    "LR_TWEAK",
    "BranchPlan",
    "branch_plan",
    "branch_start",
    "lr_scale_tree",
    "make_estimator",
    "make_evaluator",
    "run_experiment",
    "run_optimizer",
    "write_artefact",
    "provenance_frame",
    "map_adam_moments",
    "map_momentum",
    "map_optimizer_state",
    "shared_steps",
]

PyTree = Any
Array = jax.Array

LR_TWEAK = 1.01  # "a learning rate increase of 1% (chosen arbitrarily and only once)"
BRANCHES = {"sgd": ("baseline", "lr_tweak", "unadjusted"), "adam": ("baseline", "lr_tweak")}
#: Opt-in control: the baseline STE-net with Q-hat-net's optimizer state copied unmapped, to
#: measure what the state map buys (not one of the paper's experiments).
CONTROLS = ("baseline_raw_state",)


def shared_steps(total_steps: int, fraction: float = 0.1) -> int:
    """Steps of the identical initial period: ``round(fraction * total_steps)``, at least 1.

    >>> shared_steps(1000), shared_steps(5)
    (100, 1)
    """
    if total_steps < 2:
        raise ValueError(f"need at least 2 steps to branch, got {total_steps}")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    return min(max(1, round(fraction * total_steps)), total_steps - 1)


def _is_quantizer(x: Any) -> bool:
    return isinstance(x, UniformQuantizer)


def _map_quantized(fn: Callable[..., Array], quantizers: PyTree, *trees: PyTree) -> PyTree:
    """``fn(q, *leaves)`` on quantized leaves, the first tree's leaf unchanged where ``q`` is None."""
    return jax.tree_util.tree_map(
        lambda q, *leaves: leaves[0] if q is None else fn(q, *leaves),
        quantizers,
        *trees,
        is_leaf=lambda x: x is None or _is_quantizer(x),
    )


def map_momentum(trace: Array, w: Array, quantizer: UniformQuantizer, estimator: estimators.Estimator) -> Array:
    """The SGD-momentum trace STE-net continues with: ``m / Q-hat'(w)``, and ``m / alpha`` where Q-hat' = 0.

    This is ``m M'(w) / alpha`` with M continued with slope 1 beyond the representable range.
    """
    derivative = estimator.derivative(w, quantizer)
    positive = derivative > 0
    scale = jnp.where(positive, 1.0 / jnp.where(positive, derivative, 1.0), 1.0 / qatlib.alpha(quantizer, estimator))
    return trace * scale.astype(trace.dtype)


def map_adam_moments(
    mu: Array, nu: Array, w: Array, quantizer: UniformQuantizer, estimator: estimators.Estimator
) -> tuple[Array, Array]:
    """Adam's moments for STE-net: ``mu / Q-hat'(w)``, ``nu / Q-hat'(w)^2`` (unchanged where Q-hat' = 0).

    >>> from qatlib.quantizers import UniformQuantizer
    >>> q = UniformQuantizer.from_bits(2, 1.0)
    >>> est = estimators.HTGE(5.5, scale="range", normalize=True)
    >>> w, mu, nu = jnp.array([0.1, 0.3]), jnp.array([0.2, -0.1]), jnp.array([0.04, 0.03])
    >>> mu2, nu2 = map_adam_moments(mu, nu, w, q, est)
    >>> bool(jnp.allclose(mu2 / jnp.sqrt(nu2), mu / jnp.sqrt(nu)))
    True
    """
    derivative = estimator.derivative(w, quantizer)
    scale = jnp.where(derivative > 0, 1.0 / jnp.where(derivative > 0, derivative, 1.0), 1.0)
    return mu * scale.astype(mu.dtype), nu * (scale**2).astype(nu.dtype)


def map_optimizer_state(
    opt_state: PyTree, params: PyTree, quantizers: PyTree, estimator: estimators.Estimator
) -> PyTree:
    """Map every momentum trace and Adam moment in an optax state (any nesting of chains/injects).

    ``optax.TraceState`` traces follow :func:`map_momentum`; ``optax.ScaleByAdamState`` moments
    follow :func:`map_adam_moments`; counts, schedules and stateless parts are kept. A state type
    that holds a params-shaped tree this module does not know is a ValueError (silently keeping
    it would break the mirror).
    """
    params_structure = jax.tree_util.tree_structure(params)

    def visit(node: Any) -> Any:
        if isinstance(node, optax.TraceState):
            return node._replace(
                trace=_map_quantized(lambda q, m, w: map_momentum(m, w, q, estimator), quantizers, node.trace, params)
            )
        if isinstance(node, optax.ScaleByAdamState):
            mu = _map_quantized(
                lambda q, m, v, w: map_adam_moments(m, v, w, q, estimator)[0], quantizers, node.mu, node.nu, params
            )
            nu = _map_quantized(
                lambda q, v, m, w: map_adam_moments(m, v, w, q, estimator)[1], quantizers, node.nu, node.mu, params
            )
            return node._replace(mu=mu, nu=nu)
        if isinstance(node, tuple) and hasattr(node, "_fields"):
            for name in node._fields:
                if _has_params_structure(getattr(node, name), params_structure):
                    raise ValueError(
                        f"don't know how to map {type(node).__name__}.{name} (a params-shaped tree) "
                        "at the branch point; supported: SGD momentum (TraceState) and Adam"
                    )
            return type(node)(**{name: visit(getattr(node, name)) for name in node._fields})
        if isinstance(node, (tuple, list)):
            return type(node)(visit(child) for child in node)
        if isinstance(node, dict):
            return {key: visit(child) for key, child in node.items()}
        return node

    return visit(opt_state)


def _has_params_structure(value: Any, structure: Any) -> bool:
    try:
        return jax.tree_util.tree_structure(value) == structure and structure.num_leaves > 0
    except Exception:  # pragma: no cover - exotic leaves
        return False


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
    if optimizer == "adam":  # baseline: Table 2 + Appendix G partner PWL[w_min, w_max]
        return BranchPlan(name, estimators.PWL(), False, True, 1.0, False)
    from qatlib.experiments import ste_partner  # one PWL() spanning every layer's range

    partner = ste_partner(estimator, quantizers)
    if name == "baseline":
        return BranchPlan(name, partner, True, True, "alpha", True)
    return BranchPlan(name, partner, False, False, 1.0, False)  # unadjusted


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
        from qatlib.experiments import lr_scale_tree as alpha_per_leaf

        return alpha_per_leaf(params, quantizers, estimator)
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


def make_estimator(name: str, sharpness: float, scale: str, normalize: bool) -> estimators.Estimator:
    """Q-hat by name; HTGE takes the sharpness / scale / normalize reading (the book says which)."""
    if name.lower() == "htge":
        return estimators.HTGE(sharpness=sharpness, scale=scale, normalize=normalize)  # type: ignore[arg-type]
    return estimators.get(name)


def _fit_state(mapped: PyTree, template: PyTree) -> PyTree:
    """Place a mapped base-optimizer state into ``template``'s structure (a chained per-leaf lr factor
    adds an ``EmptyState``)."""
    structure = jax.tree_util.tree_structure
    if structure(mapped) == structure(template):
        return mapped
    if isinstance(template, tuple) and len(template) == 2 and structure(template[0]) == structure(mapped):
        return (mapped, template[1])
    raise ValueError("the branch optimizer's state does not extend Q-hat-net's")


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
    same batches for every net). The learning-rate schedule runs over ``total_steps`` for every net
    and continues across the branch point (optax keeps the step count in the state). With
    ``checkpoint_dir`` and ``checkpoint_every`` both phases save every N steps and resume from
    their last checkpoint (:mod:`qatlib.checkpoint`). ``branches`` defaults to the paper's
    (:data:`BRANCHES`); :data:`CONTROLS` may be added.
    """
    import time

    from qatlib import metrics, train
    from qatlib.checkpoint import Checkpointer, run_with_checkpoints

    start_time = time.perf_counter()
    shared = shared_steps(total_steps, shared_fraction)
    params, batch_stats = variables["params"], variables.get("batch_stats")

    def optimizer_for(factor: float = 1.0, lr_scale: PyTree | None = None) -> optax.GradientTransformation:
        return train.make_optimizer(
            optimizer, learning_rate * factor, total_steps, momentum=momentum, b1=b1, b2=b2,
            warmup_fraction=warmup_fraction, lr_scale=lr_scale,
        )

    def place(batch: dict[str, Any]) -> dict[str, Any]:
        return data_parallel.shard_batch(batch) if data_parallel is not None else batch

    def checkpointer(phase: str) -> Checkpointer | None:
        if not checkpoint_dir or checkpoint_every <= 0:
            return None
        return Checkpointer(f"{checkpoint_dir}/{optimizer}/{phase}", every=checkpoint_every)

    # Phase 1: Q-hat-net alone for the shared steps.
    q_net = train.Net("q_net", model.clone(estimator=estimator), optimizer_for())
    state = train.init_state(q_net, params, batch_stats)
    if data_parallel is not None:
        state = data_parallel.replicate(state)
    step_one = train.make_lockstep_step([q_net])

    def shared_step(carry: dict[str, Any], step: int) -> dict[str, Any]:
        (new_state,), logs, _ = step_one(carry["states"], place(batch_fn(step)))
        return {"states": [new_state], "loss": carry["loss"].at[step].set(logs["loss"][0])}

    carry = {"states": [state], "loss": jnp.zeros((shared,), jnp.float32)}
    from tqdm.auto import tqdm

    bar = tqdm(total=total_steps, desc=f"{optimizer}: shared period", disable=not progress, mininterval=5.0)
    tick = lambda _state, _done: bar.update(1)  # noqa: E731
    carry = run_with_checkpoints(shared_step, carry, shared, checkpointer("shared"), on_step=tick)
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
        net = train.Net(NET_NAMES[plan.name], model.clone(estimator=plan.estimator), tx)
        branch_params, branch_opt = branch_start(plan, q_state.params, q_state.opt_state, quantizers, estimator)
        branch_opt = _fit_state(branch_opt, tx.init(branch_params))
        branch_state = train.TrainState(branch_params, q_state.batch_stats, branch_opt, q_state.step)
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
    step_all = train.make_lockstep_step(nets)

    def branch_step(carry: dict[str, Any], step: int) -> dict[str, Any]:
        new_states, logs, _ = step_all(carry["states"], place(batch_fn(shared + step)))
        curve = carry["curve"]
        if step + 1 in log_steps:
            curve = curve.at[log_steps.index(step + 1)].set(measure(new_states))
        return {"states": list(new_states), "loss": carry["loss"].at[step].set(logs["loss"]), "curve": curve}

    curve0 = jnp.zeros((len(log_steps), len(plans), 2), jnp.float32).at[0].set(measure(states))
    carry = {"states": states, "loss": jnp.zeros((remaining, len(nets)), jnp.float32), "curve": curve0}
    bar.set_description(f"{optimizer}: {len(nets)} nets in lock step")
    carry = run_with_checkpoints(branch_step, carry, remaining, checkpointer("branches"), on_step=tick)
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


def make_evaluator(model: Any, data_parallel: Any = None) -> Callable[[Any, Any], dict[str, Any]]:
    """``evaluate(state, batches) -> {"accuracy", "loss", "predictions"}`` in eval mode.

    One compiled forward pass serves every net of the experiment: the forward pass is ``Q(w)``
    exactly whatever the estimator (which only shapes the backward pass), so Q-hat-net and STE-net
    are evaluated by the same function. Batches must all have the first one's size, except possibly
    the last, which is padded (the padding is masked out).
    """

    @jax.jit
    def forward(params: PyTree, batch_stats: PyTree, images: Array, labels: Array, mask: Array):
        logits = model.apply({"params": params, "batch_stats": batch_stats}, images, train=False)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        return jnp.sum(loss * mask), jnp.argmax(logits, -1)

    def evaluate(state: Any, batches: Any) -> dict[str, Any]:
        total_loss, predictions, labels_seen, size = 0.0, [], [], None
        for batch in batches:
            n = len(batch["label"])
            size = size or n
            if n > size:
                raise ValueError(f"evaluation batches must not grow: {n} after {size}")
            pad = size - n
            arrays = {
                "image": np.pad(np.asarray(batch["image"]), ((0, pad),) + ((0, 0),) * (np.ndim(batch["image"]) - 1)),
                "label": np.pad(np.asarray(batch["label"]), (0, pad)),
                "mask": (np.arange(size) < n).astype(np.float32),
            }
            if data_parallel is not None and size % data_parallel.num_devices == 0:
                arrays = data_parallel.shard_batch(arrays)
            loss, predicted = forward(state.params, state.batch_stats, arrays["image"], arrays["label"], arrays["mask"])
            total_loss += float(loss)
            predictions.append(np.asarray(predicted)[:n])
            labels_seen.append(np.asarray(batch["label"]))
        if not predictions:
            raise ValueError("no evaluation examples")
        predicted, labels = np.concatenate(predictions), np.concatenate(labels_seen)
        return {
            "accuracy": float(np.mean(predicted == labels)),
            "loss": total_loss / len(labels),
            "predictions": predicted,
        }

    return evaluate


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


def _eval_batches(data: Any, cfg: Any, split: str) -> Any:
    """The first ``cfg.eval_examples`` training (``"train"``) or evaluation (``"val"``) examples (or all)."""
    if split == "train":
        if hasattr(data, "train_eval_iterator"):
            return data.train_eval_iterator(EVAL_BATCH, limit=cfg.eval_examples)
        return _first_examples(data.train_iterator(EVAL_BATCH), cfg.eval_examples)
    return _first_examples(data.eval_iterator(EVAL_BATCH), cfg.eval_examples)


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


def run_experiment(cfg: Any, preset: str | None = None, *, progress: bool = False) -> dict[str, Any]:
    """Run the ResNet50 chapter's experiment for ``cfg`` (:class:`qatlib.presets.resnet50.ResNet50Config`).

    Returns the results JSON (the MNIST chapter's keys): per optimizer the Table 4 branches
    ``{"E_bar", "agreement", "prediction_agreement", "nets"}``; ``"accuracy"`` (Table 5, every
    net, training and validation accuracy and loss in eval mode); ``"E_t"`` (E_bar and agreement
    along training from the branch point); ``"losses"``; ``"alpha"``; ``"provenance"``.
    """
    import time

    from qatlib import imagenet, metrics, models, resnet, results
    from qatlib.experiments import lr_scale_tree as alpha_per_leaf
    from qatlib.parallel import DataParallel

    cfg.validate()
    start = time.perf_counter()
    data = imagenet.load(cfg.dataset, **({"data_dir": cfg.data_dir or None} if cfg.dataset == "imagenet2012" else {}))
    data_parallel = DataParallel.create(cfg.num_devices or None)
    data_parallel.check_batch_size(cfg.batch_size)
    estimator = make_estimator(cfg.estimator, cfg.sharpness, cfg.estimator_scale, cfg.normalize)
    model = resnet.ResNet(
        stage_sizes=tuple(cfg.stage_sizes), num_filters=cfg.num_filters, num_classes=data.num_classes,
        bits=cfg.bits, estimator=estimator, conv_impl=cfg.conv_impl,
    )
    sample = jnp.zeros((1, data.image_size, data.image_size, 3), jnp.float32)
    initial = jax.jit(lambda key: model.init(key, sample, train=False))(jax.random.key(cfg.seed))
    variables = {"params": initial["params"], "batch_stats": initial["batch_stats"]}
    quantizers = models.quantizer_tree(variables["params"], cfg.bits)

    if isinstance(data, imagenet.MNIST32):
        def batch_fn(step: int) -> dict[str, Any]:
            return data.train_batch(step, cfg.batch_size)
    else:  # a stream: read in order, reopened at the right step after a resume
        stream: dict[str, Any] = {}

        def batch_fn(step: int) -> dict[str, Any]:
            if stream.get("next") != step:
                stream["iterator"] = data.train_iterator(cfg.batch_size, start_step=step)
            stream["next"] = step + 1
            return next(stream["iterator"])

    checkpoint_dir = cfg.checkpoint_dir or None
    if cfg.checkpoint_every > 0 and checkpoint_dir is None:
        checkpoint_dir = str(results.checkpoint_dir("resnet50", preset or "custom", cfg))

    evaluate = make_evaluator(model, data_parallel)
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
            name: {split: evaluate(state, _eval_batches(data, cfg, split)) for split in ("train", "val")}
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
    out["alpha"] = {path: float(a) for path, a, _ in metrics.quantized_leaves(
        alpha_per_leaf(variables["params"], quantizers, estimator), quantizers)}
    out["w_max"] = {path: float(q.representable_range[1]) for path, _, q in metrics.quantized_leaves(
        variables["params"], quantizers)}
    out["estimator"] = {"q_hat": repr(estimator), "ste_net": repr(branch_plan("baseline", "sgd", estimator, quantizers).estimator)}
    out["model"] = {
        "name": "ResNet50" if cfg.is_full_resnet50 else f"ResNet(stage_sizes={tuple(cfg.stage_sizes)}, filters={cfg.num_filters})",
        "quantized_weights": int(sum(leaf.size for _, leaf, _ in metrics.quantized_leaves(variables["params"], quantizers))),
        "parameters": int(sum(leaf.size for leaf in jax.tree_util.tree_leaves(variables["params"]))),
    }
    out["data"] = _data_description(data, cfg)
    out["train_seconds"] = train_seconds
    out["provenance"] = results.provenance(
        data=out["data"], steps=cfg.total_steps, seconds=time.perf_counter() - start, config=cfg, preset=preset,
        train_seconds=train_seconds, data_parallel_devices=data_parallel.num_devices,
    )
    return out


def write_artefact(metrics_json: dict[str, Any], preset: str) -> Any:
    """Write the run's metrics atomically to :func:`qatlib.results.output_path` (``results/`` under
    ``python -m qatlib run``, ``runs/`` otherwise); returns the path."""
    from qatlib import results

    return results.write_json(results.output_path("resnet50", preset), metrics_json)


def measure(cfg: Any, preset: str, *, progress: bool = True) -> tuple[dict[str, Any], Any]:
    """Run the chapter's experiment at ``cfg`` and write its artefact: ``(metrics_json, path)``."""
    metrics_json = run_experiment(cfg, preset, progress=progress)
    return metrics_json, write_artefact(metrics_json, preset)


def provenance_frame(metrics_json: dict[str, Any]) -> Any:
    """A results JSON's provenance (data, model, steps, device, time, versions) as a one-column DataFrame."""
    import pandas as pd

    source = metrics_json["provenance"]
    config = source.get("config", {})
    device = source.get("device", {})
    model = metrics_json.get("model", {})
    rows = [
        ("preset", source.get("preset")),
        ("data", metrics_json.get("data", {}).get("note")),
        ("model", f"{model.get('name')} ({model.get('parameters', 0):,} parameters, "
                  f"{model.get('quantized_weights', 0):,} quantized weights)"),
        ("steps", f"{source.get('steps'):,} of batch {config.get('batch_size')}, "
                  f"the first {metrics_json.get('E_t', {}).get('shared_steps')} shared"),
        ("device", f"{device.get('backend')} ({', '.join(device.get('devices', []))}; "
                   f"{device.get('cpu')}, {device.get('cpu_count')} cores)"),
        ("wall time", f"{source.get('seconds', 0) / 60:.1f} minutes"),
        ("versions", ", ".join(f"{k} {v}" for k, v in source.get("versions", {}).items() if v)),
        ("git commit", source.get("git_commit")),
        ("created (UTC)", source.get("created_utc")),
    ]
    return pd.DataFrame({"run": [str(value) for _, value in rows]}, index=[name for name, _ in rows])
