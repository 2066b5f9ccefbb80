"""Normalizing-flow density models of images: ``maf`` (masked autoregressive flow) and ``nvp`` (RealNVP).

Config (both families)::

    {"data": {...},                 # families.image_data sub-space; image_size ∈ {8, 14}, center_data false
     "num_bijectors": 3,            # 1..4 flow layers
     "hidden_sizes": [64, 32],      # 1..2 hidden widths, logint[16, 128], shared by every layer's network
     "activation": "relu",          # families.common activations (TaskSet weights)
     "init": {"name": "he_normal"}} # kernel initializer of the hidden layers; output layers and biases start
                                    # at zero, so every flow starts as the identity (see below)

Model. Images are flattened to ``D = image_size²`` pixels in [0, 1] (sizes narrowed to 8×8 → D = 64 and 14×14
→ D = 196 so the flows stay small; ``center_data`` must be false because the density is over [0, 1] pixels).
In the density direction (data → base) each layer maps ``h ↦ (h − μ) · exp(−α)`` with log-determinant ``−Σα``:

- ``maf``: μ, α come from a MADE (Germain et al. 2015) on ``h`` itself: masked dense layers, input degrees
  1..D, hidden degrees spread evenly and deterministically (``1 + ⌊j (D−1) / width⌋``), output degree of pixel i
  = i, so μ_i, α_i depend only on h_<i.
- ``nvp``: affine coupling (Dinh et al. 2017): half the pixels pass unchanged and condition an MLP that
  produces μ, α for the other half; layers alternate which half is transformed.

Between consecutive layers sits a fixed permutation of the D pixels (``num_bijectors − 1`` of them), drawn from
the spec seed (TaskSet's were unseeded; ours are a Fisher-Yates shuffle on :class:`~families.sampling.SpecRNG`
streams from ``derive_seed("flow_permutation", family, seed, layer)``, so they are stable across machines and
library versions). The base is a diagonal standard normal. The log-scale is stabilised as
``α = B·tanh(raw / B)`` with ``B = 6`` (enough for pixels that are constant in the data: their optimum is
``log 0.01 ≈ −4.6``). Each layer's output kernel (μ, α) starts at zero — the flow starts as the identity and
the loss at the base density — because sampled inits of scale up to 10 otherwise compound through 4 layers into
overflow (NaN losses for ~10% of sampled specs); the sampled init shapes the hidden layers.

Permutations travel with the data, not the code: every split is ``{"x": uint8 (N, H, W, 1), "perms": int32
(num_bijectors − 1, D)}`` and every batch ``{"x": float32 (B, D), "perms": int32 (B, num_bijectors − 1, D)}``
(the same permutations repeated on every row, so each batch leaf has a leading batch axis and a batch may be
split into micro-batches), so compiled code is shared across seeds (the static key holds only shapes,
activation, init and batch size). Note that ``perms`` in a split is not indexed by example: only
``sample_batch`` should read split arrays.

Loss: ``−mean_b log p(x_b + ε_b)`` with ``ε ~ N(0, 0.01²)`` drawn from the loss key (dequantisation noise), in
nats per image. Normalizer: per-dimension NLL above the noise entropy, ``2·clip(loss/D − h, 0, 5)`` where
``h = ½ log(2πe·0.01²) ≈ −3.19`` is the entropy of the noise per dimension (no model can beat it in expectation):
an untrained standard-normal model (≈ 1 nat/dim) maps to ≈ 8.4, a perfect one towards 0, divergence to 10.

Cost: params exact (masked weights are stored, and counted, in full). FLOPs per step ≈ 3 × batch × forward,
forward = 2 FLOPs per multiply-add of the dense layers (elementwise flow arithmetic and masking ignored).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from typing import Any, Callable

from families._lazy import LazyModule, jax, jnp, nn, np

from families import common, image_data
from families.base import SPLITS, ConfigError, Cost, Family, Task
from families.sampling import SpecRNG, derive_seed
from families.space import Int, ListOf, Struct


_nets = LazyModule("families.nets.flows")


def __getattr__(name):  # the Flax modules live in families.nets.flows; still importable from here
    if name in ('MaskedDense', 'MADE', 'CouplingNet', 'Flow'):
        return getattr(_nets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

NUM_BIJECTORS_RANGE = (1, 4)
HIDDEN_RANGE = (16, 128)
HIDDEN_DEPTH_RANGE = (1, 2)
IMAGE_SIZES = (8, 14)
NOISE_STD = 0.01
LOG_SCALE_BOUND = 6.0
NOISE_ENTROPY_PER_DIM = 0.5 * math.log(2 * math.pi * math.e * NOISE_STD ** 2)


# ----------------------------------------------------------------------------------------------- masks

def made_degrees(dim: int, hidden: tuple) -> list[np.ndarray]:
    """MADE degrees: inputs ``1..dim``, then each hidden layer's, deterministic (evenly spread over 1..dim−1)."""
    degrees = [np.arange(1, dim + 1)]
    for width in hidden:
        degrees.append(1 + (np.arange(width) * max(dim - 1, 1)) // width)
    return degrees


def made_masks(dim: int, hidden: tuple) -> list[np.ndarray]:
    """0/1 float32 masks ``(in, out)`` of a MADE's layers; the last maps to ``2·dim`` outputs (μ then α)."""
    degrees = made_degrees(dim, hidden)
    masks = [(d_out[None, :] >= d_in[:, None]) for d_in, d_out in zip(degrees[:-1], degrees[1:])]
    out = np.concatenate([np.arange(1, dim + 1)] * 2)
    masks.append(out[None, :] > degrees[-1][:, None])
    return [m.astype(np.float32) for m in masks]


def permutation(dim: int, *seed_parts) -> np.ndarray:
    """A permutation of ``range(dim)`` by Fisher-Yates on a :class:`SpecRNG` seeded from ``seed_parts``."""
    rng = SpecRNG(derive_seed("flow_permutation", *seed_parts))
    perm = list(range(dim))
    for i in range(dim - 1, 0, -1):
        j = rng.linear_int(0, i)
        perm[i], perm[j] = perm[j], perm[i]
    return np.asarray(perm, np.int32)


# ----------------------------------------------------------------------------------------------- models


def _bounded(raw):
    return LOG_SCALE_BOUND * jnp.tanh(raw / LOG_SCALE_BOUND)


def flow_module(kind: str, dim: int, num_layers: int, hidden: tuple, activation: str, init: Mapping) -> Flow:
    """A :class:`Flow` from config values (``activation`` name, ``init`` config)."""
    return _nets.Flow(kind, dim, num_layers, tuple(hidden), common.activation_fn(activation),
                common.initializer_fn(init))


def flow_normalizer(dim: int):
    """``loss ↦ 2·clip(loss/dim − h_noise, 0, 5)`` (see the module docstring)."""

    def normalizer(loss):
        per_dim = jnp.nan_to_num(loss / dim, nan=1e3, posinf=1e3, neginf=-1e3)
        return 2.0 * jnp.clip(per_dim - NOISE_ENTROPY_PER_DIM, 0.0, 5.0)

    return normalizer


@functools.lru_cache(maxsize=512)
def _functions(key: str):
    """``(init, loss, sample_batch, normalizer)`` for a static key (the family's static config as JSON)."""
    family, _, text = key.partition(":")
    static = json.loads(text)
    data = static["data"]
    dim = data["image_size"] ** 2 * image_data.CHANNELS
    batch_size = data["batch_size"]
    flow = flow_module(family, dim, static["num_bijectors"], tuple(static["hidden_sizes"]),
                       static["activation"], static["init"])
    n_perms = static["num_bijectors"] - 1

    def init(rng):
        return flow.init(rng, jnp.zeros((1, dim), jnp.float32), jnp.zeros((n_perms, dim), jnp.int32))["params"]

    def loss(params, batch, key):
        x = batch["x"] + NOISE_STD * jax.random.normal(key, batch["x"].shape, jnp.float32)
        return -jnp.mean(flow.apply({"params": params}, x, batch["perms"][0])).astype(jnp.float32)

    def sample_batch(split_data, key):
        rows = common.sample_rows({"x": split_data["x"]}, key, batch_size)["x"]
        x = image_data.to_float(rows, False).reshape(batch_size, dim)
        # Every batch leaf keeps a leading batch axis; XLA folds the broadcast away (the loss reads row 0).
        perms = jnp.broadcast_to(split_data["perms"], (batch_size,) + split_data["perms"].shape)
        return {"x": x, "perms": perms}

    return init, loss, sample_batch, flow_normalizer(dim)


# ----------------------------------------------------------------------------------------------- families

class _FlowFamily(Family):
    """Shared config space, sampling, validation and build of :class:`MAFFamily` and :class:`NVPFamily`."""

    version = 1

    def config_space(self) -> Struct:
        """The config space (see the module docstring)."""
        return Struct({
            "data": image_data.data_space(sizes=IMAGE_SIZES),
            "num_bijectors": Int(*NUM_BIJECTORS_RANGE),
            "hidden_sizes": ListOf(Int(*HIDDEN_RANGE), *HIDDEN_DEPTH_RANGE),
            "activation": common.ACTIVATION_SPACE,
            "init": common.INITIALIZER_SPACE,
        })

    def sample(self, rng) -> dict:
        """Draw a config (``center_data`` forced false; TaskSet-like distributions for the rest)."""
        data = image_data.sample_data(rng, sizes=IMAGE_SIZES)
        data["center_data"] = False
        return {
            "data": data,
            "num_bijectors": rng.linear_int(*NUM_BIJECTORS_RANGE),
            "hidden_sizes": [rng.log_int(*HIDDEN_RANGE) for _ in range(rng.linear_int(*HIDDEN_DEPTH_RANGE))],
            "activation": common.sample_activation(rng),
            "init": common.sample_initializer(rng),
        }

    def validate(self, config: Mapping[str, Any]) -> None:
        """Schema check, the dataset's allowed image sizes, and ``data.center_data`` false."""
        super().validate(config)
        image_data.validate_data(config["data"])
        if config["data"]["center_data"]:
            raise ConfigError("data.center_data", "must be false: flows model pixels in [0, 1]")

    def _net_params(self, dim: int, n_in: int, n_out: int, hidden) -> int:
        params, width = 0, n_in
        for out in list(hidden) + [2 * n_out]:
            params += width * out + out
            width = out
        return params

    def _layer_params(self, config, dim: int) -> list[int]:
        raise NotImplementedError

    def cost(self, config: Mapping[str, Any]) -> Cost:
        """Exact parameter count; FLOPs ≈ 3 × batch × 2 × dense multiply-adds (≈ 6 × batch × params)."""
        dim = image_data.input_dim(config["data"])
        per_layer = self._layer_params(config, dim)
        params = sum(per_layer)
        # Every parameter but the biases is one multiply-add per example.
        hidden_biases = sum(config["hidden_sizes"])
        macs = sum(p - hidden_biases - 2 * n for p, n in zip(per_layer, self._outputs(config, dim)))
        return Cost(params=params, flops_per_step=3 * config["data"]["batch_size"] * 2 * macs)

    def _outputs(self, config, dim: int) -> list[int]:
        raise NotImplementedError

    def static_key(self, config) -> str:
        """The compiled-shape key: the config without the dataset, ``train_size`` (and, implicitly, the seed)."""
        static = {k: v for k, v in config.items() if k != "data"}
        static["data"] = image_data.static_fields(config["data"])
        return common.static_key(self.name, static)

    def permutations(self, spec) -> np.ndarray:
        """The ``(num_bijectors − 1, D)`` int32 permutations between layers, drawn from ``spec.seed``."""
        dim = image_data.input_dim(spec.config["data"])
        perms = [permutation(dim, self.name, spec.seed, k) for k in range(spec.config["num_bijectors"] - 1)]
        return np.stack(perms) if perms else np.zeros((0, dim), np.int32)

    def build(self, spec) -> Task:
        """Build ``spec`` into a :class:`Task`: splits ``{"x": uint8 images, "perms": int32}`` (see the module
        docstring)."""
        self.validate(spec.config)
        key = self.static_key(spec.config)
        init, loss, sample_batch, normalizer = _functions(key)
        loaded, _, _ = image_data.load_splits(spec.config["data"])
        perms = jnp.asarray(self.permutations(spec))
        splits = {s: {"x": loaded[s]["x"], "perms": perms} for s in SPLITS}
        return Task(spec=spec, init=init, loss=loss, sample_batch=sample_batch, splits=splits,
                    normalizer=normalizer, static_key=key, batch_size=spec.config["data"]["batch_size"])

    def variant(self, config: Mapping[str, Any]) -> str:
        """``<family>/<n>layer`` (number of flow layers)."""
        return f"{self.name}/{config['num_bijectors']}layer"

    def describe(self, config: Mapping[str, Any]) -> dict:
        """Manifest columns: dataset, input_shape (the image, before flattening), batch_size."""
        return image_data.describe(config["data"])


class MAFFamily(_FlowFamily):
    """Masked autoregressive flow: 1..4 MADE affine layers with seeded permutations between them."""

    name = "maf"

    def _layer_params(self, config, dim: int) -> list[int]:
        return [self._net_params(dim, dim, dim, config["hidden_sizes"])] * config["num_bijectors"]

    def _outputs(self, config, dim: int) -> list[int]:
        return [dim] * config["num_bijectors"]


class NVPFamily(_FlowFamily):
    """RealNVP: 1..4 affine coupling layers (alternating halves) with seeded permutations between them."""

    name = "nvp"

    def _layer_params(self, config, dim: int) -> list[int]:
        half = dim // 2
        return [self._net_params(dim, half if k % 2 == 0 else dim - half, dim - half if k % 2 == 0 else half,
                                 config["hidden_sizes"]) for k in range(config["num_bijectors"])]

    def _outputs(self, config, dim: int) -> list[int]:
        half = dim // 2
        return [dim - half if k % 2 == 0 else half for k in range(config["num_bijectors"])]
