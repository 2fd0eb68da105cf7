"""The paper's comparison experiments (Section 6.1, Tables 1-5), exactly as the paper defines them.

Q-hat is the HTGE of Pei et al. (2023), read as a sharpness of 5.5 / w_max in weight units per
layer (w_max = the half-length of the layer's representable range = its He-uniform bound), in the
authors' bin-normalised shape (Q-hat rises by exactly Delta across each bin):
``estimators.HTGE(5.5, scale="range", normalize=True)``. Every layer's Q-hat' then has the same
shape in bin units, and alpha is the same for every layer. Its STE-net partner is
``estimators.mirror_partner(Q-hat, q)`` (Appendix G): Q-hat' vanishes beyond the representable
range, so the partner is the clipped STE, PWL on [M(w_min), M(w_max)] = [w_min, w_max].

Experiments (pairs of nets trained in lock step on identical batches, Table 3):

==============  ==========================================  ================================
experiment      net a  vs  net b                              E (Eq. 5, with E^(0) = 0)
==============  ==========================================  ================================
sgd/baseline    Q-hat-net (w0, eta) vs STE-net (M(w0), alpha*eta)   |M(w_a) - w_b|
sgd/lr_tweak    Q-hat-net (eta) vs Q-hat-net (1.01 eta)              |w_a - w_b|
sgd/unadjusted  Q-hat-net vs STE-net (w0, eta: no M, no alpha)       |w_a - w_b|
adam/baseline   Q-hat-net vs STE-net (same w0, same eta)             |w_a - w_b|
adam/lr_tweak   Q-hat-net (eta) vs Q-hat-net (1.01 eta)              |w_a - w_b|
==============  ==========================================  ================================

alpha * eta multiplies the learning rate of the quantized kernels only; biases (never quantized)
train with eta in both nets. All nets share one initialisation w0 (He-uniform, ``init_seed``).

>>> from qatlib import models
>>> q = models.kernel_quantizer(2, 576)
>>> round(qatlib.alpha(q, q_hat()), 4), ste_partner(q_hat(), {"k": q})
(0.6095, PWL(lower=None, upper=None))
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

import qatlib
from qatlib import data as data_lib
from qatlib import estimators, metrics, models, train
from qatlib.presets.mnist import MNISTConfig

__all__ = [
    "EXPERIMENTS",
    "Pair",
    "q_hat",
    "LayerwisePartner",
    "ste_partner",
    "lr_scale_tree",
    "comparison",
    "MNISTRun",
    "conv_layers",
    "run_mnist",
    "measure",
]

PyTree = Any

EXPERIMENTS: dict[str, tuple[str, ...]] = {
    "sgd": ("baseline", "lr_tweak", "unadjusted"),
    "adam": ("baseline", "lr_tweak"),
}


@dataclasses.dataclass(frozen=True)
class Pair:
    """Two nets of a comparison and whether E maps net a through M first (SGD baseline)."""

    optimizer: str
    experiment: str
    net_a: str
    net_b: str
    mapped: bool


def q_hat(sharpness: float = 5.5, centre: str = "threshold") -> estimators.Estimator:
    """The paper's Q-hat: bin-normalised HTGE with k = sharpness / w_max per layer, its tanh centred
    on the rounding thresholds (Appendix B); ``centre="level"`` gives the Δ/2-shifted control."""
    return estimators.HTGE(sharpness, scale="range", normalize=True, centre=centre)


def _quantizers(tree: PyTree) -> list[Any]:
    return [q for q in jax.tree.leaves(tree, is_leaf=lambda x: x is None) if q is not None]


@functools.lru_cache(maxsize=256)
def _mirror_partner(q_hat: estimators.Estimator, quantizer: Any) -> estimators.Estimator:
    with jax.ensure_compile_time_eval():  # concrete floats even while a step is being traced
        return estimators.mirror_partner(q_hat, quantizer)


@dataclasses.dataclass(frozen=True)
class LayerwisePartner(estimators.Estimator):
    """STE-net's estimator when the Appendix G partner differs per layer.

    On each layer's quantizer q it is ``estimators.mirror_partner(q_hat, q)`` (PWL on
    [M(w_min), M(w_max)] of that layer). Needed, e.g., for 1-bit kernels, where M maps the range
    far beyond itself.
    """

    q_hat: estimators.Estimator
    name: ClassVar[str] = "mirror_partner"
    clips: ClassVar[bool] = True

    def partner(self, quantizer: Any) -> estimators.Estimator:
        return _mirror_partner(self.q_hat, quantizer)

    def derivative(self, w: Any, quantizer: Any) -> jax.Array:
        return self.partner(quantizer).derivative(w, quantizer)


def ste_partner(estimator: estimators.Estimator, quantizers: PyTree) -> estimators.Estimator:
    """One model-wide STE-net estimator equal to ``mirror_partner(estimator, q)`` on every layer.

    The partner is ``STE()`` (Q-hat' > 0 everywhere) or PWL on [M(w_min), M(w_max)] per layer; when
    those bounds are every layer's own representable range (up to float32 rounding) that is
    ``PWL()``; otherwise :class:`LayerwisePartner`.
    """
    layers = _quantizers(quantizers)
    if not layers:
        raise ValueError("no quantized layers")
    partners = [estimators.mirror_partner(estimator, q) for q in layers]
    if all(isinstance(p, estimators.STE) for p in partners):
        return estimators.STE()
    for partner, q in zip(partners, layers, strict=True):
        lo, hi = q.representable_range
        tolerance = 1e-5 * (hi - lo)
        if not (
            isinstance(partner, estimators.PWL)
            and abs(partner.bounds(q)[0] - lo) <= tolerance
            and abs(partner.bounds(q)[1] - hi) <= tolerance
        ):
            return LayerwisePartner(estimator)
    return estimators.PWL()


def lr_scale_tree(params: PyTree, quantizers: PyTree, estimator: estimators.Estimator) -> PyTree:
    """alpha(q, Q-hat) (Eq. 4) on every quantized leaf, 1.0 elsewhere: STE-net's lr alpha*eta (Table 1)."""
    return jax.tree.map(
        lambda q, leaf: 1.0 if q is None else qatlib.alpha(q, estimator),
        quantizers,
        params,
        is_leaf=lambda x: x is None or isinstance(x, qatlib.UniformQuantizer),
    )


def comparison(
    optimizer: str,
    model: Any,
    params0: PyTree,
    quantizers: PyTree,
    estimator: estimators.Estimator,
    learning_rate: float,
    total_steps: int,
    *,
    lr_tweak: float = 1.01,
    make_optimizer: Callable[..., Any] = train.make_optimizer,
) -> tuple[list[train.Net], list[train.TrainState], list[Pair]]:
    """The nets, initial states and pairs of one optimizer's experiments (see the table above).

    ``model`` is a Flax module with an ``estimator`` field (Q-hat-net); its STE-net is
    ``model.clone(estimator=ste_partner(...))``.
    """
    if optimizer not in EXPERIMENTS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {sorted(EXPERIMENTS)}")
    q_model = model.clone(estimator=estimator)
    ste_model = model.clone(estimator=ste_partner(estimator, quantizers))

    def net(name: str, module: Any, lr: float, lr_scale: PyTree | None = None) -> train.Net:
        return train.Net(f"{optimizer}/{name}", module, make_optimizer(optimizer, lr, total_steps, lr_scale=lr_scale))

    nets = [net("q_net", q_model, learning_rate)]
    starts = [params0]
    pairs = []
    if optimizer == "sgd":
        nets.append(net("ste_net", ste_model, learning_rate, lr_scale_tree(params0, quantizers, estimator)))
        starts.append(
            jax.tree.map(
                lambda q, w: w if q is None else metrics.weight_map_jit(w, q, estimator),
                quantizers,
                params0,
                is_leaf=lambda x: x is None or isinstance(x, qatlib.UniformQuantizer),
            )
        )
    else:
        nets.append(net("ste_net", ste_model, learning_rate))
        starts.append(params0)
    pairs.append(Pair(optimizer, "baseline", nets[0].name, nets[1].name, mapped=optimizer == "sgd"))
    nets.append(net("q_net_lr_tweak", q_model, learning_rate * lr_tweak))
    starts.append(params0)
    pairs.append(Pair(optimizer, "lr_tweak", nets[0].name, nets[2].name, mapped=False))
    if optimizer == "sgd":
        nets.append(net("ste_net_unadjusted", ste_model, learning_rate))
        starts.append(params0)
        pairs.append(Pair(optimizer, "unadjusted", nets[0].name, nets[3].name, mapped=False))
    states = [train.init_state(n, p) for n, p in zip(nets, starts, strict=True)]
    return nets, states, pairs


@dataclasses.dataclass
class MNISTRun:
    """Everything the MNIST chapter shows: JSON-ready metrics plus arrays for the figures."""

    metrics: dict[str, Any]
    config: MNISTConfig
    data: data_lib.MNIST
    quantizers: PyTree
    estimator: estimators.Estimator
    params: dict[str, PyTree]  # final params by net name
    initial_params: dict[str, PyTree]
    pairs: list[Pair]
    history: dict[str, Any]  # E^(t) along training
    levels: dict[str, np.ndarray] | None  # tracked level sequences (steps + 1, tracked) by net
    train_seconds: float
    seconds: float

    def layer_quantizers(self) -> dict[str, Any]:
        """``{layer name: quantizer}`` of the quantized kernels (e.g. ``{"conv_0": ...}``)."""
        flat = jax.tree_util.tree_flatten_with_path(
            self.quantizers, is_leaf=lambda x: x is None or isinstance(x, qatlib.UniformQuantizer)
        )[0]
        return {str(getattr(path[0], "key", path[0])): q for path, q in flat if q is not None}


def conv_layers(quantizers: PyTree) -> PyTree:
    """The quantizer tree restricted to the convolution kernels (the layers the authors compared)."""
    return metrics.select_layers(quantizers, lambda path: path.startswith("conv"))


def _pair_metrics(pair: Pair, params: dict[str, PyTree], quantizers: PyTree, estimator: Any) -> dict[str, float]:
    """Ē over all quantized kernels and over the conv kernels only, and the quantized weight agreement."""
    a, b = params[pair.net_a], params[pair.net_b]
    mapping = estimator if pair.mapped else None
    return {
        "E_bar": metrics.E_bar(a, b, quantizers, mapping),
        "E_bar_conv": metrics.E_bar(a, b, conv_layers(quantizers), mapping),
        "agreement": metrics.agreement(a, b, quantizers),
        "agreement_conv": metrics.agreement(a, b, conv_layers(quantizers)),
    }


def run_mnist(
    config: MNISTConfig, dataset: data_lib.MNIST | None = None, *, checkpoint_dir: Any = None
) -> MNISTRun:
    """Run the lock-step comparison of ``config`` and measure Tables 3-5, Figure 3 and E^(t).

    With ``config.checkpoint_every > 0`` and a ``checkpoint_dir``, everything is saved there every
    that many steps, and a rerun with the same config resumes from the newest checkpoint and ends
    bit-identical to an uninterrupted run (:func:`qatlib.train.train_lockstep`).
    """
    config.validate()
    start = time.perf_counter()
    if dataset is None:
        dataset = data_lib.load_mnist(config.source, data_dir=config.data_dir or None)
    estimator = q_hat(config.sharpness, config.centre)
    model = models.CholletConvNet(bits=config.bits, estimator=estimator, conv_impl=config.conv_impl)
    params0 = jax.jit(model.init)(jax.random.key(config.init_seed), jnp.zeros((1, 28, 28, 1), jnp.float32))["params"]
    quantizers = models.quantizer_tree(params0, config.bits)
    convs = conv_layers(quantizers)
    learning_rates = {"sgd": config.sgd_lr, "adam": config.adam_lr}

    nets, states, pairs = [], [], []
    optimizer_factories = {
        "sgd": functools.partial(train.make_optimizer, momentum=config.sgd_momentum),
        "adam": train.make_optimizer,
    }
    for optimizer in config.optimizers:
        n, s, p = comparison(
            optimizer, model, params0, quantizers, estimator, learning_rates[optimizer], config.steps,
            lr_tweak=config.lr_tweak, make_optimizer=optimizer_factories[optimizer],
        )
        nets += n
        states += s
        pairs += p
    names = [net.name for net in nets]
    initial_params = {name: state.params for name, state in zip(names, states, strict=True)}

    total_weights = sum(int(math.prod(leaf.shape)) for _, leaf, _ in metrics.quantized_leaves(params0, quantizers))
    tracked = min(config.tracked_weights, total_weights)
    sample = np.sort(np.random.default_rng(config.init_seed).choice(total_weights, tracked, replace=False))

    def observe(before: list[train.TrainState], after: list[train.TrainState]) -> dict[str, Any]:
        # Per step: each net's path length over the conv kernels (the authors' denominator) and the
        # quantized levels of the tracked weights.
        observation: dict[str, Any] = {
            "path_conv": jnp.stack([metrics.path_length(b.params, a.params, convs) for b, a in zip(before, after, strict=True)])
        }
        if tracked:
            observation["levels"] = {
                name: metrics.flat_level_indices(state.params, quantizers, sample) for name, state in zip(names, after, strict=True)
            }
        return observation

    def on_log(step: int, by_name: dict[str, train.TrainState]) -> dict[str, float]:
        params = {name: state.params for name, state in by_name.items()}
        values = {}
        for pair in pairs:
            for key, value in _pair_metrics(pair, params, quantizers, estimator).items():
                values[f"{pair.optimizer}/{pair.experiment}/{key}"] = value
        return values

    checkpointer = None
    if config.checkpoint_every and checkpoint_dir is not None:
        from qatlib.checkpoint import Checkpointer

        checkpointer = Checkpointer(checkpoint_dir, every=config.checkpoint_every)
    result = train.train_lockstep(
        nets,
        states,
        lambda first: data_lib.batch_stream(
            dataset.train_images, dataset.train_labels, config.batch_size, config.data_seed, start_step=first
        ),
        config.steps,
        observe=observe,
        on_log=on_log,
        log_every=config.log_every,
        progress=config.progress,
        description=f"{len(nets)} nets in lock step",
        checkpointer=checkpointer,
    )
    if checkpointer is not None:
        checkpointer.close()
    final = {name: state.params for name, state in result.states.items()}

    history: dict[str, Any] = {"steps": [int(s) for s in result.log_steps]}
    for pair in pairs:
        history.setdefault(pair.optimizer, {})[pair.experiment] = {
            key: [float(v) for v in result.log_values[f"{pair.optimizer}/{pair.experiment}/{key}"]]
            for key in ("E_bar", "E_bar_conv", "agreement")
        }
    path_conv = dict(zip(names, np.asarray(result.observations["path_conv"], np.float64).sum(axis=0), strict=True))

    levels = None
    if tracked:
        levels = {
            name: np.concatenate(
                [
                    np.asarray(metrics.flat_level_indices(initial_params[name], quantizers, sample))[None],
                    np.asarray(result.observations["levels"][name]),
                ]
            )
            for name in names
        }

    # Table 5: accuracy and loss on the training images and the 10,000 test images (eval mode).
    logits = {}
    accuracy: dict[str, dict[str, dict[str, float]]] = {}
    train_count = config.train_eval_examples or len(dataset.train_labels)
    train_images, train_labels = dataset.train_images[:train_count], dataset.train_labels[:train_count]
    for net in nets:
        state = result.states[net.name]
        train_logits = train.predict_logits(net, state, train_images, config.eval_batch_size)
        val_logits = train.predict_logits(net, state, dataset.val_images, config.eval_batch_size)
        logits[net.name] = val_logits
        tr = metrics.accuracy_and_loss(train_logits, train_labels)
        va = metrics.accuracy_and_loss(val_logits, dataset.val_labels)
        optimizer, role = net.name.split("/")
        accuracy.setdefault(optimizer, {})[role] = {
            "train_acc": tr["accuracy"],
            "train_loss": tr["loss"],
            "val_acc": va["accuracy"],
            "val_loss": va["loss"],
        }

    table: dict[str, Any] = {}
    for pair in pairs:
        entry: dict[str, Any] = _pair_metrics(pair, final, quantizers, estimator)
        mapping = estimator if pair.mapped else None
        # The authors' code's measure: Σ|M(w_a) − w_b|/w_max over conv kernels / net b's conv path length.
        entry["authors_measure"] = metrics.summed_alignment_error(
            final[pair.net_a], final[pair.net_b], convs, mapping
        ) / max(path_conv[pair.net_b], 1e-30)
        entry["path_length_conv"] = path_conv[pair.net_b]
        entry["E_bar_per_layer"] = metrics.E_bar_per_layer(final[pair.net_a], final[pair.net_b], quantizers, mapping)
        entry["agreement_per_layer"] = metrics.agreement_per_layer(final[pair.net_a], final[pair.net_b], quantizers)
        entry["prediction_agreement"] = metrics.prediction_agreement(logits[pair.net_a], logits[pair.net_b])
        entry["nets"] = [pair.net_a, pair.net_b]
        if levels is not None:
            entry["mirror_room"] = metrics.crossing_statistics(levels[pair.net_a], levels[pair.net_b])
        table.setdefault(pair.optimizer, {})[pair.experiment] = entry

    layer_quantizers = {path: q for path, _, q in metrics.quantized_leaves(params0, quantizers)}
    output = {
        **table,
        "accuracy": accuracy,
        "E_t": history,
        "alpha": {path: qatlib.alpha(q, estimator) for path, q in layer_quantizers.items()},
        "w_max": {path: q.representable_range[1] for path, q in layer_quantizers.items()},
        "estimator": {"q_hat": repr(estimator), "ste_net": repr(ste_partner(estimator, quantizers))},
        "data": {
            "source": dataset.source,
            "note": dataset.note,
            "train": len(dataset.train_labels),
            "val": len(dataset.val_labels),
        },
        "tracked_weights": int(tracked),
        "train_seconds": result.seconds,
        "first_step_seconds": result.first_step_seconds,
        "resumed_from_step": result.resumed_from,
        "train_eval_examples": int(train_count),
    }
    return MNISTRun(
        metrics=output,
        config=config,
        data=dataset,
        quantizers=quantizers,
        estimator=estimator,
        params=final,
        initial_params=initial_params,
        pairs=pairs,
        history=history,
        levels=levels,
        train_seconds=result.seconds,
        seconds=time.perf_counter() - start,
    )


# ------------------------------------------------------------------ artefact, claims and tables
def artefact(run: MNISTRun, preset: str) -> dict[str, Any]:
    """The results JSON of a run: its metrics plus provenance (data, steps, seconds, device, versions, config)."""
    from qatlib import results

    return {
        **run.metrics,
        "provenance": results.provenance(
            data=run.metrics["data"],
            steps=run.config.steps,
            seconds=run.seconds,
            config=run.config,
            preset=preset,
            train_seconds=run.train_seconds,
        ),
    }


def measure(config: MNISTConfig, preset: str) -> tuple[MNISTRun, Any]:
    """Run ``config`` (resuming from its checkpoints when it has them) and write its artefact.

    Returns ``(run, path)``; the path is :func:`qatlib.results.output_path` (``results/`` under
    ``python -m qatlib run``, the untracked ``runs/`` otherwise, e.g. in a book build).
    """
    from qatlib import results

    checkpoints = results.checkpoint_dir("mnist", preset, config) if config.checkpoint_every else None
    run = run_mnist(config, checkpoint_dir=checkpoints)
    return run, results.write_json(results.output_path("mnist", preset), artefact(run, preset))


#: A baseline E_bar within this factor of the lr-tweak one counts as "comparable" (claim A);
#: an unadjusted E_bar at least this factor above the baseline counts as "clearly worse" (claim B).
CLAIM_FACTOR = 2.0
#: |val acc (Q-hat-net) - val acc (STE-net)| below this counts as "a fraction of a percent".
ACCURACY_TOLERANCE = 0.005


def claims(metrics_json: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The paper's claims checked on one results JSON (per optimizer present).

    * ``A``: E_bar(baseline) <= CLAIM_FACTOR * E_bar(lr_tweak) -- Q-hat -> STE is "a small change";
    * ``B`` (SGD): E_bar(unadjusted) >= CLAIM_FACTOR * E_bar(baseline) -- M matters;
    * ``accuracy``: |val_acc(Q-hat-net) - val_acc(STE-net)| <= ACCURACY_TOLERANCE.
    """
    verdicts: dict[str, dict[str, Any]] = {}
    for optimizer in ("sgd", "adam"):
        if optimizer not in metrics_json:
            continue
        table = metrics_json[optimizer]
        base, tweak = table["baseline"]["E_bar"], table["lr_tweak"]["E_bar"]
        entry: dict[str, Any] = {"A": base <= CLAIM_FACTOR * tweak, "A_ratio": base / tweak if tweak else float("inf")}
        if "unadjusted" in table:
            unadjusted = table["unadjusted"]["E_bar"]
            entry["B"] = unadjusted >= CLAIM_FACTOR * base
            entry["B_ratio"] = unadjusted / base if base else float("inf")
        acc = metrics_json["accuracy"][optimizer]
        difference = acc["q_net"]["val_acc"] - acc["ste_net"]["val_acc"]
        entry["accuracy"] = abs(difference) <= ACCURACY_TOLERANCE
        entry["val_acc_difference"] = difference
        verdicts[optimizer] = entry
    return verdicts


def _percent(value: float | None, decimals: int = 3) -> str:
    return "–" if value is None else f"{100 * value:.{decimals}f}%"


LABELS = {"baseline": "baseline", "lr_tweak": "lr-tweak", "unadjusted": "unadjusted"}
SHORT = {"sgd": "S", "adam": "A"}


def _frame(header: list[str], rows: list[list[str]]) -> Any:
    import pandas as pd

    return pd.DataFrame(rows, columns=header).set_index(header[0])


def table4_frame(ours: dict[str, Any], paper: dict[str, Any]) -> Any:
    """Table 4 (MNIST half) as a pandas DataFrame: Ē and agreement, ours beside the paper's.

    Ours three ways: Ē over all quantized kernels, Ē over the conv kernels (the authors compared
    only those) and the authors' code's measure (Σ|M(w_a) − w_b|/w_max over conv kernels divided by
    net b's path length), so a reader sees which of them the printed values resemble.
    ``paper`` is ``paper_tables()["table4"]["mnist"]``.
    """
    header = [
        "experiment", "Ē (paper)", "Ē, all kernels", "Ē, conv kernels", "authors' measure",
        "agreement (paper)", "agreement, all", "agreement, conv", "prediction agreement",
    ]
    rows = []
    for optimizer in ("sgd", "adam"):
        for experiment in EXPERIMENTS[optimizer]:
            mine = ours.get(optimizer, {}).get(experiment)
            theirs = paper.get(optimizer, {}).get(experiment, {})
            if mine is None:
                continue
            rows.append([
                f"{LABELS[experiment]} ({SHORT[optimizer]})",
                _percent(theirs.get("E_bar")),
                _percent(mine["E_bar"]),
                _percent(mine.get("E_bar_conv")),
                _percent(mine.get("authors_measure"), 2),
                _percent(theirs.get("agreement"), 2),
                _percent(mine["agreement"], 2),
                _percent(mine.get("agreement_conv"), 2),
                _percent(mine.get("prediction_agreement"), 1),
            ])
    return _frame(header, rows)


def table5_frame(ours: dict[str, Any], paper: dict[str, Any]) -> Any:
    """Table 5 (MNIST half) as a DataFrame: accuracy and loss of STE-net and Q-hat-net, ours and the paper's.

    Diff = Q-hat-net - STE-net (the paper's sign). ``paper`` is ``paper_tables()["table5"]["mnist"]``.
    """
    columns = ("train_acc", "train_loss", "val_acc", "val_loss")

    def cell(column: str, value: float | None) -> str:
        if value is None:
            return "–"
        return f"{100 * value:.2f}%" if column.endswith("acc") else f"{value:.4f}"

    header = ["net", "train acc", "train loss", "val acc", "val loss",
              "paper: train acc", "paper: train loss", "paper: val acc", "paper: val loss"]
    rows = []
    for optimizer in ("sgd", "adam"):
        mine = ours.get(optimizer)
        if mine is None:
            continue
        theirs = paper.get(optimizer, {})
        for label, key, paper_key in (("STE", "ste_net", "ste"), ("Q̂", "q_net", "q_hat")):
            rows.append(
                [f"{label} ({SHORT[optimizer]})"]
                + [cell(c, mine[key][c]) for c in columns]
                + [cell(c, theirs.get(paper_key, {}).get(c)) for c in columns]
            )
        diffs = []
        for c in columns:
            diffs.append(cell(c, mine["q_net"][c] - mine["ste_net"][c]))
        for c in columns:
            a, b = theirs.get("q_hat", {}).get(c), theirs.get("ste", {}).get(c)
            diffs.append("–" if a is None or b is None else cell(c, a - b))
        rows.append([f"Diff ({SHORT[optimizer]})"] + diffs)
    return _frame(header, rows)


def mirror_room_frame(ours: dict[str, Any]) -> Any:
    """Per pair: do tracked weights visit the same quantized levels, and how far apart do they cross?"""
    header = ["experiment", "tracked weights", "moved (either net)", "same level sequence (of moved)",
              "crossings paired", "mean offset (steps)", "median", "90th pct", "same step"]
    rows = []
    for optimizer in ("sgd", "adam"):
        for experiment in EXPERIMENTS[optimizer]:
            entry = ours.get(optimizer, {}).get(experiment, {}).get("mirror_room")
            if entry is None:
                continue
            rows.append([
                f"{LABELS[experiment]} ({SHORT[optimizer]})",
                f"{entry['weights']:,}",
                f"{entry['moving_weights']:,}",
                _percent(entry["same_sequence_among_moving"], 1),
                f"{entry['crossings']:,}",
                f"{entry['mean_offset']:.2f}",
                f"{entry['median_offset']:.0f}",
                f"{entry['p90_offset']:.0f}",
                _percent(entry["same_step_share"], 1),
            ])
    return _frame(header, rows)


def claims_frame(runs: dict[str, dict[str, Any]]) -> Any:
    """One row per results JSON (``{label: metrics_json}``): the verdict on each claim, with its ratio."""
    header = ["run", "A (SGD): Ē base / tweak", "A (Adam): Ē base / tweak", "B (SGD): Ē unadj / base",
              "accuracy (SGD): Δ val acc", "accuracy (Adam): Δ val acc"]
    rows = []
    for label, metrics_json in runs.items():
        verdicts = claims(metrics_json)

        def ratio(optimizer: str, key: str) -> str:
            v = verdicts.get(optimizer)
            if v is None or key not in v:
                return "–"
            return f"{'holds' if v[key] else 'fails'} ({v[key + '_ratio']:.2f})"

        def accuracy(optimizer: str) -> str:
            v = verdicts.get(optimizer)
            if v is None:
                return "–"
            return f"{'holds' if v['accuracy'] else 'fails'} ({100 * v['val_acc_difference']:+.2f} pp)"

        rows.append(
            [label, ratio("sgd", "A"), ratio("adam", "A"), ratio("sgd", "B"), accuracy("sgd"), accuracy("adam")]
        )
    return _frame(header, rows)
