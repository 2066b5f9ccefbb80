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

from lopt_trainer.errors import ThetaFileError
from lopt_trainer.theta.check import array_shapes, first_non_finite

__all__ = ["interpolate_theta"]


def interpolate_theta(theta_a, theta_b, alpha: float, *, source_a="θ_a", source_b="θ_b"):
    """``(1 − alpha)·theta_a + alpha·theta_b``, leaf by leaf (float32 arithmetic), in ``theta_a``'s structure and
    dtypes; at ``alpha`` 0 and 1 the endpoints themselves, bit for bit.

    ``alpha`` is any finite float: values outside [0, 1] extrapolate. Raises ``ValueError`` for a non-finite
    ``alpha`` or one so large that the result overflows (naming the first array); ``ThetaFileError`` naming both
    sources and the first array whose name or shape differs between the two θ.
    """
    alpha = float(alpha) + 0.0  # -0.0 reads as 0.0
    if not math.isfinite(alpha):
        raise ValueError(f"interpolation weight alpha must be finite, got {alpha!r}")
    have_a, have_b = array_shapes(theta_a), array_shapes(theta_b)
    for name in sorted(set(have_a) | set(have_b)):
        if have_a.get(name) != have_b.get(name):
            def show(d):
                return "no such array" if name not in d else f"shape {d[name]}"
            raise ThetaFileError(f"cannot interpolate {source_a} and {source_b}: array {name!r} has "
                                 f"{show(have_a)} in {source_a} and {show(have_b)} in {source_b} (both must be θ of "
                                 "one learned optimizer)")
    dtypes = jax.tree_util.tree_map(lambda a: jnp.asarray(a).dtype, theta_a)
    if alpha in (0.0, 1.0):
        ends = theta_a if alpha == 0.0 else theta_b
        return jax.tree_util.tree_map(lambda x, d: jnp.asarray(x, d), ends, dtypes)
    out = jax.tree_util.tree_map(
        lambda a, b, d: ((1.0 - alpha) * jnp.asarray(a, jnp.float32) + alpha * jnp.asarray(b, jnp.float32)).astype(d),
        theta_a, theta_b, dtypes)
    bad = first_non_finite(out)
    if bad is not None:
        raise ValueError(f"alpha={alpha:g} overflows: array {bad[0]!r} of the interpolated θ holds {bad[1]} "
                         "non-finite value(s); use a smaller |alpha|")
    return out
