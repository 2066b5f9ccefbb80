"""``mlp``: image classification with a fully connected network (TaskSet's ``mlp`` family).

Config::

    {"layers": [64, 23, 100], "activation": "relu", "init": {"name": "he_normal"},
     "data": {"dataset": "fashion_mnist", "image_size": 14, "batch_size": 37, "center_data": false}}

- ``layers``: 1–6 hidden widths, each ``log_int(16, 128)`` (as TaskSet). No depth/width cap is needed: the
  largest config (784 → 6×128 → 10, batch 128) is ~1.8e5 parameters and ~1.4e8 FLOPs per step.
- ``activation``, ``init``: TaskSet's weighted choices (:mod:`families.common`); ``init`` is used for every
  kernel, the output layer's included; biases start at zero.
- ``data``: the shared image-data config (:mod:`families.image_data`; batch logint[8, 128] instead of TaskSet's
  [8, 512], image sizes 8/14/16/28).

Model and loss: flatten → Dense(h₁) → act → … → Dense(h_k) → act → Dense(num_classes); mean softmax
cross-entropy over the batch (``batch["label"]``).

Normalizer: :func:`families.common.classification_normalizer` with 10 classes (chance ≈ 7, perfect ≈ -3,
divergence/NaN capped at 10).

Cost: ``params`` is exact; ``flops_per_step`` = 3 × batch × Σ 2·fan_in·fan_out (forward matmuls, backward ≈ 2×
forward; biases and activations ignored).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence

from families._lazy import LazyModule, jax, jnp, nn, optax

from families import common, image_data
from families.base import Cost
from families.space import Int, ListOf, Struct


_nets = LazyModule("families.nets.mlp")


def __getattr__(name):  # the Flax modules live in families.nets.mlp; still importable from here
    if name in ('DenseStack',):
        return getattr(_nets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

WIDTH_RANGE = (16, 128)
DEPTH_RANGE = (1, 6)


def dense_params(sizes: Sequence[int]) -> int:
    """Parameter count of a chain of Dense layers through ``sizes`` (input first), with biases."""
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def dense_flops(sizes: Sequence[int], batch: int) -> int:
    """Training FLOPs per step of a Dense chain: 3 × batch × Σ 2·fan_in·fan_out."""
    return 3 * batch * sum(2 * a * b for a, b in zip(sizes[:-1], sizes[1:]))


def hashable_init(init: Mapping) -> tuple:
    """An init config as a sorted tuple of items (a hashable Flax attribute)."""
    return tuple(sorted(init.items()))


class MLPFamily(image_data.ImageFamily):
    name = "mlp"
    version = 1

    def config_space(self) -> Struct:
        return Struct({
            "layers": ListOf(Int(*WIDTH_RANGE), *DEPTH_RANGE),
            "activation": common.ACTIVATION_SPACE,
            "init": common.INITIALIZER_SPACE,
            "data": image_data.data_space(),
        })

    def sample(self, rng) -> dict:
        n = rng.linear_int(*DEPTH_RANGE)
        return {
            "layers": [rng.log_int(*WIDTH_RANGE) for _ in range(n)],
            "activation": common.sample_activation(rng),
            "init": common.sample_initializer(rng),
            "data": image_data.sample_data(rng),
        }

    def _sizes(self, config) -> list[int]:
        return [image_data.input_dim(config["data"]), *config["layers"], image_data.num_classes(config["data"])]

    def cost(self, config) -> Cost:
        sizes = self._sizes(config)
        return Cost(dense_params(sizes), dense_flops(sizes, config["data"]["batch_size"]))

    def variant(self, config) -> str:
        return f"mlp/{config['data']['dataset']}"

    def functions(self, key: str):
        """The four task functions of static key ``key``."""
        return _functions(key)


@functools.lru_cache(maxsize=None)
def _functions(key: str):
    """``(init, loss, sample_batch, normalizer)`` for a static key (see :meth:`MLPFamily.static_key`)."""
    config = json.loads(key.split(":", 1)[1])
    data = config["data"]
    s = data["image_size"]
    model = _nets.DenseStack(features=tuple(config["layers"]) + (data["num_classes"],),
                       activation=config["activation"], init_config=hashable_init(config["init"]))
    example = jnp.zeros((1, s * s * image_data.CHANNELS), jnp.float32)

    def init(rng):
        return model.init(rng, example)["params"]

    def loss(params, batch, rng):
        del rng
        x = batch["image"].reshape(batch["image"].shape[0], -1)
        logits = model.apply({"params": params}, x)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]))

    sample_batch = image_data.make_sample_batch(data["batch_size"], data["center_data"])
    normalizer = common.classification_normalizer(data["num_classes"])
    # Jitted once per static key: eager callers (tests, notebooks) then compile once instead of per op;
    # inside a trainer's jit these calls are simply inlined.
    return jax.jit(init), jax.jit(loss), jax.jit(sample_batch), normalizer
