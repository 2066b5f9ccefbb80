"""The Flax modules of :mod:`families.conv` (imported only when a task is built)."""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax.numpy as jnp

from families.conv import KERNEL


class ConvStack(nn.Module):
    """3×3 convolutions with an activation after each. Takes ``(B, H, W, C)``, returns ``(B, H', W', C')``."""

    channels: tuple
    strides: tuple
    paddings: tuple
    use_bias: bool
    activation: Callable
    kernel_init: Callable

    @nn.compact
    def __call__(self, x):
        for c, s, p in zip(self.channels, self.strides, self.paddings):
            x = nn.Conv(c, (KERNEL, KERNEL), strides=(s, s), padding=p, use_bias=self.use_bias,
                         kernel_init=self.kernel_init)(x)
            x = self.activation(x)
        return x


class ConvPoolNet(nn.Module):
    """Conv stack → global spatial pool → linear logits. Takes images ``(B, H, W, C)``, returns ``(B, classes)``."""

    stack: ConvStack
    pool: str
    num_classes: int
    kernel_init: Callable

    @nn.compact
    def __call__(self, x):
        x = self.stack(x)
        if self.pool == "mean":
            x = jnp.mean(x, axis=(1, 2))
        elif self.pool == "max":
            x = jnp.max(x, axis=(1, 2))
        else:
            x = jnp.mean(jnp.square(x), axis=(1, 2))
        return nn.Dense(self.num_classes, kernel_init=self.kernel_init)(x)


class ConvFCNet(nn.Module):
    """Conv stack → flatten → dense layers (activation after each) → linear logits."""

    stack: ConvStack
    dense: tuple
    num_classes: int
    activation: Callable
    kernel_init: Callable

    @nn.compact
    def __call__(self, x):
        x = self.stack(x)
        x = x.reshape(x.shape[0], -1)
        for width in self.dense:
            x = self.activation(nn.Dense(width, kernel_init=self.kernel_init)(x))
        return nn.Dense(self.num_classes, kernel_init=self.kernel_init)(x)
