"""A tiny data-free family used only by the registry/suite/CLI tests (never registered by default)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from families.base import Cost, Family, Task
from families.space import Choice, Float, Int, Struct


def _loss(params, batch, key):
    return jnp.sum((params["w"] - batch) ** 2)


def _sample_batch(split_data, key):
    return split_data


class ToyFamily(Family):
    """A least-squares problem ``‖w − target‖²`` with ``dims`` parameters."""

    name = "toy"
    version = 1

    def config_space(self):
        return Struct({"dims": Int(1, 64), "scale": Float(0.1, 10.0), "kind": Choice(("a", "b"))})

    def sample(self, rng):
        return {"dims": rng.log_int(1, 64), "scale": rng.log_float(0.1, 10.0), "kind": rng.choice(["a", "b"])}

    def cost(self, config):
        return Cost(params=config["dims"], flops_per_step=3 * config["dims"])

    def variant(self, config):
        return f"toy/{config['kind']}"

    def build(self, spec):
        dims = spec.config["dims"]
        target = spec.config["scale"] * jax.random.normal(jax.random.PRNGKey(spec.seed), (dims,))
        return Task(spec=spec, init=lambda key: {"w": jnp.zeros((dims,))}, loss=_loss, sample_batch=_sample_batch,
                    splits={s: target for s in ("train", "inner_valid", "outer_valid", "test")},
                    normalizer=lambda x: jnp.log1p(x), static_key=("toy", dims), batch_size=1)
