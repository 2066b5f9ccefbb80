"""The Flax modules of :mod:`families.rnn_cores` (imported only when a task is built)."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from families.rnn_cores import CORES, GATES, _block_orthogonal, _lstm_bias_init, run_core


class RNNCore(nn.Module):
    """A recurrent core over a batch of sequences.

    Attributes: ``core`` ∈ :data:`CORES`, ``hidden`` (width), ``trainable_init`` (learn the initial state;
    otherwise it is zeros).

    ``__call__(x)`` takes ``x`` (B, T, E) and returns the hidden states ``h_1..h_T`` as (B, T, H).
    """

    core: str
    hidden: int
    trainable_init: bool = False

    @nn.compact
    def __call__(self, x):
        if self.core not in GATES:
            raise ValueError(f"core {self.core!r} is not one of {list(CORES)}")
        g, hid = GATES[self.core], self.hidden
        bias_init = _lstm_bias_init if self.core == "lstm" else nn.initializers.zeros
        w = self.param("W", nn.initializers.glorot_uniform(), (x.shape[-1], g * hid))
        b = self.param("b", bias_init, (g * hid,))
        u = self.param("U", _block_orthogonal(g), (hid, g * hid))
        batch = x.shape[0]
        if self.trainable_init:
            h0 = jnp.broadcast_to(self.param("h0", nn.initializers.zeros, (hid,)), (batch, hid))
            c0 = (jnp.broadcast_to(self.param("c0", nn.initializers.zeros, (hid,)), (batch, hid))
                  if self.core == "lstm" else None)
        else:
            h0 = jnp.zeros((batch, hid), x.dtype)
            c0 = jnp.zeros((batch, hid), x.dtype) if self.core == "lstm" else None
        xw = jnp.swapaxes(x @ w + b, 0, 1)  # (T, B, G·H): time-major for the scan
        return jnp.swapaxes(run_core(self.core, u, h0, c0, xw), 0, 1)
