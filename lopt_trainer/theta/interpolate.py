"""θ on the straight line between two θ: ``(1 − α)·θ_a + α·θ_b``.

The weight-space ensemble of Wortsman et al. 2022 ("Robust fine-tuning of zero-shot models", WiSE-FT,
arXiv 2109.01903), applied to learned optimizers: ``θ_a`` the untrained hand-set θ a run started from, ``θ_b`` the
θ it meta-trained. Interpolating is meaningful only along one lineage (``θ_b`` fine-tuned from ``θ_a``); between
unrelated θ the midpoint need not be a working optimizer.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from lopt_trainer.theta.check import check_like

__all__ = ["interpolate_theta"]


def interpolate_theta(theta_a, theta_b, alpha: float, *, source_b="θ_b"):
    """``(1 − alpha)·theta_a + alpha·theta_b``, leaf by leaf, in ``theta_a``'s dtypes.

    ``alpha`` is any finite float: 0 gives ``theta_a``, 1 ``theta_b``, values outside [0, 1] extrapolate.
    ``ValueError`` for a non-finite ``alpha``; ``ThetaFileError`` naming ``source_b`` and the first array whose name
    or shape differs from ``theta_a``'s.
    """
    alpha = float(alpha)
    if not math.isfinite(alpha):
        raise ValueError(f"interpolation weight alpha must be finite, got {alpha!r}")
    check_like(theta_b, theta_a, source_b)
    return jax.tree_util.tree_map(
        lambda a, b: ((1.0 - alpha) * jnp.asarray(a, jnp.float32) + alpha * jnp.asarray(b, jnp.float32)).astype(
            jnp.asarray(a).dtype), theta_a, theta_b)
