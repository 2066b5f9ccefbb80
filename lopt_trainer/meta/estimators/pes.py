"""Persistent evolution strategies (PES): the default estimator."""

from __future__ import annotations

from lopt_trainer.meta.estimators.base import Estimator, all_finite, difference

__all__ = ["PES"]


class PES(Estimator):
    """Persistent evolution strategies (Vicol et al. 2021): ``A (L+ − L−) / (2σ²)`` with ``A`` the slot's
    perturbations summed since its reset; the particles keep their states across truncations."""

    def slot_estimates(self, losses, eps, accum, bp, settings):
        per_slot = accum * difference(losses, settings)[:, None]
        return per_slot, all_finite(per_slot)

