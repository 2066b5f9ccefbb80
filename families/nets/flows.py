"""The Flax modules of :mod:`families.flows` (imported only when a task is built)."""

from __future__ import annotations

import math
from typing import Callable

import flax.linen as nn
import jax.numpy as jnp

from families.flows import _bounded, made_masks


class MaskedDense(nn.Module):
    """Dense layer whose kernel is multiplied by a fixed mask (rebuilt from ``dim``/``hidden``/``layer``)."""

    features: int
    dim: int
    hidden: tuple
    layer: int
    kernel_init: Callable

    @nn.compact
    def __call__(self, x):
        mask = made_masks(self.dim, self.hidden)[self.layer]
        kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return x @ (kernel * jnp.asarray(mask)) + bias


class MADE(nn.Module):
    """Masked autoencoder for distribution estimation. Takes ``(B, dim)``, returns ``(shift, raw log-scale)``."""

    dim: int
    hidden: tuple
    activation: Callable
    kernel_init: Callable

    @nn.compact
    def __call__(self, x):
        for i, width in enumerate(self.hidden):
            x = self.activation(MaskedDense(width, self.dim, self.hidden, i, self.kernel_init)(x))
        out = MaskedDense(2 * self.dim, self.dim, self.hidden, len(self.hidden), nn.initializers.zeros)(x)
        return out[..., : self.dim], out[..., self.dim:]


class CouplingNet(nn.Module):
    """MLP from the conditioning half to ``(shift, raw log-scale)`` of the transformed half (``out`` pixels)."""

    out: int
    hidden: tuple
    activation: Callable
    kernel_init: Callable

    @nn.compact
    def __call__(self, x):
        for width in self.hidden:
            x = self.activation(nn.Dense(width, kernel_init=self.kernel_init)(x))
        y = nn.Dense(2 * self.out, kernel_init=nn.initializers.zeros)(x)
        return y[..., : self.out], y[..., self.out:]


class Flow(nn.Module):
    """A chain of affine flow layers with permutations between them.

    ``__call__(x, perms)`` takes ``x`` ``(B, dim)`` and ``perms`` ``(num_layers − 1, dim)`` int32 and returns
    ``log p(x)`` ``(B,)`` under a diagonal standard-normal base.
    """

    kind: str  # "maf" or "nvp"
    dim: int
    num_layers: int
    hidden: tuple
    activation: Callable
    kernel_init: Callable

    def __call__(self, x, perms):
        z, log_det = self.transform(x, perms)
        log_base = -0.5 * jnp.sum(jnp.square(z), axis=-1) - 0.5 * self.dim * math.log(2 * math.pi)
        return log_base + log_det

    @nn.compact
    def transform(self, x, perms):
        """The data → base map: ``(z (B, dim), log|det ∂z/∂x| (B,))``."""
        h, log_det = x, jnp.zeros(x.shape[:-1], x.dtype)
        half = self.dim // 2
        for k in range(self.num_layers):
            if self.kind == "maf":
                shift, raw = MADE(self.dim, self.hidden, self.activation, self.kernel_init)(h)
                alpha = _bounded(raw)
                h = (h - shift) * jnp.exp(-alpha)
            else:
                lo, hi = (h[..., :half], h[..., half:]) if k % 2 == 0 else (h[..., half:], h[..., :half])
                shift, raw = CouplingNet(hi.shape[-1], self.hidden, self.activation, self.kernel_init)(lo)
                alpha = _bounded(raw)
                hi = (hi - shift) * jnp.exp(-alpha)
                h = jnp.concatenate([lo, hi] if k % 2 == 0 else [hi, lo], axis=-1)
            log_det = log_det - jnp.sum(alpha, axis=-1)
            if k < self.num_layers - 1:
                h = jnp.take(h, perms[k], axis=-1)
        return h, log_det
