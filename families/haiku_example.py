"""An example *user-defined* family written with Haiku (``hk.transform``) instead of Flax.

It shows that a plugin family only has to speak the :class:`families.base.Family` / :class:`Task` interface:
the model library is its own business. It is **not** a built-in: register it yourself, e.g.::

    import taskgen
    from families.haiku_example import HaikuLinearRegressionFamily

    taskgen.register_family(HaikuLinearRegressionFamily())

The task: regression on a *synthetic* problem (this is an example, not a dataset): inputs ``X ~ N(0, I)`` of
``input_dim`` features, targets ``y = X w* + noise_std · ε`` with ``w* ~ N(0, I / input_dim)``, all drawn with
``jax.random`` from the spec seed. The model is ``hk.nets.MLP(hidden + [1])`` (``hidden = []`` is linear regression);
the loss is the mean squared error over a batch. Each split is an independent draw of ``num_examples`` rows from
the same ``w*``.

Static key: ``input_dim``, ``hidden``, ``activation``, ``batch_size``; ``noise_std`` and ``num_examples`` are data.
Normalizer: ``clip(5 · log10(1 + 10 · mse), 0, 10)``: targets have variance about ``1 + noise_std²``, so an
untrained model (mse ≈ 1) maps to about 5.2 and a perfect one to ``5 · log10(1 + 10 · noise_std²)`` (0 without noise).
Cost: parameters of the MLP; FLOPs per step ``6 · batch_size · Σ fan_in · fan_out`` (forward + backward matmuls).
"""

from __future__ import annotations

import functools

import haiku as hk
import jax
import jax.numpy as jnp

from families.base import Cost, Family, Task, SPLITS
from families.common import static_key
from families.space import Choice, Float, Int, ListOf, Struct

_ACTIVATIONS = {"relu": jax.nn.relu, "tanh": jnp.tanh}


def _widths(config) -> list[int]:
    return [int(config["input_dim"])] + [int(h) for h in config["hidden"]] + [1]


@functools.lru_cache(maxsize=None)
def _functions(key: str, input_dim: int, hidden: tuple, activation: str, batch_size: int):
    del key  # only part of the cache key

    def forward(x):
        mlp = hk.nets.MLP(list(hidden) + [1], activation=_ACTIVATIONS[activation], name="mlp")
        return mlp(x)[:, 0]

    model = hk.without_apply_rng(hk.transform(forward))

    def init_fn(rng):
        return model.init(rng, jnp.zeros((1, input_dim), jnp.float32))

    def loss_fn(params, batch, key):
        del key
        return jnp.mean(jnp.square(model.apply(params, batch["x"]) - batch["y"]))

    def sample_batch(split_data, key):
        idx = jax.random.randint(key, (batch_size,), 0, split_data["x"].shape[0])
        return {"x": split_data["x"][idx], "y": split_data["y"][idx]}

    def normalizer(loss):
        n = 5.0 * jnp.log10(1.0 + 10.0 * jnp.maximum(loss, 0.0))
        return jnp.clip(jnp.nan_to_num(n, nan=10.0, posinf=10.0), 0.0, 10.0)

    # init is jitted so eager callers pay one compile per shape instead of one per primitive.
    return jax.jit(init_fn), loss_fn, sample_batch, normalizer


class HaikuLinearRegressionFamily(Family):
    """Synthetic (linear or MLP) regression built with Haiku; an example plugin family."""

    name = "haiku_linear_regression"
    version = 1

    def config_space(self):
        return Struct({
            "input_dim": Int(1, 256),
            "hidden": ListOf(Int(1, 256), 0, 2),
            "activation": Choice(tuple(_ACTIVATIONS)),
            "batch_size": Int(1, 512),
            "num_examples": Int(16, 100_000),
            "noise_std": Float(0.0, 1.0),
        })

    def sample(self, rng) -> dict:
        return {
            "input_dim": rng.log_int(2, 64),
            "hidden": [rng.log_int(8, 64) for _ in range(rng.linear_int(0, 1))],
            "activation": rng.choice(list(_ACTIVATIONS)),
            "batch_size": rng.log_int(8, 128),
            "num_examples": 1024,
            "noise_std": rng.uniform(0.0, 0.5),
        }

    def cost(self, config) -> Cost:
        widths = _widths(config)
        params = sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))
        macs = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
        return Cost(params=params, flops_per_step=6 * int(config["batch_size"]) * macs)

    def variant(self, config) -> str:
        return f"{self.name}/{'mlp' if config['hidden'] else 'linear'}"

    def describe(self, config) -> dict:
        return {"dataset": "", "input_shape": [int(config["input_dim"])], "batch_size": int(config["batch_size"])}

    def build(self, spec) -> Task:
        config = spec.config
        self.validate(config)
        static = {k: config[k] for k in ("input_dim", "hidden", "activation", "batch_size")}
        key = static_key(self.name, static)
        fns = _functions(key, int(config["input_dim"]), tuple(config["hidden"]), config["activation"],
                         int(config["batch_size"]))
        d, n = int(config["input_dim"]), int(config["num_examples"])
        base = jax.random.fold_in(jax.random.PRNGKey(spec.seed), 1)
        w = jax.random.normal(jax.random.fold_in(base, 0), (d,), jnp.float32) / jnp.sqrt(float(d))
        splits = {}
        for i, split in enumerate(SPLITS):
            kx, ke = jax.random.split(jax.random.fold_in(base, i + 1))
            x = jax.random.normal(kx, (n, d), jnp.float32)
            y = x @ w + config["noise_std"] * jax.random.normal(ke, (n,), jnp.float32)
            splits[split] = {"x": x, "y": y}
        return Task(spec=spec, init=fns[0], loss=fns[1], sample_batch=fns[2], splits=splits,
                    normalizer=fns[3], static_key=key, batch_size=int(config["batch_size"]))
