"""The lock-step comparison trainer (paper Section 6.1): several nets, one batch stream, one compiled step.

API
---
* :class:`Net` ``(name, model, optimizer)``: one network of a comparison (a Flax module and an optax
  transformation). :class:`TrainState` ``(params, batch_stats, opt_state, step)`` is its state;
  :func:`init_state` builds one from given params (and, optionally, a given optimizer state: to
  branch STE-net off a Q-hat-net trained for the first 10% of the steps, pass the mapped params and
  the mapped optimizer state). Models with BatchNorm keep ``batch_stats`` (not ``None``) and are
  called as ``model.apply(variables, x, train=True, mutable=["batch_stats"])``, like the Flax
  ImageNet example; models without it are called as ``model.apply({"params": p}, x)``.
* :func:`make_lockstep_step` compiles **one** function that advances every net by one step on the
  same batch (and, optionally, evaluates an ``observe(states)`` function on the new states inside
  the same compiled call, e.g. the quantized levels of sampled weights).
* :func:`train_lockstep` runs it over one stream of batches (one data pipeline, one process, a tqdm
  progress bar), calls ``on_log(step, states)`` every ``log_every`` steps, and returns the final
  states, the per-step losses/accuracies and the stacked observations.
* Data parallelism: pass ``data_parallel`` = any object with ``shard_batch(batch)`` and
  ``replicate(tree)`` (:class:`qatlib.training.parallel.DataParallel`): states are replicated once, every batch is
  sharded before the step, and ``jax.jit`` partitions the step (GSPMD).
* :func:`make_evaluator` builds the compiled evaluator: accuracy, loss, predictions and logits of a
  net over batches (eval mode, optionally data parallel).

Batches are dicts ``{"image": float array (B, ...), "label": int array (B,)}``.

Speed: the nets' steps are compiled side by side into one call (nets with different estimators and
optimizers share it), and ``microbatch`` computes each net's gradient over chunks of a few examples,
which keeps the activations in a CPU's caches (figures: ``benchmarks/results/``).

>>> import jax, jax.numpy as jnp, flax.linen as nn
>>> from qatlib.training.optimizers import make_optimizer
>>> net = Net("tiny", nn.Dense(3), make_optimizer("sgd", 0.1, total_steps=10))
>>> state = init_state(net, net.model.init(jax.random.key(0), jnp.ones((1, 4)))["params"])
>>> batch = {"image": jnp.ones((2, 4)), "label": jnp.array([0, 1])}
>>> (new_state,), logs, _ = make_lockstep_step([net])([state], batch)
>>> int(new_state.step), logs["loss"].shape
(1, (1,))
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from qatlib import metrics

__all__ = [
    "Net",
    "TrainState",
    "init_state",
    "cross_entropy",
    "make_lockstep_step",
    "train_lockstep",
    "TrainResult",
    "log_points",
    "make_evaluator",
]

PyTree = Any
Batch = Mapping[str, jax.Array]

@dataclasses.dataclass(frozen=True)
class Net:
    """One network of a lock-step comparison: a name, a Flax module and an optax transformation.

    ``microbatch`` (``None``: the trainer's) gives this net its own gradient chunks: the same mean
    gradient in another summation order, e.g. a Q̂-net twin that differs from Q̂-net only in float32
    rounding.
    """

    name: str
    model: nn.Module
    optimizer: optax.GradientTransformation
    microbatch: int | None = None


class TrainState(NamedTuple):
    """Parameters, BatchNorm statistics (``None`` when the model has none), optimizer state, step."""

    params: PyTree
    batch_stats: PyTree | None
    opt_state: PyTree
    step: jax.Array


def init_state(
    net: Net,
    params: PyTree,
    batch_stats: PyTree | None = None,
    opt_state: PyTree | None = None,
    step: int = 0,
) -> TrainState:
    """A train state from given params (and optionally given BatchNorm stats / optimizer state)."""
    if opt_state is None:
        opt_state = net.optimizer.init(params)
    return TrainState(params, batch_stats, opt_state, jnp.asarray(step, jnp.int32))


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy of integer labels (the MNIST/ImageNet training loss)."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def _apply(model: nn.Module, params: PyTree, batch_stats: PyTree | None, images: jax.Array, train: bool):
    """Logits and the (updated) BatchNorm statistics; models without BatchNorm take no ``train`` flag."""
    if batch_stats is None:
        return model.apply({"params": params}, images), None
    variables = {"params": params, "batch_stats": batch_stats}
    if train:
        logits, updates = model.apply(variables, images, train=True, mutable=["batch_stats"])
        return logits, updates["batch_stats"]
    return model.apply(variables, images, train=False), batch_stats


def _gradients(net: Net, state: TrainState, batch: Batch) -> tuple[jax.Array, jax.Array, PyTree, PyTree | None]:
    """Mean loss, accuracy, the gradient of the mean loss and the new BatchNorm statistics on ``batch``."""

    def loss_fn(params: PyTree):
        logits, batch_stats = _apply(net.model, params, state.batch_stats, batch["image"], train=True)
        return cross_entropy(logits, batch["label"]), (logits, batch_stats)

    (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    accuracy = jnp.mean(jnp.argmax(logits, axis=-1) == batch["label"])
    return loss, accuracy, grads, batch_stats


def _check_microbatch(microbatch: int) -> None:
    if microbatch < 0:
        raise ValueError(f"microbatch must be >= 0 (0 = the whole batch at once), got {microbatch}")


def _in_chunks(tree: PyTree, microbatch: int) -> PyTree:
    """Every leaf's leading (batch) axis split into chunks: ``(B, ...) -> (B // microbatch, microbatch, ...)``."""
    return jax.tree.map(lambda x: x.reshape(x.shape[0] // microbatch, microbatch, *x.shape[1:]), tree)


def _summed_gradients(net: Net, state: TrainState, batch: Batch, microbatch: int):
    """A net's mean loss, accuracy and gradient on ``batch``, accumulated over chunks of
    ``microbatch`` examples (one ``lax.scan``, so a chunk's activations stay in the CPU's caches).

    The mean over the chunks of each chunk's mean-loss gradient equals the gradient of the batch's
    mean loss (equal chunks): the same sum in another order, so it agrees with the one-shot
    gradient to float32 rounding, not bit for bit. BatchNorm statistics would change with the chunk
    (they are per batch), so models with BatchNorm refuse.
    """
    size = batch["label"].shape[0]
    if size % microbatch:
        raise ValueError(f"microbatch must divide the batch size: {microbatch} does not divide {size}")
    if state.batch_stats is not None:
        raise ValueError("microbatch > 0 needs models without BatchNorm (its statistics are per batch)")
    chunks = _in_chunks(dict(batch), microbatch)

    def body(totals, chunk):
        loss, accuracy, grads, _ = _gradients(net, state, chunk)
        return jax.tree.map(jnp.add, totals, (loss, accuracy, grads)), None  # sums of the chunks' means

    zeros = (jnp.zeros(()), jnp.zeros(()), jax.tree.map(jnp.zeros_like, state.params))
    (loss, accuracy, grads), _ = jax.lax.scan(body, zeros, chunks)
    count = size // microbatch  # equal chunks: the batch's mean is the mean of the chunks' means
    return loss / count, accuracy / count, jax.tree.map(lambda g: g / count, grads), None


def _update(net: Net, state: TrainState, grads: PyTree, batch_stats: PyTree | None) -> TrainState:
    updates, opt_state = net.optimizer.update(grads, state.opt_state, state.params)
    return TrainState(optax.apply_updates(state.params, updates), batch_stats, opt_state, state.step + 1)


def make_lockstep_step(
    nets: Sequence[Net],
    observe: Callable[[Sequence[TrainState], Sequence[TrainState]], PyTree] | None = None,
    *,
    microbatch: int = 0,
) -> Callable[[Sequence[TrainState], Batch], tuple[list[TrainState], dict[str, jax.Array], PyTree]]:
    """One jitted function: every net takes one step on the same batch.

    Returns ``(new_states, logs, observation)`` where ``logs["loss"]`` and ``logs["accuracy"]`` have
    one entry per net (training-batch values before the update) and ``observation`` is
    ``observe(states, new_states)`` (``None`` without ``observe``): it sees each step's states before
    and after the update, e.g. to sum a path length.

    ``microbatch`` > 0 computes the gradients over chunks of that many examples and sums them
    (:func:`_summed_gradients`): on a CPU whose caches cannot hold a whole batch's activations it
    is several times faster (``benchmarks/bench_mnist_step.py``); ``0`` takes the batch at once.
    """
    nets = tuple(nets)
    if not nets:
        raise ValueError("need at least one net")
    names = [net.name for net in nets]
    if len(set(names)) != len(names):
        raise ValueError(f"net names must be unique, got {names}")

    chunks = [microbatch if net.microbatch is None else net.microbatch for net in nets]
    for size in chunks:
        _check_microbatch(size)

    def step(states: Sequence[TrainState], batch: Batch):
        # one scan per net (a single scan over all nets' chunks is slower: benchmarks/)
        gradients = [
            _summed_gradients(net, state, batch, size) if size else _gradients(net, state, batch)
            for net, state, size in zip(nets, states, chunks, strict=True)
        ]
        new_states = [
            _update(net, state, grads, batch_stats)
            for net, state, (_, _, grads, batch_stats) in zip(nets, states, gradients, strict=True)
        ]
        logs = {
            "loss": jnp.stack([loss for loss, _, _, _ in gradients]),
            "accuracy": jnp.stack([accuracy for _, accuracy, _, _ in gradients]),
        }
        observation = observe(states, new_states) if observe is not None else None
        return new_states, logs, observation

    return jax.jit(step)


class TrainResult(NamedTuple):
    """The outcome of :func:`train_lockstep`.

    Final states by net name; per-step logs (arrays of shape (steps, nets)); observations stacked
    along a leading step axis; ``log_values`` (``{key: array}``, one entry per logging point, at
    ``log_steps``) from ``on_log``'s return values; wall time of the steps this call ran
    (compilation included) and of its first step; the step it resumed from (0 for a fresh run).
    """

    states: dict[str, TrainState]
    logs: dict[str, np.ndarray]
    observations: PyTree | None
    seconds: float
    first_step_seconds: float
    log_steps: np.ndarray
    log_values: dict[str, np.ndarray]
    resumed_from: int


def log_points(steps: int, log_every: int) -> list[int]:
    """The steps at which :func:`train_lockstep` calls ``on_log``: 0, every ``log_every``, and the last.

    >>> log_points(7, 3)
    [0, 3, 6, 7]
    """
    points = [0] + [s for s in range(1, steps + 1) if (log_every and s % log_every == 0) or s == steps]
    return sorted(set(points))


def train_lockstep(
    nets: Sequence[Net],
    states: Sequence[TrainState],
    batches: Iterable[Batch] | Callable[[int], Iterable[Batch]],
    steps: int,
    *,
    observe: Callable[[Sequence[TrainState], Sequence[TrainState]], PyTree] | None = None,
    on_log: Callable[[int, dict[str, TrainState]], Mapping[str, float] | None] | None = None,
    log_every: int = 0,
    data_parallel: Any = None,
    progress: bool = True,
    description: str = "training",
    checkpointer: Any = None,
    microbatch: int = 0,
) -> TrainResult:
    """Train ``nets`` in lock step for ``steps`` steps on identical batches drawn once from ``batches``.

    ``on_log(step, states_by_name)`` runs on the host at :func:`log_points` (before the first step,
    every ``log_every`` steps, after the last); a mapping of floats it returns is kept, per key, in
    ``TrainResult.log_values``. ``observe(states_before, states_after)`` runs inside the compiled
    step after every update; its outputs are stacked along a new leading axis (one row per step).
    Deterministic: no randomness beyond the given states and batch order.

    Resumable: with a :class:`qatlib.training.checkpoint.Checkpointer`, everything the run has produced (the
    states, the per-step logs, the observations and logged values so far) is saved atomically every
    ``checkpointer.every`` steps and after the last step; a new call with the same arguments restores
    the newest checkpoint and computes only the steps after it, ending bit-identical to an
    uninterrupted run. ``batches`` must then be a function ``start_step -> iterable of batches``
    (e.g. :func:`qatlib.data.batch_stream` with ``start_step``), so the resumed run sees the batches
    an uninterrupted one would. ``microbatch``: see :func:`make_lockstep_step`.
    """
    _check_run(nets, states, batches, steps, log_every, checkpointer)
    from tqdm.auto import tqdm

    names = [net.name for net in nets]
    step_fn = make_lockstep_step(nets, observe, microbatch=microbatch)
    states = _replicated(list(states), data_parallel)
    record = _HostRecord(steps, len(nets), log_points(steps, log_every),
                         jax.eval_shape(lambda s: observe(s, s), states) if observe is not None else None)

    def log(step: int) -> None:
        if on_log is not None:
            record.log(step, on_log(step, dict(zip(names, states, strict=True))) or {})

    log(0)
    start_step, states = _resume(checkpointer, states, record, steps, data_parallel)
    iterator: Iterator[Batch] = iter(batches(start_step) if callable(batches) else batches)
    start = time.perf_counter()
    first_step_seconds = 0.0
    bar = tqdm(range(start_step + 1, steps + 1), desc=description, disable=not progress, mininterval=1.0,
               initial=start_step, total=steps)
    for step in bar:
        try:
            batch = next(iterator)
        except StopIteration:
            raise ValueError(f"the batch stream ended after {step - 1} of {steps} steps") from None
        states, logs, observation = step_fn(states, data_parallel.shard_batch(batch) if data_parallel is not None else batch)
        if step == start_step + 1:
            jax.block_until_ready(states)
            first_step_seconds = time.perf_counter() - start
        record.add(step, logs, observation)
        if step in record.points:
            record.flush()
            log(step)
            bar.set_postfix(loss=float(np.mean(record.buffers["loss"][step - 1])))
        if checkpointer is not None and (step % checkpointer.every == 0 or step == steps):
            record.flush()
            checkpointer.save(step, {"states": states, "buffers": record.buffers}, force=True)
    record.flush()
    jax.block_until_ready(states)
    return record.result(dict(zip(names, states, strict=True)), time.perf_counter() - start, first_step_seconds, start_step)


def _check_run(nets: Sequence[Net], states: Sequence[TrainState], batches: Any, steps: int, log_every: int,
               checkpointer: Any) -> None:
    """:func:`train_lockstep`'s arguments, refused before any work starts."""
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if len(states) != len(nets):
        raise ValueError(f"got {len(states)} states for {len(nets)} nets")
    if log_every < 0:
        raise ValueError(f"log_every must be >= 0, got {log_every}")
    if checkpointer is not None and not callable(batches):
        raise ValueError("a resumable run needs batches as a function start_step -> batches")


def _replicated(states: list[TrainState], data_parallel: Any) -> list[TrainState]:
    return [data_parallel.replicate(state) for state in states] if data_parallel is not None else states


class _HostRecord:
    """Everything a lock-step run produces, in host buffers allocated up front so that a checkpoint
    has fixed shapes: each step's loss and accuracy per net, the observations (one row per step),
    and ``on_log``'s values per logging point. Per-step device outputs wait in ``pending`` and move
    to the buffers at :meth:`flush` (one device sync per flush)."""

    def __init__(self, steps: int, nets: int, points: list[int], observation_shapes: PyTree | None) -> None:
        self.points = points
        self.observing = observation_shapes is not None
        self.buffers: dict[str, Any] = {
            "loss": np.zeros((steps, nets), np.float32),
            "accuracy": np.zeros((steps, nets), np.float32),
        }
        if self.observing:
            self.buffers["observations"] = jax.tree.map(lambda x: np.zeros((steps, *x.shape), x.dtype), observation_shapes)
        self.pending: list[tuple[int, dict[str, jax.Array], PyTree]] = []

    def add(self, step: int, logs: dict[str, jax.Array], observation: PyTree) -> None:
        """Hold step ``step``'s device outputs in ``pending`` until the next :meth:`flush`."""
        self.pending.append((step, logs, observation))

    def log(self, step: int, values: Mapping[str, float]) -> None:
        """Keep ``on_log``'s ``values`` at logging point ``step``."""
        row = self.points.index(step)
        for key, value in values.items():
            column = self.buffers.setdefault("log_values", {}).setdefault(key, np.full(len(self.points), np.nan))
            column[row] = float(value)

    def flush(self) -> None:
        """Move the pending per-step outputs into the host buffers (gathered from every process when
        the run spans several: :func:`_to_host`)."""
        arrays = [leaf for leaf in jax.tree.leaves(self.pending) if isinstance(leaf, jax.Array)]
        if all(array.is_fully_addressable for array in arrays):
            pending = jax.device_get(self.pending)  # one transfer for every pending step
        else:
            pending = jax.tree.map(lambda leaf: _to_host(leaf) if isinstance(leaf, jax.Array) else leaf, self.pending)
        for step, logs, observation in pending:
            self.buffers["loss"][step - 1] = logs["loss"]
            self.buffers["accuracy"][step - 1] = logs["accuracy"]
            if self.observing:
                jax.tree.map(lambda buffer, row: buffer.__setitem__(step - 1, row), self.buffers["observations"], observation)
        self.pending.clear()

    def result(self, states: dict[str, TrainState], seconds: float, first_step_seconds: float, start_step: int) -> TrainResult:
        return TrainResult(
            states,
            {"loss": self.buffers["loss"], "accuracy": self.buffers["accuracy"]},
            self.buffers.get("observations"),
            seconds,
            first_step_seconds,
            np.asarray(self.points),
            dict(self.buffers.get("log_values", {})),
            start_step,
        )


def _resume(checkpointer: Any, states: list[TrainState], record: _HostRecord, steps: int,
            data_parallel: Any) -> tuple[int, list[TrainState]]:
    """The step to start from and the states there: the newest checkpoint's (its buffers into
    ``record``, :meth:`qatlib.training.checkpoint.Checkpointer.resume`), or step 0 and ``states``."""
    if checkpointer is None:
        return 0, states
    start_step, restored = checkpointer.resume({"states": states, "buffers": record.buffers}, steps)
    if start_step == 0:
        return 0, states
    record.buffers = jax.tree.map(np.array, restored["buffers"])  # writable host copies
    return start_step, _replicated(list(restored["states"]), data_parallel)


def _to_host(array: jax.Array) -> np.ndarray:
    """A NumPy copy of ``array``, gathered from every process when it is sharded over several."""
    if array.is_fully_addressable:
        return np.asarray(array)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(array, tiled=True))


def make_evaluator(
    model: nn.Module, data_parallel: Any = None, *, microbatch: int = 0
) -> Callable[[TrainState, Iterable[Batch]], dict[str, Any]]:
    """``evaluate(state, batches) -> {"accuracy", "loss", "predictions", "logits"}`` in eval mode.

    The one evaluation loop of the experiments. One compiled forward pass serves every net of an
    experiment: the forward pass is ``Q(w)`` exactly whatever the estimator (which only shapes the
    backward pass), so Q-hat-net and STE-net are evaluated by the same function. Batches must all
    have the first one's size, except possibly the last, which is padded (and the padding dropped).
    Accuracy and loss are :func:`qatlib.metrics.accuracy_and_loss` of all the logits.

    ``microbatch`` > 0 runs each batch's forward pass over chunks of that many examples
    (``lax.map``) when it divides the batch size (else the batch at once): a speed knob only, since
    each example's logits do not depend on the examples beside it: every logit equals the whole
    batch's bit for bit (``tests/training/test_lockstep.py``). Not combined with ``data_parallel``.

    >>> import flax.linen as nn, jax, numpy as np
    >>> model = nn.Dense(3)
    >>> state = TrainState(model.init(jax.random.key(0), np.ones((1, 4)))["params"], None, (), 0)
    >>> batches = [{"image": np.ones((4, 4)), "label": np.zeros(4, int)}, {"image": np.ones((2, 4)), "label": np.zeros(2, int)}]
    >>> out = make_evaluator(model)(state, batches)
    >>> out["logits"].shape, out["predictions"].shape
    ((6, 3), (6,))
    """

    _check_microbatch(microbatch)
    if microbatch and data_parallel is not None:
        raise ValueError("microbatch (evaluation in chunks) cannot be combined with data_parallel")

    def logits_of(params: PyTree, batch_stats: PyTree | None, images: jax.Array) -> jax.Array:
        return _apply(model, params, batch_stats, images, train=False)[0]

    @jax.jit
    def forward(params: PyTree, batch_stats: PyTree | None, images: jax.Array) -> jax.Array:
        size = images.shape[0]
        if not microbatch or size <= microbatch or size % microbatch:
            return logits_of(params, batch_stats, images)
        logits = jax.lax.map(lambda chunk: logits_of(params, batch_stats, chunk), _in_chunks(images, microbatch))
        return logits.reshape(size, *logits.shape[2:])

    def evaluate(state: TrainState, batches: Iterable[Batch]) -> dict[str, Any]:
        logits, labels, size = [], [], None
        for batch in batches:
            n = len(batch["label"])
            size = size or n
            if n > size:
                raise ValueError(f"evaluation batches must not grow: {n} after {size}")
            images = np.asarray(batch["image"])
            images = np.pad(images, ((0, size - n),) + ((0, 0),) * (images.ndim - 1))
            if data_parallel is not None and size % data_parallel.num_devices == 0:
                images = data_parallel.shard_batch({"image": images})["image"]
            logits.append(_to_host(forward(state.params, state.batch_stats, images))[:n])
            labels.append(np.asarray(batch["label"]))
        if not logits:
            raise ValueError("no evaluation examples")
        all_logits, all_labels = np.concatenate(logits), np.concatenate(labels)
        stats = metrics.accuracy_and_loss(all_logits, all_labels)
        return {**stats, "predictions": np.argmax(all_logits, axis=-1), "logits": all_logits}

    return evaluate
