"""Noise-reuse evolution strategies (NRES)."""

from __future__ import annotations

import jax.numpy as jnp

from lopt_trainer.meta.estimators.base import Estimator, all_finite, difference

__all__ = ["NRES"]


class NRES(Estimator):
    """Noise-reuse evolution strategies (Li et al. 2023, arXiv 2304.12180): one perturbation ``ε`` per episode,
    drawn at the slot's reset and reused by every truncation of that unroll; the estimate is ``ε (L+ − L−) / (2σ²)``.
    Summed over an unroll's truncations it is the antithetic ES estimate of the whole unroll, unbiased for the
    gradient of that loss smoothed with one perturbation per unroll (PES smooths with a fresh one per truncation:
    the two agree to first order in σ), and of lower variance than PES (no sum of fresh draws)."""

    def perturbations(self, eps, accum, reset):
        noise = jnp.where(reset[:, None], eps, accum)
        return noise, noise

    def slot_estimates(self, losses, eps, accum, bp, settings):
        per_slot = accum * difference(losses, settings)[:, None]
        return per_slot, all_finite(per_slot)

