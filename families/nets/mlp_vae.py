"""The Flax modules of :mod:`families.mlp_vae` (imported only when a task is built)."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from families.mlp_vae import LOG_STD_CLIP, _HALF_LOG_2PI
from families.nets.mlp import DenseStack


class VAE(nn.Module):
    """Encoder and decoder stacks; ``__call__`` returns the per-example negative ELBO (without the scale term)."""

    encoder: Sequence[int]
    decoder: Sequence[int]
    out_dim: int
    activation: str
    init_config: tuple

    def setup(self):
        """The encoder (mean and log-std of the latent) and decoder stacks."""
        latent = self.encoder[-1]
        self.enc = DenseStack(features=tuple(self.encoder[:-1]) + (2 * latent,), activation=self.activation,
                              init_config=self.init_config)
        self.dec = DenseStack(features=tuple(self.decoder) + (2 * self.out_dim,), activation=self.activation,
                              init_config=self.init_config)

    def __call__(self, x, eps):
        latent = self.encoder[-1]
        h = self.enc(x)
        mu_z, log_std_z = h[:, :latent], jnp.clip(h[:, latent:], -LOG_STD_CLIP, LOG_STD_CLIP)
        z = mu_z + jnp.exp(log_std_z) * eps
        o = self.dec(z)
        mu_x, log_std_x = o[:, :self.out_dim], jnp.clip(o[:, self.out_dim:], -LOG_STD_CLIP, LOG_STD_CLIP)
        nll = jnp.sum(0.5 * jnp.square((x - mu_x) * jnp.exp(-log_std_x)) + log_std_x + _HALF_LOG_2PI, axis=-1)
        kl = jnp.sum(0.5 * (jnp.square(mu_z) + jnp.exp(2 * log_std_z) - 1.0) - log_std_z, axis=-1)
        return nll + kl
