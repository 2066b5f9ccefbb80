"""The interface every estimator implements (:class:`Estimator`) and the antithetic factor ES and PES share."""

from __future__ import annotations

import jax.numpy as jnp

__all__ = ["Estimator", "difference", "all_finite"]


class Estimator:
    """One algorithm's part of an estimator call: which particles run, and how their losses (and gradients) become
    each slot's estimate and the call's meta-gradient. Subclasses are stateless; :data:`ESTIMATORS` holds one of
    each, named as the ``estimator`` setting names them."""

    signs: tuple = (1.0, -1.0)
    """The particles' perturbations: particle ``k`` runs ``θ + signs[k] ε``."""
    differentiates: bool = False
    """Whether each slot also backpropagates through its particles' unroll (the ``bp`` estimate)."""
    keeps_particles: bool = True
    """Whether the particles keep separate inner states (and the slot its perturbation sum) across truncations."""

    def perturbations(self, eps, accum, reset):
        """``(the perturbation the slots' particles run with, the slots' carried perturbation)``, both ``(n, d)``,
        from this call's draws ``eps``, the carried ones ``accum`` and the slots starting afresh ``reset`` ``(n,)``:
        a fresh ``ε`` per truncation, its sum since the reset carried (PES's ``A``)."""
        return eps, jnp.where(reset[:, None], 0.0, accum) + eps

    def slot_estimates(self, losses, eps, accum, bp, settings):
        """``(per-slot estimates (n, d), finite (n,))`` from the particles' mean losses ``(n, particles)``, the
        perturbations ``eps`` and their sums since each slot's reset ``accum`` (both ``(n, d)``), and the clipped
        backpropagated gradients ``bp`` ``(n, d)`` (zeros unless :attr:`differentiates`)."""
        raise NotImplementedError

    def combine(self, per_slot, bp, finite, live, trained, theta):
        """``(meta-gradient (d,), extra stats)``: the mean of the finite per-slot estimates over the ``trained``
        slots that counted steps."""
        return jnp.sum(jnp.where(finite[:, None], per_slot, 0.0), axis=0) / trained, {}


def difference(losses, settings):
    """The antithetic factor of ES/PES: ``(L+ − L−) / (2σ²)``, or ``sign(L+ − L−) / σ`` (:data:`DIFFERENCES`)."""
    sigma = settings.sigma
    if settings.difference == "sign":
        return jnp.sign(losses[:, 0] - losses[:, 1]) / sigma
    return (losses[:, 0] - losses[:, 1]) / (2.0 * sigma * sigma)


def all_finite(x):
    return jnp.all(jnp.isfinite(x), axis=1)

