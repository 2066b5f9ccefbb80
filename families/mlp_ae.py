"""``mlp_ae``: a fully connected autoencoder on images (TaskSet's ``mlp_ae`` family).

Config::

    {"layers": [100, 32, 100], "activation": "relu", "init": {"name": "he_normal"},
     "output": "sigmoid", "loss": "l2", "reduction": "mean",
     "data": {"dataset": "mnist", "image_size": 14, "batch_size": 37, "center_data": false}}

- ``layers``: 1–6 hidden widths, each ``log_int(32, 128)``; the network is flatten → hidden layers (activation
  after each) → Dense(D) → output nonlinearity, D = pixels per image.
- ``output`` ∈ {tanh, sigmoid, linear_center, linear} (uniform). ``tanh`` and ``linear_center`` reconstruct
  centred images in [-1, 1]; ``sigmoid`` and ``linear`` images in [0, 1]. So ``data.center_data`` must equal
  ``output in {tanh, linear_center}`` (:meth:`validate` checks it; :meth:`sample` sets it).
- ``loss`` ∈ {l2, l1} sampled with weights 2:1 (TaskSet's list [l2, l2, l1]): squared or absolute error.
- ``reduction`` ∈ {mean, sum}: per-example error is the mean or the sum over the D features; the loss is the
  mean of that over the batch.
- ``activation``, ``init``: TaskSet's weighted choices; ``init`` for every kernel; zero biases.
- ``data``: the shared image-data config (:mod:`families.image_data`); labels are unused.

Normalizer (~0..10, small = good): the loss is first made a per-pixel error in the units of the data range —
``e = loss / D`` if ``reduction == "sum"`` — then turned into an RMS-like error ``r = sqrt(e)`` for ``l2``
(``r = e`` for ``l1``), divided by the data range (2 when centred, else 1), and mapped by
``(10/3) · clip(log10 r + 3, 0, 3)``: r = 1e-3 → 0, 1e-2 → 3.3, 0.1 → 6.7, ≥ 1 (or NaN) → 10. An untrained
model (r ≈ 0.3–0.5) lands around 8–9. This replaces learned_optimization's ``clip(log l, -12, 1)·0.5 + 10``,
whose values sit in [4, 10.5] and depend on the reduction.

Cost: ``params`` exact; ``flops_per_step`` = 3 × batch × Σ 2·fan_in·fan_out (matmuls only).
"""

from __future__ import annotations

import functools
import json

from families._lazy import jax, jnp

from families import common, image_data
from families.base import ConfigError, Cost
from families.mlp import _nets as _mlp_nets
from families.mlp import dense_flops, dense_params, hashable_init
from families.space import Int, ListOf, Struct, choices

WIDTH_RANGE = (32, 128)
DEPTH_RANGE = (1, 6)
OUTPUTS = ("tanh", "sigmoid", "linear_center", "linear")
CENTERED_OUTPUTS = ("tanh", "linear_center")
LOSS_WEIGHTS = {"l2": 2, "l1": 1}
REDUCTIONS = ("mean", "sum")


class MLPAEFamily(image_data.ImageFamily):
    name = "mlp_ae"
    version = 1

    def config_space(self) -> Struct:
        return Struct({
            "layers": ListOf(Int(*WIDTH_RANGE), *DEPTH_RANGE),
            "activation": common.ACTIVATION_SPACE,
            "init": common.INITIALIZER_SPACE,
            "output": choices(OUTPUTS),
            "loss": choices(list(LOSS_WEIGHTS)),
            "reduction": choices(REDUCTIONS),
            "data": image_data.data_space(),
        })

    def sample(self, rng) -> dict:
        n = rng.linear_int(*DEPTH_RANGE)
        config = {
            "layers": [rng.log_int(*WIDTH_RANGE) for _ in range(n)],
            "activation": common.sample_activation(rng),
            "init": common.sample_initializer(rng),
            "output": rng.choice(OUTPUTS),
            "loss": rng.weighted(LOSS_WEIGHTS),
            "reduction": rng.choice(REDUCTIONS),
            "data": image_data.sample_data(rng),
        }
        config["data"]["center_data"] = config["output"] in CENTERED_OUTPUTS
        return config

    def validate(self, config) -> None:
        """Schema and data checks, plus ``data.center_data`` tied to the output nonlinearity (as in TaskSet)."""
        super().validate(config)
        want = config["output"] in CENTERED_OUTPUTS
        if config["data"]["center_data"] != want:
            raise ConfigError("data.center_data",
                              f"must be {str(want).lower()} for output {config['output']!r} (tanh and "
                              "linear_center reconstruct data in [-1, 1]; sigmoid and linear in [0, 1])")

    def _sizes(self, config) -> list[int]:
        d = image_data.input_dim(config["data"])
        return [d, *config["layers"], d]

    def cost(self, config) -> Cost:
        sizes = self._sizes(config)
        return Cost(dense_params(sizes), dense_flops(sizes, config["data"]["batch_size"]))

    def variant(self, config) -> str:
        return f"mlp_ae/{config['output']}"

    def functions(self, key: str):
        """The four task functions of static key ``key``."""
        return _functions(key)


def ae_normalizer(loss_kind: str, reduction: str, dim: int, centered: bool):
    """The ``mlp_ae`` normalizer (see the module docstring)."""
    data_range = 2.0 if centered else 1.0

    def normalizer(loss):
        e = loss / dim if reduction == "sum" else loss
        e = jnp.nan_to_num(jnp.asarray(e, jnp.float32), nan=1e6, posinf=1e6, neginf=0.0)
        r = jnp.sqrt(jnp.maximum(e, 0.0)) if loss_kind == "l2" else e
        r = jnp.maximum(r / data_range, 1e-30)
        return (10.0 / 3.0) * jnp.clip(jnp.log10(r) + 3.0, 0.0, 3.0)

    return normalizer


@functools.lru_cache(maxsize=None)
def _functions(key: str):
    """``(init, loss, sample_batch, normalizer)`` for a static key."""
    config = json.loads(key.split(":", 1)[1])
    data = config["data"]
    dim = data["image_size"] ** 2 * image_data.CHANNELS
    model = _mlp_nets.DenseStack(features=tuple(config["layers"]) + (dim,), activation=config["activation"],
                       init_config=hashable_init(config["init"]))
    out_fn = {"tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid,
              "linear_center": lambda z: z, "linear": lambda z: z}[config["output"]]
    err_fn = jnp.square if config["loss"] == "l2" else jnp.abs
    reduce_fn = jnp.mean if config["reduction"] == "mean" else jnp.sum
    example = jnp.zeros((1, dim), jnp.float32)

    def init(rng):
        return model.init(rng, example)["params"]

    def loss(params, batch, rng):
        del rng
        x = batch["image"].reshape(batch["image"].shape[0], -1)
        recon = out_fn(model.apply({"params": params}, x))
        return jnp.mean(reduce_fn(err_fn(recon - x), axis=-1))

    sample_batch = image_data.make_sample_batch(data["batch_size"], data["center_data"])
    normalizer = ae_normalizer(config["loss"], config["reduction"], dim, data["center_data"])
    # Jitted once per static key: eager callers (tests, notebooks) then compile once instead of per op;
    # inside a trainer's jit these calls are simply inlined.
    return jax.jit(init), jax.jit(loss), jax.jit(sample_batch), normalizer

