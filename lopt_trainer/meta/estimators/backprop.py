"""Truncated backpropagation through time."""

from __future__ import annotations

from lopt_trainer.meta.estimators.base import Estimator, all_finite

__all__ = ["TruncatedBackprop"]


class TruncatedBackprop(Estimator):
    """Truncated backpropagation through time: one particle at θ, its truncated meta-loss differentiated through
    the unroll (each slot's gradient clipped to ``bp_clip``)."""

    signs = (0.0,)
    differentiates = True
    keeps_particles = False

    def slot_estimates(self, losses, eps, accum, bp, settings):
        return bp, all_finite(bp)

