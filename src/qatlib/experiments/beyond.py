"""Presets of the chapter "When is the STE enough?": the equivalence measured beyond the paper.

The paper's Future Work (Appendix I) asks for "weight alignment error throughout training ... for
many different learning rates". Each section of the chapter is one question and one preset here; a
preset is a *sweep*: many short lock-step comparisons on full MNIST (the MNIST chapter's convnet,
Q̂ = the paper's threshold-centred, bin-normalised HTGE, 2-bit kernels, the paper's warm-up +
cosine schedule), each over several seeds (``seed`` = the initialisation and the batch order).

=================  =====================================================================================
preset             what varies (every run: Q̂-net, STE-net by the paper's recipe, lr-tweak Q̂-net, ...)
=================  =====================================================================================
``learning_rate``  η from 1/100 of the paper's up to 30x it, for plain SGD, SGD + momentum 0.9, Adam
                   (``learning_rate_large``: 100x to 1000x, where training breaks)
``momentum``       β ∈ {0, 0.5, 0.9, 0.99} at a fixed step size η/(1-β) = 1e-2, plus the diagnostic
                   Q̂-net ``v <- βv + g; w <- w - η Q̂'(w) v`` (g = ∂L/∂Q(w)), paired with STE-net
                   (``momentum_lr``: both against η at β = 0.9, section 1's grid below the reference)
``bits``           1, 2 and 4 bits, HTGE sharpness 2, 6.5 and 18 / w_max (the authors'): Table 4 for each
``shape``          HTGE sharpness from soft to nearly flat between thresholds, the level-centred
                   phase, and EDE at 1 bit (Q̂' ≈ 0 inside the range: Assumption 5.1.1 fails)
``weight_decay``   an L2 term λw: α on STE-net's learning rate (scales λw too) vs on its slope
``optimizers``     Nesterov (SGD family: M and α), AdamW, signSGD and Lion (nothing changed)
``kernels``        the dense kernel quantized (this project) vs full precision (the authors' code)
``quick``          ten runs, one or two per section, at 20 steps: the book build and CI (about a minute)
=================  =====================================================================================

Every run is cached as soon as it finishes (``runs/checkpoints/beyond/<preset>/<key>/``, keyed by
the config and the code's commit): an interrupted sweep re-run with the same preset resumes after
its last finished run. :func:`run_sweep` returns the runs (:class:`~qatlib.experiments.records.SweepRecord`); the artefact
(``results/beyond/<preset>/metrics.json``) lists them, and :mod:`qatlib.report.beyond` turns them
into the chapter's slopes, ratios and verdicts.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pydantic
from pydantic import Field

import qatlib
from qatlib import data, estimators, metrics, models
from qatlib.experiments.comparison import EVAL_MICROBATCH, Pair, comparison, pair_metrics, q_hat, ste_partner
from qatlib.experiments.config import Config, check_microbatch
from qatlib.experiments.records import NetId, NetRecord, SweepPair, SweepRecord
from qatlib import files
from qatlib.training import lockstep, optimizers
from qatlib.training.recipe import ste_recipe

__all__ = [
    "SECTIONS",
    "REFERENCE_LR",
    "Spec",
    "Point",
    "BeyondConfig",
    "PRESETS",
    "points",
    "run_point",
    "run_sweep",
]

PyTree = Any
Section = Literal["learning_rate", "momentum", "bits", "shape", "weight_decay", "optimizers", "kernels"]
SECTIONS: tuple[str, ...] = ("learning_rate", "momentum", "bits", "shape", "weight_decay", "optimizers", "kernels")
LrOptimizer = Literal["sgd", "momentum", "adam"]
ExtraOptimizer = Literal["nesterov", "adamw", "signsgd", "lion"]

#: The reference learning rates: the paper's (SGD + momentum 0.9: 1e-3; Adam: 1e-4), plain SGD at
#: the same step size η/(1-β) = 1e-2 (the MNIST chapter's control), and the sign-based optimizers at
#: Adam's (their steps, like Adam's, are about η per weight).
REFERENCE_LR: dict[str, float] = {
    "sgd": 1e-2, "momentum": 1e-3, "nesterov": 1e-3, "adam": 1e-4, "adamw": 1e-4, "signsgd": 1e-4, "lion": 1e-4,
}


@dataclasses.dataclass(frozen=True)
class Spec:
    """One lock-step comparison: the optimizer, the quantizer, Q̂ and the extra nets to train."""

    optimizer: str  # a name of qatlib.training.optimizers.FAMILIES
    lr: float
    momentum: float = 0.9  # SGD's β
    nesterov: bool = False
    weight_decay: float = 0.0  # coupled L2 (SGD, Adam, signSGD) or decoupled (AdamW, Lion)
    bits: int = 2
    estimator: str = "htge"
    sharpness: float = 5.5  # HTGE k = sharpness / w_max
    centre: str = "threshold"
    ede_t: float = 10.0  # EDE's t (weight units)
    quantize_dense: bool = True
    diagnostic: bool = False  # add the momentum-lag diagnostic Q̂-net (SGD family)
    slope_alpha: bool = False  # add STE-net with α on its slope instead of its learning rate

    def q_hat(self) -> estimators.Estimator:
        if self.estimator == "ede":
            return estimators.EDE(t=self.ede_t)
        return q_hat(self.sharpness, self.centre, name=self.estimator)


@dataclasses.dataclass(frozen=True)
class Point:
    """One run of a sweep: its section, the value on the section's x axis, a series label, the seed."""

    section: str
    series: str
    x: float
    seed: int
    spec: Spec

    def describe(self) -> dict[str, Any]:
        return {"section": self.section, "series": self.series, "x": self.x, "seed": self.seed, "spec": dataclasses.asdict(self.spec)}

    def key(self, config: BeyondConfig) -> str:
        run = {k: getattr(config, k) for k in ("steps", "batch_size", "microbatch", "eval_examples", "log_points")}
        text = json.dumps([self.describe(), run], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class BeyondConfig(Config):
    """A sweep of the "When is the STE enough?" chapter (every field validated on construction)."""

    sections: tuple[Section, ...] = SECTIONS
    seeds: tuple[int, ...] = (0, 1, 2)  # each run's initialisation and batch order
    steps: int = Field(400, ge=1)
    batch_size: int = Field(128, ge=1)
    microbatch: int = Field(16, ge=0)  # gradient chunks (0 = whole batch): same mean gradient, faster on a CPU
    eval_examples: int = Field(2_000, ge=1, le=10_000)  # test images for each net's accuracy (the first ones)
    log_points: int = Field(10, ge=1)  # E^(t) this many times along each run
    # section 1: learning rate
    lr_factors: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)  # x REFERENCE_LR
    lr_optimizers: tuple[LrOptimizer, ...] = ("sgd", "momentum", "adam")
    # section 2: momentum (step size eta / (1 - beta) held at REFERENCE_LR["sgd"])
    momenta: tuple[float, ...] = (0.0, 0.5, 0.9, 0.99)
    # ...and at beta 0.9, the recipe and the diagnostic against eta (x REFERENCE_LR["momentum"])
    diagnostic_lr_factors: tuple[float, ...] = ()
    # sections 3 and 7: the optimizers of Table 4
    table_optimizers: tuple[Literal["momentum", "adam"], ...] = ("momentum", "adam")
    # section 3: bit widths, each with its own HTGE sharpness (x 1/w_max) so that Q-hat' has a
    # comparable shape per bin: the authors' k = 2, 6.5 and 18 at 1, 2 and 4 bits (at 5.5 and 4
    # bits alpha is 0.998: Q-hat would be nearly the STE and the test empty)
    bit_widths: tuple[int, ...] = (1, 2, 4)
    bit_sharpnesses: tuple[float, ...] = (2.0, 6.5, 18.0)
    # section 4: the estimator's shape
    sharpnesses: tuple[float, ...] = (1.0, 5.5, 22.0, 88.0)
    shape_controls: bool = True  # also the level-centred phase and EDE at 1 bit (with HTGE at 1 bit)
    # section 5: weight decay
    weight_decays: tuple[float, ...] = (0.0, 1e-3, 1e-2)
    # section 6: optimizers the paper did not try
    extra_optimizers: tuple[ExtraOptimizer, ...] = ("nesterov", "adamw", "signsgd", "lion")
    adamw_weight_decay: float = Field(1e-2, ge=0)
    # section 7: the dense kernel
    dense_quantized: tuple[bool, ...] = (True, False)
    progress: bool = True
    cache: bool = True  # keep each finished run under runs/checkpoints (resume); quick re-runs everything

    @pydantic.model_validator(mode="after")
    def _check(self) -> "BeyondConfig":
        check_microbatch(self.microbatch, self.batch_size)
        if any(not 0.0 <= beta < 1.0 for beta in self.momenta):
            raise ValueError(f"momenta must lie in [0, 1), got {self.momenta}")
        if any(not factor > 0 for factor in (*self.lr_factors, *self.diagnostic_lr_factors)):
            raise ValueError(f"lr_factors and diagnostic_lr_factors must be positive, got {self.lr_factors}, {self.diagnostic_lr_factors}")
        if any(bits < 1 for bits in self.bit_widths):
            raise ValueError(f"bit_widths must be >= 1, got {self.bit_widths}")
        if len(self.bit_sharpnesses) != len(self.bit_widths) or any(not k > 0 for k in self.bit_sharpnesses):
            raise ValueError(
                f"bit_sharpnesses must give one positive sharpness per bit width {self.bit_widths}, got {self.bit_sharpnesses}"
            )
        if any(decay < 0 for decay in self.weight_decays):
            raise ValueError(f"weight_decays must be >= 0, got {self.weight_decays}")
        if any(not k > 0 for k in self.sharpnesses):
            raise ValueError(f"sharpnesses must be positive, got {self.sharpnesses}")
        for name in ("sections", "seeds", "lr_factors", "diagnostic_lr_factors", "momenta", "bit_widths", "sharpnesses", "weight_decays", "extra_optimizers", "lr_optimizers", "table_optimizers", "dense_quantized"):
            value = getattr(self, name)
            if len(set(value)) != len(value):
                raise ValueError(f"{name} must not repeat a value, got {value}")
        if not self.sections or not self.seeds:
            raise ValueError("sections and seeds must not be empty")
        return self

    def preflight(self) -> None:
        """Before any work: the shipped MNIST files must be present and pass their checksums."""
        data.verify_mnist(None)


_QUICK = dict(seeds=(0,), steps=20, batch_size=64, eval_examples=1000, log_points=2, progress=False)
PRESETS: dict[str, BeyondConfig] = {
    "quick": BeyondConfig(
        **_QUICK,
        lr_factors=(0.1, 1.0),
        lr_optimizers=("momentum",),
        momenta=(0.0, 0.9),
        table_optimizers=("momentum",),
        bit_widths=(1,),
        bit_sharpnesses=(2.0,),
        sharpnesses=(22.0,),
        shape_controls=False,
        weight_decays=(1e-2,),
        extra_optimizers=("signsgd", "lion"),
        dense_quantized=(False,),
        cache=False,
    ),
    "learning_rate": BeyondConfig(sections=("learning_rate",), steps=200),
    # the learning_rate sweep continued to where training breaks (the chapter reads both)
    "learning_rate_large": BeyondConfig(sections=("learning_rate",), steps=200, lr_factors=(100.0, 300.0, 1000.0)),
    "momentum": BeyondConfig(sections=("momentum",)),
    # the diagnostic against eta at beta 0.9 (section 1's grid and schedule): does it restore the order?
    "momentum_lr": BeyondConfig(sections=("momentum",), steps=200, momenta=(), diagnostic_lr_factors=(0.01, 0.03, 0.1, 0.3, 1.0)),
    "bits": BeyondConfig(sections=("bits",), steps=200),
    "shape": BeyondConfig(sections=("shape",), steps=200, table_optimizers=("momentum",)),
    "weight_decay": BeyondConfig(sections=("weight_decay",), steps=200),
    "optimizers": BeyondConfig(sections=("optimizers",), steps=200),
    "kernels": BeyondConfig(sections=("kernels",), steps=200),
}
PRESETS["default"] = PRESETS["quick"]  # a book build re-executes the quick sweep and reads the committed sections


def _optimizer(name: str) -> dict[str, Any]:
    """Spec fields of a named optimizer setting ("momentum" = SGD with β 0.9, "nesterov" = its Nesterov form)."""
    if name == "sgd":
        return {"optimizer": "sgd", "momentum": 0.0}
    if name == "momentum":
        return {"optimizer": "sgd", "momentum": 0.9}
    if name == "nesterov":
        return {"optimizer": "sgd", "momentum": 0.9, "nesterov": True}
    return {"optimizer": name}


def points(config: BeyondConfig) -> list[Point]:
    """Every run of the sweep, section by section, seed innermost."""
    out: list[Point] = []

    def add(section: str, series: str, x: float, **spec: Any) -> None:
        out.extend(Point(section, series, float(x), seed, Spec(**spec)) for seed in config.seeds)

    for section in config.sections:
        if section == "learning_rate":
            for name in config.lr_optimizers:
                for factor in config.lr_factors:
                    add(section, name, factor * REFERENCE_LR[name], lr=factor * REFERENCE_LR[name], **_optimizer(name))
        elif section == "momentum":
            for beta in config.momenta:
                add(section, "sgd", beta, optimizer="sgd", momentum=beta, lr=REFERENCE_LR["sgd"] * (1 - beta), diagnostic=True)
            for factor in config.diagnostic_lr_factors:
                lr = factor * REFERENCE_LR["momentum"]
                add(section, "eta", lr, optimizer="sgd", momentum=0.9, lr=lr, diagnostic=True)
        elif section == "bits":
            for name in config.table_optimizers:
                for bits, k in zip(config.bit_widths, config.bit_sharpnesses, strict=True):
                    add(section, name, bits, lr=REFERENCE_LR[name], bits=bits, sharpness=k, **_optimizer(name))
        elif section == "shape":
            for name in config.table_optimizers:
                for k in config.sharpnesses:
                    add(section, f"{name}/htge", k, lr=REFERENCE_LR[name], sharpness=k, **_optimizer(name))
                if config.shape_controls:
                    add(section, f"{name}/htge_level", 5.5, lr=REFERENCE_LR[name], centre="level", **_optimizer(name))
                    add(section, f"{name}/htge_1bit", 5.5, lr=REFERENCE_LR[name], bits=1, **_optimizer(name))
                    add(section, f"{name}/ede_1bit", 10.0, lr=REFERENCE_LR[name], bits=1, estimator="ede", **_optimizer(name))
        elif section == "weight_decay":
            for decay in config.weight_decays:
                add(section, "momentum", decay, lr=REFERENCE_LR["momentum"], weight_decay=decay, slope_alpha=True, **_optimizer("momentum"))
        elif section == "optimizers":
            for name in config.extra_optimizers:
                decay = config.adamw_weight_decay if name == "adamw" else 0.0
                add(section, name, REFERENCE_LR[name], lr=REFERENCE_LR[name], weight_decay=decay, **_optimizer(name))
        elif section == "kernels":
            for name in config.table_optimizers:
                for dense in config.dense_quantized:
                    add(section, name, float(dense), lr=REFERENCE_LR[name], quantize_dense=dense, **_optimizer(name))
    return out


def _diagnostic_net(label: str, model: Any, spec: Spec, quantizers: PyTree, estimator: Any, steps: int) -> lockstep.Net:
    """The momentum-lag diagnostic: STE gradients g, ``v <- βv + g; w <- w - η Q̂'(w) v``."""
    schedule = optimizers.warmup_cosine_schedule(spec.lr, steps)
    transform = optax.chain(
        optax.trace(decay=spec.momentum),
        optimizers.scale_by_derivative(quantizers, estimator),
        optax.scale_by_learning_rate(schedule),
    )
    return lockstep.Net(NetId(label, "diagnostic").name, model.clone(estimator=ste_partner(estimator, quantizers)), transform)


def _layer_alphas(quantizers: PyTree, estimator: Any) -> list[float]:
    """α (Eq. 4) of every quantized layer."""
    return [float(qatlib.alpha(q, estimator)) for q in jax.tree.leaves(quantizers) if isinstance(q, qatlib.UniformQuantizer)]


def _nets(spec: Spec, seed: int, steps: int) -> tuple[Any, PyTree, estimators.Estimator, list[lockstep.Net], list[lockstep.TrainState], list[Pair]]:
    """The model, quantizers, Q̂, nets, initial states and pairs of one run."""
    estimator = spec.q_hat()
    model = models.CholletConvNet(bits=spec.bits, estimator=estimator, quantize_dense=spec.quantize_dense)
    params0 = jax.jit(model.init)(jax.random.key(seed), jnp.zeros((1, 28, 28, 1), jnp.float32))["params"]
    quantizers = model.quantizers(params0)
    make = functools.partial(
        optimizers.make_optimizer, momentum=spec.momentum, nesterov=spec.nesterov, weight_decay=spec.weight_decay
    )
    label = spec.optimizer
    nets, states, pairs = comparison(spec.optimizer, model, params0, quantizers, estimator, spec.lr, steps, make_optimizer=make)
    if spec.diagnostic:
        if optimizers.family(spec.optimizer) != "sgd" or spec.nesterov:
            raise ValueError("the momentum-lag diagnostic is defined for SGD with heavy-ball momentum")
        nets.append(_diagnostic_net(label, model, spec, quantizers, estimator, steps))
        states.append(lockstep.init_state(nets[-1], params0))
        pairs.append(Pair(label, "diagnostic", NetId(label, "diagnostic"), NetId(label, "ste_net"), mapped=True))
    if spec.slope_alpha:
        if optimizers.family(spec.optimizer) != "sgd":
            raise ValueError("α on the slope is an SGD-family recipe")
        recipe = ste_recipe(params0, quantizers, estimator, spec.optimizer, alpha_on="slope")
        slope = NetId(label, "ste_net_slope")
        net = lockstep.Net(slope.name, model.clone(estimator=recipe.estimator), make(spec.optimizer, spec.lr, steps))
        nets.append(net)
        states.append(lockstep.init_state(net, recipe.params))  # M(w0)
        pairs.append(Pair(label, "slope_alpha", NetId(label, "q_net"), slope, mapped=True))
    return model, quantizers, estimator, nets, states, pairs


def _pair_values(pair: Pair, params: dict[str, PyTree], quantizers: PyTree, estimator: Any, history: list[float]) -> SweepPair:
    """The MNIST chapter's pair metrics, plus Ē in units of the range in STE-net's coordinates."""
    mapping = estimator if pair.mapped else None
    mapped_scale = metrics.E_bar(params[pair.net_a], params[pair.net_b], quantizers, mapping, scale="mapped")
    return SweepPair(**dict(pair_metrics(pair, params, quantizers, estimator).items()), E_bar_mapped_scale=mapped_scale, E_t=history)


def _finite(tree: PyTree) -> bool:
    return all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(tree))


def run_point(point: Point, config: BeyondConfig, dataset: data.MNIST) -> SweepRecord:
    """Train one run's nets in lock step on identical batches and measure every pair: its
    :class:`~qatlib.experiments.records.SweepRecord`. A pair whose nets diverged (non-finite
    weights) has its Ē^(t) only.
    """
    start = time.perf_counter()
    model, quantizers, estimator, nets, states, pairs = _nets(point.spec, point.seed, config.steps)
    log_every = max(config.steps // config.log_points, 1)

    def on_log(step: int, by_name: dict[str, lockstep.TrainState]) -> dict[str, float]:
        params = {name: state.params for name, state in by_name.items()}
        finite = {name: _finite(p) for name, p in params.items()}
        values = {}
        for pair in pairs:
            ok = finite[pair.net_a] and finite[pair.net_b]
            mapping = estimator if pair.mapped else None
            values[pair.experiment] = metrics.E_bar(params[pair.net_a], params[pair.net_b], quantizers, mapping) if ok else float("nan")
        return values

    result = lockstep.train_lockstep(
        nets, states,
        lambda first: data.batch_stream(dataset.train_images, dataset.train_labels, config.batch_size, point.seed, start_step=first),
        config.steps, on_log=on_log, log_every=log_every, progress=False, microbatch=config.microbatch,
    )
    params = {name: state.params for name, state in result.states.items()}
    finite = {name: _finite(p) for name, p in params.items()}
    out_pairs = {}
    for pair in pairs:
        history = [float(v) for v in result.log_values[pair.experiment]]
        finite_pair = finite[pair.net_a] and finite[pair.net_b]
        out_pairs[pair.experiment] = _pair_values(pair, params, quantizers, estimator, history) if finite_pair else SweepPair(E_t=history)
    evaluate = lockstep.make_evaluator(model, microbatch=EVAL_MICROBATCH)
    images, labels = dataset.val_images[: config.eval_examples], dataset.val_labels[: config.eval_examples]
    out_nets = {}
    tail = max(1, config.steps // 10)
    roles = {net.name: net.role for pair in pairs for net in (pair.a, pair.b)}
    for index, net in enumerate(nets):
        role = roles[net.name]
        stats = evaluate(result.states[net.name], data.eval_batches(images, labels, 1000)) if finite[net.name] else {}
        out_nets[role] = NetRecord(
            val_acc=stats.get("accuracy"), val_loss=stats.get("loss"),
            train_loss=float(np.mean(result.logs["loss"][-tail:, index])), finite=finite[net.name],
        )
    alphas = {round(value, 6) for value in _layer_alphas(quantizers, estimator)}
    return SweepRecord(
        **point.describe(), pairs=out_pairs, nets=out_nets, alpha=sorted(alphas),
        log_steps=[int(s) for s in result.log_steps], seconds=time.perf_counter() - start,
    )


def run_sweep(
    config: BeyondConfig,
    *,
    cache_dir: str | Path | None = None,
    dataset: data.MNIST | None = None,
    on_point: Callable[[int, int, Point], None] | None = None,
) -> list[SweepRecord]:
    """Run every point of ``config`` (skipping those already in ``cache_dir``) and return them all.

    Each finished run is written to ``cache_dir/<point key>.json`` at once (atomically), so an
    interrupted sweep loses at most the run in progress.
    """
    todo = points(config)
    cache = Path(cache_dir) if cache_dir is not None else None
    from tqdm.auto import tqdm

    runs = []
    bar = tqdm(todo, desc="beyond: runs", disable=not config.progress)
    for index, point in enumerate(bar):
        path = cache / f"{point.key(config)}.json" if cache is not None else None
        if path is not None and path.is_file():
            outcome = SweepRecord.from_json(files.read_json(path))
        else:
            bar.set_postfix_str(f"{point.section} {point.series} x={point.x:g} seed={point.seed}")
            if dataset is None:  # not before: a sweep resumed from a full cache trains nothing
                dataset = data.load_mnist("idx")
            outcome = run_point(point, config, dataset)
            if path is not None:
                files.write_json(path, outcome.to_json())
        runs.append(outcome)
        if on_point is not None:
            on_point(index, len(todo), point)
    return runs
