"""The paper's comparison experiments (Section 6.1, Tables 1-3): which nets train side by side, and how.

Q-hat is the HTGE of Pei et al. (2023), read as a sharpness of 5.5 / w_max in weight units per
layer (w_max = the half-length of the layer's representable range = its He-uniform bound), in the
authors' bin-normalised shape (Q-hat rises by exactly Delta across each bin):
``estimators.HTGE(5.5, scale="range", normalize=True)``. Every layer's Q-hat' then has the same
shape in bin units, and alpha is the same for every layer. STE-net's start, learning rate and
estimator come from the paper's recipe, :func:`qatlib.training.recipe.ste_recipe` (the one place
that decides them): Q-hat' vanishes beyond the representable range, so the partner is the clipped
STE, PWL on [M(w_min), M(w_max)] = [w_min, w_max] at 2 bits.

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
train with eta in both nets. All nets share one initialisation w0 (He-uniform, the seed).

>>> from qatlib import models
>>> q = models.kernel_quantizer(2, 576)
>>> round(qatlib.alpha(q, q_hat()), 4), ste_partner(q_hat(), {"k": q})
(0.6095, PWL(lower=None, upper=None))
"""


from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import qatlib  # noqa: F401  (the module doctest uses qatlib.alpha)
from qatlib import estimators, metrics
from qatlib.training import lockstep, optimizers
from qatlib.experiments.records import NetId, PairMetrics
from qatlib.training.recipe import LayerwisePartner, recipe_plan, ste_partner, ste_recipe

__all__ = [
    "EVAL_MICROBATCH",
    "EXPERIMENTS",
    "LR_TWEAK",
    "Pair",
    "q_hat",
    "LayerwisePartner",
    "ste_partner",
    "comparison",
    "tweak_experiment",
    "rounding_microbatch",
    "conv_layers",
    "pair_metrics",
]

PyTree = Any
LR_TWEAK = optimizers.LR_TWEAK
#: Examples per chunk of the MNIST experiments' evaluation forward pass (``make_evaluator``'s
#: ``microbatch``): the same logits bit for bit, about 4x faster per batch of 1,000 on the 2-core CPU.
EVAL_MICROBATCH = 25

EXPERIMENTS: dict[str, tuple[str, ...]] = {
    "sgd": ("baseline", "lr_tweak", "unadjusted"),
    "adam": ("baseline", "lr_tweak"),
}


@dataclasses.dataclass(frozen=True)
class Pair:
    """Two nets of a comparison and whether E maps net a through M first (SGD baseline)."""

    optimizer: str
    experiment: str
    a: NetId
    b: NetId
    mapped: bool

    @property
    def net_a(self) -> str:
        """Net a's name in the lock-step run."""
        return self.a.name

    @property
    def net_b(self) -> str:
        """Net b's name in the lock-step run."""
        return self.b.name


def q_hat(
    sharpness: float = 5.5,
    centre: str = "threshold",
    *,
    name: str = "htge",
    scale: str = "range",
    normalize: bool = True,
) -> estimators.Estimator:
    """Q-hat of the experiments; by default the paper's: bin-normalised HTGE with k = sharpness / w_max
    per layer, its tanh centred on the rounding thresholds (Appendix B; ``centre="level"`` gives the
    Δ/2-shifted control). Any other registered estimator is taken by ``name`` with its defaults.

    >>> q_hat()
    HTGE(sharpness=5.5, scale='range', normalize=True, centre='threshold')
    >>> q_hat(name="mad")
    MAD()
    """
    if name.lower() == "htge":
        return estimators.HTGE(sharpness, scale=scale, normalize=normalize, centre=centre)  # type: ignore[arg-type]
    return estimators.get(name)


def tweak_experiment(factor: float) -> str:
    """The name of the pair Q̂-net vs Q̂-net with learning rate × ``factor``: the paper's 1% is
    ``"lr_tweak"`` (Table 3), others say their change.

    >>> tweak_experiment(1.01), tweak_experiment(1.001), tweak_experiment(1.1)
    ('lr_tweak', 'lr_tweak_0.1pct', 'lr_tweak_10pct')
    """
    if factor == LR_TWEAK:
        return "lr_tweak"
    return f"lr_tweak_{round((factor - 1) * 100, 6):g}pct"


def rounding_microbatch(batch_size: int, microbatch: int) -> int:
    """Gradient chunks for Q̂-net's rounding twin: another split of the same batch (the same mean
    gradient, summed in another order). The largest divisor of the batch below ``microbatch``, or
    two halves when the nets take the whole batch at once.

    >>> rounding_microbatch(600, 25), rounding_microbatch(128, 16), rounding_microbatch(64, 0)
    (24, 8, 32)
    """
    if microbatch in (0, batch_size):
        if batch_size % 2:
            raise ValueError(f"the rounding twin needs an even batch (two halves) when microbatch is 0, got {batch_size}")
        return batch_size // 2
    divisors = [d for d in range(microbatch - 1, 0, -1) if batch_size % d == 0]
    return divisors[0]


def comparison(
    optimizer: str,
    model: Any,
    params0: PyTree,
    quantizers: PyTree,
    estimator: estimators.Estimator,
    learning_rate: float,
    total_steps: int,
    *,
    lr_tweak: float = LR_TWEAK,
    extra_lr_tweaks: tuple[float, ...] = (),
    rounding_chunks: int | None = None,
    alpha_on: str = "lr",
    make_optimizer: Callable[..., Any] = optimizers.make_optimizer,
    label: str | None = None,
) -> tuple[list[lockstep.Net], list[lockstep.TrainState], list[Pair]]:
    """The nets, initial states and pairs of one optimizer's experiments (see the table above).

    ``model`` is a Flax module with an ``estimator`` field (Q-hat-net); STE-net is ``model.clone``
    with the estimator of the paper's recipe (:func:`qatlib.training.recipe.ste_recipe`, α on the
    learning rate or, ``alpha_on="slope"``, on the estimator). ``optimizer`` is any name of
    :data:`qatlib.training.optimizers.FAMILIES`: an ``"sgd"``-family optimizer gets the SGD
    experiments (M and α), any other the Adam ones. Nets and pairs are named by ``label``
    (default: the optimizer's name), e.g. ``"sgd/q_net"``.

    The yardsticks beside the paper's pairs: ``extra_lr_tweaks`` adds a Q̂-net at learning rate ×
    each factor (pair :func:`tweak_experiment`), ``rounding_chunks`` a Q̂-net twin whose gradient is
    summed over chunks of that many examples (pair ``"rounding"``: the two differ only in float32
    rounding).
    """
    if optimizer not in optimizers.FAMILIES:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {sorted(optimizers.FAMILIES)}")
    label = label or optimizer
    recipe = ste_recipe(params0, quantizers, estimator, optimizer, alpha_on=alpha_on)
    q_model = model.clone(estimator=estimator)
    nets: list[lockstep.Net] = []
    starts: list[PyTree] = []
    pairs: list[Pair] = []
    q_net = NetId(label, "q_net")

    def add(role: str, module: Any, lr: float, start: PyTree, experiment: str | None, *, lr_scale: PyTree | None = None,
            mapped: bool = False, chunks: int | None = None) -> None:
        optimizer_ = make_optimizer(optimizer, lr, total_steps, lr_scale=lr_scale)
        net = NetId(label, role)
        nets.append(lockstep.Net(net.name, module, optimizer_, chunks))
        starts.append(start)
        if experiment is not None:
            pairs.append(Pair(label, experiment, q_net, net, mapped=mapped))

    add("q_net", q_model, learning_rate, params0, None)
    add("ste_net", model.clone(estimator=recipe.estimator), learning_rate, recipe.params, "baseline",
        lr_scale=recipe.lr_factors, mapped=recipe.mapped)
    add("q_net_lr_tweak", q_model, learning_rate * lr_tweak, params0, "lr_tweak")
    if recipe.mapped:
        partner = recipe_plan(estimator, quantizers, optimizer).estimator  # no M, no α
        add("ste_net_unadjusted", model.clone(estimator=partner), learning_rate, params0, "unadjusted")
    for factor in extra_lr_tweaks:
        experiment = tweak_experiment(factor)
        add(f"q_net_{experiment}", q_model, learning_rate * factor, params0, experiment)
    if rounding_chunks is not None:
        add("q_net_rounding", q_model, learning_rate, params0, "rounding", chunks=rounding_chunks)
    states = [lockstep.init_state(n, p) for n, p in zip(nets, starts, strict=True)]
    return nets, states, pairs


def conv_layers(quantizers: PyTree) -> PyTree:
    """The quantizer tree restricted to the convolution kernels (the layers the authors compared)."""
    return metrics.select_layers(quantizers, lambda path: path.startswith("conv"))


def pair_metrics(pair: Pair, params: dict[str, PyTree], quantizers: PyTree, estimator: Any) -> PairMetrics[float]:
    """Ē of a pair (Eq. 5, through M when ``pair.mapped``) over all quantized kernels and over the
    conv kernels only, and the quantized weight agreement over both."""
    a, b = params[pair.net_a], params[pair.net_b]
    mapping = estimator if pair.mapped else None
    convs = conv_layers(quantizers)
    return PairMetrics(
        E_bar=metrics.E_bar(a, b, quantizers, mapping),
        E_bar_conv=metrics.E_bar(a, b, convs, mapping),
        agreement=metrics.agreement(a, b, quantizers),
        agreement_conv=metrics.agreement(a, b, convs),
    )
