"""``mlp_vae``: a variational autoencoder with fully connected encoder and decoder (TaskSet's ``mlp_vae``).

Config::

    {"encoder": [100, 64, 16], "decoder": [64, 100], "activation": "relu", "init": {"name": "he_normal"},
     "data": {"dataset": "fashion_mnist", "image_size": 14, "batch_size": 37, "center_data": false}}

- ``encoder``: 1–4 widths, each ``log_int(32, 128)``; all but the last are hidden layers, the last is the
  latent size L. The encoder is flatten → hidden layers (activation after each) → Dense(2L) = (mean, log-std)
  of a diagonal Gaussian q(z|x); log-std clipped to [-10, 10].
- ``decoder``: 1–3 hidden widths, each ``log_int(32, 128)``: z → hidden layers → Dense(2D) = (mean, log-std)
  of a diagonal Gaussian p(x|z) over the D pixels; log-std clipped to [-10, 10].
- Prior p(z) = N(0, I); KL(q‖p) in closed form; one reparameterised sample of z per example (drawn from the
  loss ``key``).
- ``activation``, ``init``: TaskSet's weighted choices (every kernel; zero biases).
- ``data``: the shared image-data config (:mod:`families.image_data`); labels unused. ``center_data`` moves the
  modelled pixels to [-1, 1]; the loss is corrected for it, so it is the same quantity either way.

Likelihood and loss (TaskSet used a quantised normal; we use the standard uniform-dequantisation bound
instead, which is simpler and never lets the density collapse onto the 0/255 pixels): pixels ``v ∈ {0..255}``
become ``x = s · (v + u)/256 − c`` with ``u ~ U[0, 1)`` from the loss ``key`` (s = 2, c = 1 when centred;
s = 1, c = 0 otherwise). The loss is the negative ELBO of ``v + u`` measured on the 0..256 pixel scale, in
nats **per example** (summed over pixels), averaged over the batch::

    loss = mean_batch[ -E_q log p(x|z) + KL(q(z|x) ‖ p(z)) + D · log(256 / s) ]

By Jensen it upper-bounds the negative log-likelihood of the discrete image under the induced quantised model,
so its expectation is ≥ 0. An untrained model sits near 6–7 nats per pixel; a good one near 1–2.

Batches: ``{"pixels": uint8 (B, H, W, 1), "label": int32 (B,)}`` (raw pixels: the loss dequantises them).

Normalizer: ``clip(loss / D, 0, 10)`` — nats per pixel (learned_optimization's VAE normalizer); NaN → 10.

Cost: ``params`` exact; ``flops_per_step`` = 3 × batch × Σ 2·fan_in·fan_out over both networks' matmuls.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence

from families._lazy import LazyModule, jax, jnp, nn

from families import common, image_data
from families.base import Cost
from families.mlp import dense_flops, dense_params, hashable_init
from families.space import Int, ListOf, Struct


_nets = LazyModule("families.nets.mlp_vae")


def __getattr__(name):  # the Flax modules live in families.nets.mlp_vae; still importable from here
    if name in ('VAE',):
        return getattr(_nets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

WIDTH_RANGE = (32, 128)
ENCODER_DEPTH = (1, 4)
DECODER_DEPTH = (1, 3)
LOG_STD_CLIP = 10.0
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class MLPVAEFamily(image_data.ImageFamily):
    name = "mlp_vae"
    version = 1

    def config_space(self) -> Struct:
        return Struct({
            "encoder": ListOf(Int(*WIDTH_RANGE), *ENCODER_DEPTH),
            "decoder": ListOf(Int(*WIDTH_RANGE), *DECODER_DEPTH),
            "activation": common.ACTIVATION_SPACE,
            "init": common.INITIALIZER_SPACE,
            "data": image_data.data_space(),
        })

    def sample(self, rng) -> dict:
        n_enc = rng.linear_int(*ENCODER_DEPTH)
        encoder = [rng.log_int(*WIDTH_RANGE) for _ in range(n_enc)]
        n_dec = rng.linear_int(*DECODER_DEPTH)
        decoder = [rng.log_int(*WIDTH_RANGE) for _ in range(n_dec)]
        return {
            "encoder": encoder,
            "decoder": decoder,
            "activation": common.sample_activation(rng),
            "init": common.sample_initializer(rng),
            "data": image_data.sample_data(rng),
        }

    def _chains(self, config):
        d = image_data.input_dim(config["data"])
        enc = config["encoder"]
        return [d, *enc[:-1], 2 * enc[-1]], [enc[-1], *config["decoder"], 2 * d]

    def cost(self, config) -> Cost:
        enc, dec = self._chains(config)
        b = config["data"]["batch_size"]
        return Cost(dense_params(enc) + dense_params(dec), dense_flops(enc, b) + dense_flops(dec, b))

    def variant(self, config) -> str:
        return f"mlp_vae/{config['data']['dataset']}"

    def functions(self, key: str):
        """The four task functions of static key ``key``."""
        return _functions(key)


@functools.lru_cache(maxsize=None)
def _functions(key: str):
    """``(init, loss, sample_batch, normalizer)`` for a static key."""
    config = json.loads(key.split(":", 1)[1])
    data = config["data"]
    dim = data["image_size"] ** 2 * image_data.CHANNELS
    latent = config["encoder"][-1]
    batch_size = data["batch_size"]
    center = data["center_data"]
    scale, offset = (2.0, 1.0) if center else (1.0, 0.0)
    log_jacobian = dim * math.log(256.0 / scale)
    model = _nets.VAE(encoder=tuple(config["encoder"]), decoder=tuple(config["decoder"]), out_dim=dim,
                activation=config["activation"], init_config=hashable_init(config["init"]))

    def init(rng):
        return model.init(rng, jnp.zeros((1, dim), jnp.float32), jnp.zeros((1, latent), jnp.float32))["params"]

    def loss(params, batch, rng):
        pixels = batch["pixels"]
        b = pixels.shape[0]
        k_deq, k_z = jax.random.split(rng)
        v = pixels.reshape(b, -1).astype(jnp.float32)
        x = scale * (v + jax.random.uniform(k_deq, v.shape)) / 256.0 - offset
        eps = jax.random.normal(k_z, (b, latent))
        return jnp.mean(model.apply({"params": params}, x, eps)) + log_jacobian

    def sample_batch(split_data, rng):
        rows = common.sample_rows(split_data, rng, batch_size)
        return {"pixels": rows["x"], "label": rows["y"]}

    def normalizer(loss):
        per_pixel = jnp.nan_to_num(jnp.asarray(loss, jnp.float32) / dim, nan=10.0, posinf=10.0, neginf=0.0)
        return jnp.clip(per_pixel, 0.0, 10.0)

    # Jitted once per static key (eager callers compile once instead of per op; inlined under a trainer's jit).
    return jax.jit(init), jax.jit(loss), jax.jit(sample_batch), normalizer
