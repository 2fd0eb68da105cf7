"""What the max-pool's derivative costs in the MNIST chapter's step, and what changing it would buy.

Run by hand from the repository root (about 3 minutes on the 2-core Xeon)::

    .venv/bin/python benchmarks/bench_max_pool.py [--rounds 7] [--calls 5] [--steps 20]

The convnet pools before its ReLU (:class:`qatlib.models.CholletConvNet`), so the derivative of
``max`` matters where a window's maxima tie: JAX splits the gradient equally over the tied entries
(``reduce_max``'s JVP counts them, the profile's forward ``reduce_sum``). One net's step as the
``paper`` preset runs it (batch 600 of the first real MNIST training images, chunks of 25, im2col),
three ways:

* ``jax_max``: :func:`qatlib.models.layers.max_pool` as it is;
* ``custom_vjp_same_rule``: a custom VJP with JAX's own rule (mask x g / count), computed in the
  backward pass instead of the forward one;
* ``one_winner``: PyTorch's rule, all of the gradient to the first maximum (``argmax`` and a gather).

The variants are interleaved round by round (:func:`bench_threads.timings`); the median round
is reported. ``same_weights`` says whether ``--steps`` steps leave the weights bit for bit as
``jax_max`` does, and ``tied_windows`` the share of the first pool's windows, on this batch at
initialisation, whose maximum is tied.

Writes ``benchmarks/results/max_pool_<isa>.json`` with the machine and versions.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import statistics
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from qatlib import estimators, models
from qatlib.data.mnist import load_mnist
from qatlib.experiments import mnist
from qatlib.models import convnet, layers
from qatlib.report import artefacts
from qatlib.training import lockstep, optimizers

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_threads import timings  # noqa: E402  (the interleaved rounds both benchmarks time by)

ROOT = Path(__file__).resolve().parents[1]
BATCH = 600


@jax.custom_vjp
def pool_same_rule(x: jax.Array) -> jax.Array:
    """2 x 2 max pooling whose VJP applies JAX's tie rule in the backward pass."""
    return layers.pool_windows(x).max(axis=(2, 4))


def _same_rule_fwd(x: jax.Array) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    pooled = layers.pool_windows(x).max(axis=(2, 4))
    return pooled, (x, pooled)


def _same_rule_bwd(residuals: tuple[jax.Array, jax.Array], g: jax.Array) -> tuple[jax.Array]:
    x, pooled = residuals
    at_max = (layers.pool_windows(x) == pooled[:, :, None, :, None, :]).astype(g.dtype)
    per_entry = at_max * (g / at_max.sum(axis=(2, 4)))[:, :, None, :, None, :]
    grad = per_entry.reshape(x.shape[0], 2 * pooled.shape[1], 2 * pooled.shape[2], x.shape[3])
    return (jnp.pad(grad, ((0, 0), (0, x.shape[1] - grad.shape[1]), (0, x.shape[2] - grad.shape[2]), (0, 0))),)


pool_same_rule.defvjp(_same_rule_fwd, _same_rule_bwd)


def pool_one_winner(x: jax.Array) -> jax.Array:
    """2 x 2 max pooling whose gradient goes to each window's first maximum (PyTorch's rule)."""
    windows = layers.pool_windows(x)
    batch, h, _, w, _, channels = windows.shape
    flat = windows.transpose(0, 1, 3, 5, 2, 4).reshape(batch, h, w, channels, 4)
    return jnp.take_along_axis(flat, jnp.argmax(flat, axis=-1)[..., None], axis=-1)[..., 0]


VARIANTS = {"jax_max": layers.max_pool, "custom_vjp_same_rule": pool_same_rule, "one_winner": pool_one_winner}


def _data() -> dict[str, np.ndarray]:
    data = load_mnist()
    return {"image": np.asarray(data.train_images[:BATCH]), "label": np.asarray(data.train_labels[:BATCH])}


@contextlib.contextmanager
def pooling(pool):
    """The convnet's max pooling replaced by ``pool(x, window)`` while the block runs (its
    steps are traced and compiled inside it)."""
    previous, convnet.max_pool = convnet.max_pool, pool
    try:
        yield
    finally:
        convnet.max_pool = previous


def _model_and_params(data: dict[str, np.ndarray]):
    model = models.CholletConvNet(bits=2, estimator=estimators.PWL(), conv_impl="im2col")
    return model, jax.jit(model.init)(jax.random.key(0), data["image"][:1])["params"]


def build(pool, data: dict[str, np.ndarray], microbatch: int):
    """One net's step with ``pool`` as the convnet's max pooling, compiled, and its initial state."""
    with pooling(lambda x, window=2: pool(x)):
        model, params = _model_and_params(data)
        net = lockstep.Net("net", model, optimizers.make_optimizer("sgd", 1e-3, 10_000, momentum=0.9))
        step = lockstep.make_lockstep_step([net], microbatch=microbatch)
        states = [lockstep.init_state(net, params)]
        jax.block_until_ready(step(states, data)[0])
    return step, states


def _one_step(step, states: list, data: dict[str, np.ndarray]) -> list:
    return jax.block_until_ready(step(states, data)[0])


def tied_share(data: dict[str, np.ndarray]) -> float:
    """The share of the first pool's windows whose maximum is reached more than once (at initialisation)."""
    model, params = _model_and_params(data)
    seen = {}

    def spy(x, window=2):
        seen.setdefault("x", x)  # the first of the two pools
        return layers.max_pool(x, window)

    with pooling(spy):
        model.apply({"params": params}, data["image"][:100])
    windows = layers.pool_windows(seen["x"])
    count = (windows == windows.max(axis=(2, 4), keepdims=True)).sum(axis=(2, 4))
    return float(np.mean(np.asarray(count) > 1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="rounds of timings, variants interleaved (default 7)")
    parser.add_argument("--calls", type=int, default=5, help="calls per variant per round (default 5)")
    parser.add_argument("--steps", type=int, default=20, help="steps compared for equal weights (default 20)")
    args = parser.parse_args(argv)
    for name in ("rounds", "calls", "steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    microbatch = mnist.PRESETS["paper"].microbatch
    data = _data()
    built = {name: build(pool, data, microbatch) for name, pool in VARIANTS.items()}

    def trained(name: str) -> list[np.ndarray]:
        step, states = built[name]
        for _ in range(args.steps):
            states = step(states, data)[0]
        return [np.asarray(leaf) for leaf in jax.tree.leaves(states[0].params)]

    reference = trained("jax_max")
    same = {name: all(np.array_equal(a, b) for a, b in zip(trained(name), reference, strict=True)) for name in VARIANTS}
    load_before = os.getloadavg()
    calls = {name: functools.partial(_one_step, step, states, data) for name, (step, states) in built.items()}
    times = timings(calls, args.rounds, args.calls)
    median = {name: statistics.median(t) for name, t in times.items()}
    report = {
        "what": "seconds per step of one 2-bit convnet (batch 600 of MNIST, chunks of 25) with three rules for max pooling's derivative",
        "microbatch": microbatch,
        "seconds_per_step_median": median,
        "seconds_per_step_rounds": times,
        "gain_over_jax_max": {name: median["jax_max"] / t for name, t in median.items()},
        "same_weights_as_jax_max": same,
        "tied_windows_first_pool": tied_share(data),
        "load_average_before_after": [list(load_before), list(os.getloadavg())],
        "machine": artefacts.device_info(),
        "versions": artefacts.package_versions(),
        "settings": {"rounds": args.rounds, "calls": args.calls, "steps": args.steps},
    }
    path = artefacts.write_json(ROOT / "benchmarks" / "results" / f"max_pool_{artefacts.isa_tag()}.json", report)
    for name, seconds in median.items():
        print(f"{name:22s} {1000 * seconds:.1f} ms/step  gain {median['jax_max'] / seconds:.2f}  "
              f"same weights after {args.steps} steps: {same[name]}")
    print(f"tied windows in the first pool: {100 * report['tied_windows_first_pool']:.1f}%")
    print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
