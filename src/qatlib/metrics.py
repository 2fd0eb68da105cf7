"""Comparison metrics between two nets (paper Section 6.2), plus the "mirror room" measured directly.

* :func:`E_bar`: normalised weight alignment error. Per weight, E = |M(w_Q-hat) - w_STE| (Eq. 5,
  SGD with the M-adjusted initialisation) or E = |w_a - w_b| (Eq. 5, Adam, and every pair that
  starts from identical weights: lr-tweak, unadjusted), always the variant with E^(0) = 0; each E
  is divided by the length w_max - w_min of its layer's representable range; E_bar is the mean
  over all quantized weights.
* :func:`agreement`: quantized weight agreement, the share of quantized weights with Q(w_a) = Q(w_b).
* :func:`accuracy_and_loss`, :func:`prediction_agreement`: standard metrics of one net, and the share
  of inputs on which two nets predict the same class; :func:`trained`: did a net train at all?
* :func:`flat_level_indices` (jit-safe) and :func:`crossing_statistics`: per weight, the sequence of
  quantized levels a net visits along training and the steps at which it moves between levels;
  do two nets visit the same sequence, and how many steps apart do they cross each boundary?

Trees: ``params_a``, ``params_b`` are Flax params trees; ``quantizers`` is the parallel tree of
per-leaf quantizers (``None`` = not quantized, skipped), as built by
:func:`qatlib.models.quantizer_tree`, walked with :func:`qatlib.quantizers.quantized_leaves`
(also importable from here as ``metrics.quantized_leaves``).

>>> import jax.numpy as jnp
>>> from qatlib.quantizers import UniformQuantizer
>>> q = UniformQuantizer.from_bits(2, 1.5)     # range [-1.5, 1.5], levels +-0.5, +-1.5
>>> a, b = {"k": jnp.array([0.1, 0.9, -1.2])}, {"k": jnp.array([0.4, 1.1, -1.2])}
>>> round(E_bar(a, b, {"k": q}), 4)     # mean(|0.3|, |0.2|, 0) / 3
0.0556
>>> round(agreement(a, b, {"k": q}), 4)  # Q: 0.5 = 0.5, 0.5 != 1.5, -1.5 = -1.5
0.6667
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from qatlib.mirror import weight_map
from qatlib.quantizers import is_quantizer_or_none, quantized_leaves

__all__ = [
    "quantized_leaves",
    "weight_map_jit",
    "normalized_alignment_errors",
    "E_bar",
    "E_bar_per_layer",
    "select_layers",
    "summed_alignment_error",
    "path_length",
    "agreement",
    "agreement_per_layer",
    "accuracy_and_loss",
    "prediction_agreement",
    "flat_level_indices",
    "crossing_statistics",
    "TRAINED_ACCURACY_FACTOR",
    "trained",
]

PyTree = Any


@functools.partial(jax.jit, static_argnums=(1, 2))
def weight_map_jit(w: jax.Array, quantizer: Any, estimator: Any) -> jax.Array:
    """``qatlib.weight_map`` (M, Eq. 4) of one array, compiled once per (quantizer, estimator)."""
    return weight_map(w, quantizer, estimator)


def normalized_alignment_errors(
    params_a: PyTree, params_b: PyTree, quantizers: PyTree, estimator: Any = None, *, scale: str = "range"
) -> dict[str, jax.Array]:
    """Per layer, E^(T) / (w_max - w_min) for every weight (Eq. 5).

    With ``estimator`` (Q-hat of net a), E = |M(w_a) - w_b| (SGD baseline: net b started at M(w^(0)));
    without it, E = |w_a - w_b|. ``scale="mapped"`` divides a mapped E by M(w_max) - M(w_min)
    instead: the width of the range in STE-net's coordinates, which differs from w_max - w_min
    where M does not fix the range's ends (1-bit kernels, estimators that do not clip).
    """
    if scale not in ("range", "mapped"):
        raise ValueError(f"scale must be 'range' or 'mapped', got {scale!r}")
    flat_b = {path: leaf for path, leaf, _ in quantized_leaves(params_b, quantizers)}
    errors = {}
    for path, leaf_a, quantizer in quantized_leaves(params_a, quantizers):
        mapped = leaf_a if estimator is None else weight_map_jit(leaf_a, quantizer, estimator)
        lo, hi = quantizer.representable_range
        if scale == "mapped" and estimator is not None:
            lo, hi = (float(v) for v in weight_map_jit(jnp.asarray([lo, hi], jnp.float32), quantizer, estimator))
        errors[path] = jnp.abs(mapped - flat_b[path]) / (hi - lo)
    if not errors:
        raise ValueError("no quantized leaves: the quantizer tree is all None")
    return errors


def E_bar(params_a: PyTree, params_b: PyTree, quantizers: PyTree, estimator: Any = None, *, scale: str = "range") -> float:
    """Normalised weight alignment error E_bar: mean of E^(T)/(w_max - w_min) over all quantized weights
    (``scale``: see :func:`normalized_alignment_errors`)."""
    errors = normalized_alignment_errors(params_a, params_b, quantizers, estimator, scale=scale)
    total = sum(float(jnp.sum(e)) for e in errors.values())
    return total / sum(int(e.size) for e in errors.values())


def E_bar_per_layer(params_a: PyTree, params_b: PyTree, quantizers: PyTree, estimator: Any = None) -> dict[str, float]:
    """E_bar of each quantized layer separately."""
    errors = normalized_alignment_errors(params_a, params_b, quantizers, estimator)
    return {path: float(jnp.mean(e)) for path, e in errors.items()}


def select_layers(quantizers: PyTree, keep: Any) -> PyTree:
    """The quantizer tree with ``None`` on every leaf whose path (e.g. ``"conv_0/kernel"``) fails ``keep``.

    Restricts any metric to some layers, e.g. the convolution kernels the authors compared:
    ``E_bar(a, b, select_layers(q, lambda path: path.startswith("conv")))``.
    """

    def visit(path: Any, quantizer: Any) -> Any:
        name = jax.tree_util.keystr(path).strip("[]'").replace("']['", "/")
        return quantizer if quantizer is not None and keep(name) else None

    return jax.tree_util.tree_map_with_path(visit, quantizers, is_leaf=is_quantizer_or_none)


def summed_alignment_error(params_a: PyTree, params_b: PyTree, quantizers: PyTree, estimator: Any = None) -> float:
    """Σ |M(w_a) − w_b| / w_max over the quantized weights: the numerator of the authors' code's measure.

    w_max is the half-length of each layer's representable range (the He-uniform bound). The
    authors' MNIST code divides this by net b's path length (:func:`path_length` summed over the
    steps); the paper's text instead averages E over the weights and divides by the range's length
    (:func:`E_bar`). Both are reported side by side.
    """
    errors = normalized_alignment_errors(params_a, params_b, quantizers, estimator)
    return 2.0 * sum(float(jnp.sum(e)) for e in errors.values())  # E/(2 w_max) -> E/w_max


def path_length(params_old: PyTree, params_new: PyTree, quantizers: PyTree) -> jax.Array:
    """Σ |w_new − w_old| / w_max over the quantized weights of one step (jit-safe)."""
    flat_old = {path: leaf for path, leaf, _ in quantized_leaves(params_old, quantizers)}
    total = jnp.zeros((), jnp.float32)
    for path, leaf, quantizer in quantized_leaves(params_new, quantizers):
        w_max = (quantizer.representable_range[1] - quantizer.representable_range[0]) / 2
        total = total + jnp.sum(jnp.abs(leaf - flat_old[path])) / w_max
    return total


def _agreements(params_a: PyTree, params_b: PyTree, quantizers: PyTree) -> dict[str, tuple[int, int]]:
    flat_b = {path: leaf for path, leaf, _ in quantized_leaves(params_b, quantizers)}
    counts = {}
    for path, leaf_a, quantizer in quantized_leaves(params_a, quantizers):
        same = quantizer.level_index(leaf_a) == quantizer.level_index(flat_b[path])
        counts[path] = (int(jnp.sum(same)), int(same.size))
    if not counts:
        raise ValueError("no quantized leaves: the quantizer tree is all None")
    return counts


def agreement(params_a: PyTree, params_b: PyTree, quantizers: PyTree) -> float:
    """Quantized weight agreement: the share of quantized weights with Q(w_a) == Q(w_b)."""
    counts = _agreements(params_a, params_b, quantizers).values()
    return sum(same for same, _ in counts) / sum(size for _, size in counts)


def agreement_per_layer(params_a: PyTree, params_b: PyTree, quantizers: PyTree) -> dict[str, float]:
    """Quantized weight agreement of each layer."""
    return {path: same / size for path, (same, size) in _agreements(params_a, params_b, quantizers).items()}


def accuracy_and_loss(logits: np.ndarray | jax.Array, labels: np.ndarray | jax.Array) -> dict[str, float]:
    """Top-1 accuracy and mean softmax cross-entropy.

    >>> import numpy as np
    >>> out = accuracy_and_loss(np.array([[2.0, 0.0], [0.0, 1.0]]), np.array([0, 0]))
    >>> out["accuracy"], round(out["loss"], 4)
    (0.5, 0.7201)
    """
    logits = jnp.asarray(logits)
    labels = jnp.asarray(labels)
    if logits.ndim != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(f"need logits (N, C) and labels (N,), got {logits.shape} and {labels.shape}")
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    loss = -jnp.take_along_axis(log_probs, labels[:, None].astype(jnp.int32), axis=1).mean()
    accuracy = jnp.mean(jnp.argmax(logits, axis=-1) == labels)
    return {"accuracy": float(accuracy), "loss": float(loss)}


def prediction_agreement(logits_a: np.ndarray | jax.Array, logits_b: np.ndarray | jax.Array) -> float:
    """Share of inputs on which both nets predict the same class (argmax of the logits)."""
    if np.shape(logits_a) != np.shape(logits_b):
        raise ValueError(f"logit shapes differ: {np.shape(logits_a)} vs {np.shape(logits_b)}")
    return float(np.mean(np.argmax(logits_a, axis=-1) == np.argmax(logits_b, axis=-1)))


def flat_level_indices(params: PyTree, quantizers: PyTree, sample: np.ndarray | None = None) -> jax.Array:
    """Level indices n (Q(w) = offset + n Delta) of all quantized weights, concatenated in tree order, as int8.

    ``sample`` picks positions of that flat vector (a fixed index array): jit-safe, for
    ``train_lockstep(observe=...)``.
    """
    parts = [
        quantizer.level_index(leaf).reshape(-1).astype(jnp.int8)
        for _, leaf, quantizer in quantized_leaves(params, quantizers)
    ]
    flat = jnp.concatenate(parts)
    return flat if sample is None else flat[jnp.asarray(sample)]


def _changes(levels: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per weight (column): (steps where the level changed, the visited level sequence)."""
    result = []
    for column in levels.T:
        steps = np.flatnonzero(column[1:] != column[:-1]) + 1
        result.append((steps, np.concatenate([column[:1], column[steps]])))
    return result


def crossing_statistics(levels_a: np.ndarray, levels_b: np.ndarray) -> dict[str, float | int]:
    """Do two nets' weights visit the same levels in the same order, and cross at the same steps?

    ``levels_a``, ``levels_b``: integer arrays (steps + 1, weights) of level indices, row t after
    step t (row 0 = the initial weights). For each weight, the *sequence* is the run-length-reduced
    list of visited levels; a *crossing* is a change of level. For weights whose sequences agree,
    the k-th crossing of net a is paired with the k-th of net b and the offset |t_a - t_b| is taken.

    >>> import numpy as np
    >>> a = np.array([[0, 1], [1, 1], [1, 2], [1, 2]])
    >>> b = np.array([[0, 1], [0, 1], [1, 1], [1, 1]])
    >>> stats = crossing_statistics(a, b)
    >>> stats["same_sequence"], stats["crossings"], stats["mean_offset"]
    (0.5, 1, 1.0)
    """
    levels_a = np.asarray(levels_a)
    levels_b = np.asarray(levels_b)
    if levels_a.shape != levels_b.shape or levels_a.ndim != 2 or levels_a.shape[0] < 1:
        raise ValueError(f"need two (steps + 1, weights) arrays of one shape, got {levels_a.shape}, {levels_b.shape}")
    same, moving, moving_same = 0, 0, 0
    offsets: list[np.ndarray] = []
    crossings_a = crossings_b = 0
    for (steps_a, seq_a), (steps_b, seq_b) in zip(_changes(levels_a), _changes(levels_b), strict=True):
        crossings_a += len(steps_a)
        crossings_b += len(steps_b)
        is_same = len(seq_a) == len(seq_b) and bool(np.all(seq_a == seq_b))
        same += is_same
        if len(steps_a) or len(steps_b):
            moving += 1
            moving_same += is_same
        if is_same and len(steps_a):
            offsets.append(np.abs(steps_a - steps_b))
    all_offsets = np.concatenate(offsets) if offsets else np.zeros(0, dtype=np.int64)
    weights = levels_a.shape[1]
    return {
        "weights": int(weights),
        "steps": int(levels_a.shape[0] - 1),
        "same_sequence": same / weights,
        "moving_weights": int(moving),
        "same_sequence_among_moving": moving_same / moving if moving else 1.0,
        "crossings_a": int(crossings_a),
        "crossings_b": int(crossings_b),
        "crossings": int(all_offsets.size),
        "mean_offset": float(all_offsets.mean()) if all_offsets.size else 0.0,
        "median_offset": float(np.median(all_offsets)) if all_offsets.size else 0.0,
        "p90_offset": float(np.percentile(all_offsets, 90)) if all_offsets.size else 0.0,
        "max_offset": int(all_offsets.max()) if all_offsets.size else 0,
        "same_step_share": float(np.mean(all_offsets == 0)) if all_offsets.size else 1.0,
    }


#: A net counts as trained when its validation accuracy is at least this many times chance.
TRAINED_ACCURACY_FACTOR = 2.0


def trained(val_acc: float | None, finite: bool, num_classes: int = 10) -> bool:
    """Whether a net trained: finite weights and loss, and a validation accuracy of at least
    :data:`TRAINED_ACCURACY_FACTOR` times chance (20% on MNIST). A comparison of nets that did not
    train (a diverged run, or one still at chance) measures nothing the paper claims.

    >>> trained(0.61, True), trained(0.103, True), trained(0.97, False), trained(None, True)
    (True, False, False, False)
    """
    return bool(finite) and val_acc is not None and val_acc >= TRAINED_ACCURACY_FACTOR / num_classes
