"""Antithetic evolution strategies over one truncation (ES)."""

from __future__ import annotations

from lopt_trainer.meta.estimators.base import Estimator, all_finite, difference

__all__ = ["ES"]


class ES(Estimator):
    """Antithetic evolution strategies over one truncation: ``ε (L+ − L−) / (2σ²)``; both particles restart from
    the ``+`` particle's state."""

    keeps_particles = False

    def slot_estimates(self, losses, eps, accum, bp, settings):
        per_slot = eps * difference(losses, settings)[:, None]
        return per_slot, all_finite(per_slot)

