"""Where the time of the MNIST chapter's training step goes, on this CPU (issue: speed).

Run by hand from the repository root::

    .venv/bin/python benchmarks/profile_mnist_step.py [--batch 600] [--variants default,onednn]

For each XLA-flag *variant* (a fresh subprocess, since XLA reads ``XLA_FLAGS`` once) it times, at
``--batch``, best of ``--repeats`` timings of ``--steps`` calls:

* ``lockstep_7``: the ``paper`` preset's compiled step: the seven nets of the comparison
  (Q-hat-net, STE-net, lr-tweak, unadjusted; Adam's three) in one jitted call, per net-step;
* ``one_net_step``: one Q-hat-net (HTGE) training step with SGD + momentum;
* ``ste_net_step``: the same with the STE-net's clipped STE (the estimator's share);
* ``forward``, ``forward_backward``: the loss, and its value and gradient (no optimizer);
* ``conv_i/forward``, ``conv_i/forward_backward``: each convolution alone (its input shape at
  this batch), with the library's im2col lowering and with ``lax.conv``;
* ``pool/forward_backward``, ``dense/forward_backward``;
* ``adam_update``, ``sgd_update``: the optimizer update alone on the convnet's parameters.

The shares printed are of ``one_net_step``; ``forward_backward`` minus the per-layer times is the
glue (ReLU, reshapes, loss). Writes ``benchmarks/results/profile_mnist_step.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "default": "",
    "onednn": "--xla_cpu_use_onednn=true",
    "xnnpack": "--xla_cpu_use_xnnpack=true",
    "legacy_runtime": "--xla_cpu_use_thunk_runtime=false",
    "concurrency_scheduler": "--xla_cpu_enable_concurrency_optimized_scheduler=true",
}


def best_rate(fn, args, steps: int, repeats: int) -> float:
    """``fn(*args)``'s best calls per second: the timing loop of ``bench_mnist_step.best_rate``."""
    from bench_mnist_step import best_rate as rate  # benchmarks/ is on sys.path: the script's folder

    return rate(lambda: fn(*args), steps, repeats)


def measure(batch: int, steps: int, repeats: int) -> dict[str, float]:
    """Seconds per call of every component (run inside the variant's subprocess)."""
    import jax
    import jax.numpy as jnp
    import optax

    from qatlib import models
    from qatlib.experiments import mnist
    from qatlib.experiments.comparison import comparison, q_hat, ste_partner
    from qatlib.models import layers
    from qatlib.training import lockstep, optimizers

    config = mnist.PRESETS["paper"].model_copy(update={"batch_size": batch})
    estimator = q_hat(config.sharpness, config.centre)
    model = models.CholletConvNet(bits=2, estimator=estimator)
    x = jax.random.uniform(jax.random.key(1), (batch, 28, 28, 1))
    y = jax.random.randint(jax.random.key(2), (batch,), 0, 10)
    batch_dict = {"image": x, "label": y}
    params = jax.jit(model.init)(jax.random.key(0), x[:1])["params"]
    quantizers = models.quantizer_tree(params, 2)
    seconds: dict[str, float] = {}

    nets, states = [], []
    for optimizer, lr in (("sgd", config.sgd_lr), ("adam", config.adam_lr)):
        n, s, _ = comparison(optimizer, model, params, quantizers, estimator, lr, config.steps)
        nets += n
        states += s
    step = lockstep.make_lockstep_step(nets)
    seconds["lockstep_7"] = 1 / best_rate(lambda s: step(s, batch_dict)[0], (states,), steps, repeats) / len(nets)

    for name, module in (("one_net_step", model), ("ste_net_step", model.clone(estimator=ste_partner(estimator, quantizers)))):
        net = lockstep.Net(name, module, optimizers.make_optimizer("sgd", 1e-3, config.steps, momentum=0.9))
        one = lockstep.make_lockstep_step([net])
        state = [lockstep.init_state(net, params)]
        seconds[name] = 1 / best_rate(lambda s: one(s, batch_dict)[0], (state,), steps, repeats)

    def loss(p, images, labels):
        return lockstep.cross_entropy(model.apply({"params": p}, images), labels)

    seconds["forward"] = 1 / best_rate(jax.jit(loss), (params, x, y), steps, repeats)
    seconds["forward_backward"] = 1 / best_rate(jax.jit(jax.value_and_grad(loss)), (params, x, y), steps, repeats)

    shapes = {"conv_0": (28, 1, 32), "conv_1": (13, 32, 64), "conv_2": (5, 64, 128)}
    for name, (size, cin, cout) in shapes.items():
        inputs = jax.random.uniform(jax.random.key(3), (batch, size, size, cin))
        kernel = params[name]["kernel"]
        for impl in ("im2col", "lax"):
            conv = layers.QuantizedConv(cout, estimator=estimator, conv_impl=impl)
            variables = {"params": {"kernel": kernel, "bias": jnp.zeros(cout)}}

            def conv_loss(v, a, conv=conv):
                return jnp.sum(jax.nn.relu(conv.apply(v, a)))

            seconds[f"{name}/{impl}/forward"] = 1 / best_rate(jax.jit(conv_loss), (variables, inputs), steps, repeats)
            grad = jax.jit(jax.grad(conv_loss, argnums=(0, 1) if name != "conv_0" else 0))
            seconds[f"{name}/{impl}/forward_backward"] = 1 / best_rate(grad, (variables, inputs), steps, repeats)

    pool_in = jax.random.uniform(jax.random.key(4), (batch, 26, 26, 32))
    seconds["pool/forward_backward"] = 1 / best_rate(
        jax.jit(jax.grad(lambda a: jnp.sum(layers.max_pool(a)))), (pool_in,), steps, repeats
    )
    dense_in = jax.random.uniform(jax.random.key(5), (batch, 1152))
    dense = layers.QuantizedDense(10, estimator=estimator)
    dense_vars = {"params": params["dense"]}
    seconds["dense/forward_backward"] = 1 / best_rate(
        jax.jit(jax.grad(lambda v, a: jnp.sum(dense.apply(v, a)), argnums=(0, 1))), (dense_vars, dense_in), steps, repeats
    )
    grads = jax.tree.map(jnp.ones_like, params)
    for name, opt in (("sgd_update", optax.sgd(1e-3, momentum=0.9)), ("adam_update", optax.adam(1e-4, b2=0.95))):
        opt_state = opt.init(params)

        def update(g, s, p, opt=opt):
            u, s = opt.update(g, s, p)
            return optax.apply_updates(p, u), s

        seconds[name] = 1 / best_rate(jax.jit(update), (grads, opt_state, params), steps, repeats)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=600)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {sorted(VARIANTS)}")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "profile_mnist_step.json"))
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.batch, args.steps, args.repeats)))
        return 0
    unknown = [v for v in args.variants.split(",") if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown --variants {unknown}; choose from {sorted(VARIANTS)}")
    report = {"batch": args.batch, "steps": args.steps, "repeats": args.repeats, "variants": {}}
    for variant in args.variants.split(","):
        env = dict(os.environ, XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + " " + VARIANTS[variant]).strip())
        out = subprocess.run(
            [sys.executable, __file__, "--child", variant, "--batch", str(args.batch), "--steps", str(args.steps),
             "--repeats", str(args.repeats)],
            env=env, capture_output=True, text=True,
        )
        if out.returncode != 0:
            report["variants"][variant] = {"error": out.stderr[-2000:]}
            print(f"{variant}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
            continue
        seconds = json.loads(out.stdout.strip().splitlines()[-1])
        report["variants"][variant] = {"flags": VARIANTS[variant], "seconds": seconds}
        whole = seconds["one_net_step"]
        print(f"\n== {variant} ({VARIANTS[variant] or 'no flags'}), batch {args.batch}")
        for key, value in seconds.items():
            print(f"  {key:32s} {1e3 * value:9.2f} ms  {100 * value / whole:6.1f}% of one_net_step")
    sys.path.insert(0, str(ROOT / "src"))
    from qatlib.report.artefacts import device_info, write_json

    report["machine"] = device_info()
    write_json(args.output, report)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
