"""PES and truncated backprop combined per block of θ by inverse-variance weighting (the hybrid)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lopt_trainer.meta.estimators.base import all_finite
from lopt_trainer.meta.estimators.pes import PES

__all__ = ["Hybrid", "inverse_variance_combine", "segments"]


class Hybrid(PES):
    """PES and the reparameterised gradient of the PES particles, combined per block of θ by inverse-variance
    weighting (Metz et al. 2019, §4); ``stats["pes_weight"]`` reports the PES weight of every block."""

    differentiates = True

    def slot_estimates(self, losses, eps, accum, bp, settings):
        per_slot, finite = super().slot_estimates(losses, eps, accum, bp, settings)
        return per_slot, finite & all_finite(bp)

    def combine(self, per_slot, bp, finite, live, trained, theta):
        flat, weight = inverse_variance_combine(per_slot, bp, finite & live, segments(theta))
        return flat, {"pes_weight": weight}


def segments(theta) -> np.ndarray:
    """The block (θ tensor) index of every entry of raveled θ (static: from shapes only)."""
    sizes = [int(np.prod(np.shape(x))) for x in jax.tree_util.tree_leaves(theta)]
    return np.repeat(np.arange(len(sizes)), sizes)


def inverse_variance_combine(a, b, ok, segments):
    """Combine two per-slot estimates of one gradient by inverse-variance weighting per block.

    Args:
      a, b: ``(n, d)`` per-slot estimates (PES and backprop in the hybrid); rows where ``ok`` is false are
        ignored (a non-finite or idle slot).
      ok: bool ``(n,)``.
      segments: int ``(d,)``, the block of every entry (static NumPy array; blocks ``0 … max``).

    For each estimator the mean over the ``k`` usable slots ``ḡ`` and the variance of that mean, ``Var_slots / k``
    per entry (unbiased, ``k − 1`` in the denominator), averaged over the block's entries, ``v``. The block's
    weight of ``a`` is ``w = v_b / (v_a + v_b)`` (0.5 when both are 0; 1 for ``a`` when ``b``'s variance is not
    finite) and the result ``w ḡ_a + (1 − w) ḡ_b``. With fewer than 2 usable slots no variance can be measured:
    the weights are 0.5. Returns ``(combined (d,), weight of a per block (n_blocks,))``.
    """
    okf = ok.astype(a.dtype)[:, None]
    k = jnp.sum(okf)
    a = jnp.where(okf > 0, a, 0.0)
    b = jnp.where(okf > 0, b, 0.0)
    mean_a, mean_b = jnp.sum(a, 0) / jnp.maximum(k, 1), jnp.sum(b, 0) / jnp.maximum(k, 1)
    seg = jnp.asarray(segments)
    n_blocks = int(np.max(segments)) + 1
    sizes = jax.ops.segment_sum(jnp.ones_like(mean_a), seg, n_blocks)

    def block_var(x, mean):
        per_entry = jnp.sum(okf * jnp.square(x - mean), 0) / jnp.maximum(k - 1, 1) / jnp.maximum(k, 1)
        return jax.ops.segment_sum(per_entry, seg, n_blocks) / sizes

    va, vb = block_var(a, mean_a), block_var(b, mean_b)
    total = va + vb
    w = jnp.where(total > 0, vb / jnp.where(total > 0, total, 1.0), 0.5)
    w = jnp.where(jnp.isfinite(vb), w, 1.0)
    w = jnp.where(k >= 2, w, 0.5)
    wa = w[seg]
    return wa * mean_a + (1.0 - wa) * mean_b, w

