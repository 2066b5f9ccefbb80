"""Pieces shared by the model families: activations, initializers, batching, normalizers, static keys.

Activations and initializers are sampled with TaskSet's weights (Metz et al. 2020, google-research/task_set) and
stored in configs as plain JSON (``"relu"``, ``{"name": "orthogonal", "scale": 1.3}``).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping

from families._lazy import jax, jnp

from families.space import Float, Struct, Tagged, choices

ACTIVATION_WEIGHTS = {
    "relu": 6, "tanh": 3, "cos": 1, "elu": 1, "sigmoid": 1, "swish": 1,
    "leaky_relu_0.4": 1, "leaky_relu_0.2": 1, "leaky_relu_0.1": 1,
}
ACTIVATION_SPACE = choices(list(ACTIVATION_WEIGHTS))

# name -> (weight, whether it takes a scale); scaled ones draw scale ~ logU[0.1, 10].
INITIALIZER_WEIGHTS = {
    "he_normal": (2, False), "he_uniform": (2, False), "glorot_normal": (2, False), "glorot_uniform": (2, False),
    "orthogonal": (1, True), "random_uniform": (1, True), "random_normal": (1, True),
    "truncated_normal": (1, True), "variance_scaling": (1, True),
}
INITIALIZER_SPACE = Tagged("name", {
    name: Struct({"scale": Float(0.1, 10.0)} if scaled else {})
    for name, (_, scaled) in INITIALIZER_WEIGHTS.items()
})


def sample_activation(rng) -> str:
    """Draw an activation name with TaskSet's weights."""
    return rng.weighted(ACTIVATION_WEIGHTS)


def sample_initializer(rng) -> dict:
    """Draw an initializer config (``{"name": ...}`` plus ``"scale"`` for the scaled kinds)."""
    name = rng.weighted({k: w for k, (w, _) in INITIALIZER_WEIGHTS.items()})
    if INITIALIZER_WEIGHTS[name][1]:
        return {"name": name, "scale": rng.log_float(0.1, 10.0)}
    return {"name": name}


def activation_fn(name: str):
    """The ``jnp`` function for an activation name of :data:`ACTIVATION_WEIGHTS`."""
    if name.startswith("leaky_relu_"):
        slope = float(name.rsplit("_", 1)[1])
        return functools.partial(jax.nn.leaky_relu, negative_slope=slope)
    return {"relu": jax.nn.relu, "tanh": jnp.tanh, "cos": jnp.cos, "elu": jax.nn.elu,
            "sigmoid": jax.nn.sigmoid, "swish": jax.nn.swish}[name]


def initializer_fn(config: Mapping):
    """A ``jax.nn.initializers`` initializer for an initializer config.

    ``truncated_normal`` really is a truncated normal here (TaskSet built a plain normal by mistake).
    """
    name, scale = config["name"], config.get("scale", 1.0)
    init = jax.nn.initializers
    return {
        "he_normal": init.he_normal, "he_uniform": init.he_uniform,
        "glorot_normal": init.glorot_normal, "glorot_uniform": init.glorot_uniform,
        "orthogonal": lambda: init.orthogonal(scale),
        "random_uniform": lambda: init.uniform(scale),
        "random_normal": lambda: init.normal(scale),
        "truncated_normal": lambda: init.truncated_normal(scale),
        "variance_scaling": lambda: init.variance_scaling(scale, "fan_in", "truncated_normal"),
    }[name]()


def sample_rows(split_data, key, batch_size: int):
    """Draw ``batch_size`` rows, with replacement, from every array of ``split_data`` (same rows for all).

    Sampling with replacement keeps the draw O(batch) and fully determined by ``key``.
    """
    leaves = jax.tree_util.tree_leaves(split_data)
    idx = jax.random.randint(key, (batch_size,), 0, leaves[0].shape[0])
    return jax.tree_util.tree_map(lambda a: jnp.take(a, idx, axis=0), split_data)


def classification_normalizer(num_classes: int):
    """learned_optimization's classification normalizer for ``num_classes`` classes.

    ``(clip(nan_to_num(l, log 2C), 0, log 2C) - log(C/5)) * 10 / log C``: chance level maps to about 10·log5/logC,
    a perfect model to a small negative number, and divergence is capped.
    """
    c = float(num_classes)
    top = math.log(2 * c)

    def normalizer(loss):
        loss = jnp.clip(jnp.nan_to_num(loss, nan=top, posinf=top), 0.0, top)
        return (loss - math.log(c / 5)) * 10.0 / math.log(c)

    return normalizer


def static_key(family: str, config: Mapping, drop: tuple = ()) -> str:
    """A hashable key for the compiled shape of ``config``: its canonical JSON without the ``drop`` fields.

    Families build their functions with an ``lru_cache`` keyed on this string, so tasks whose configs differ only
    in dropped (data-only) fields share function objects and compiled code.
    """
    kept = {k: v for k, v in config.items() if k not in drop}
    return family + ":" + json.dumps(kept, sort_keys=True, separators=(",", ":"))
