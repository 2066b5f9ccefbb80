"""Truncated gradient estimators over a batch of inner problems: antithetic PES (default), NRES, antithetic ES,
truncated backpropagation, and a hybrid of PES and backpropagation.

One estimator call advances ``n`` *slots* (inner problems of one compiled shape, vmapped) by one truncation. For
the evolution strategies every slot draws ``ε ~ N(0, σ² I)`` (θ-shaped) and runs two particles, ``θ + ε`` and
``θ − ε``, on the same batches (common random numbers) with ``lax.scan`` over the truncation; ``L±`` is each
particle's mean per-step meta-loss (:mod:`lopt_trainer.meta.truncation`).

* **PES** (Vicol et al. 2021): the ``±`` particles keep separate inner states across truncations and every slot
  keeps the sum ``A`` of the perturbations since its problem started (``A ← A + ε``, zeroed at a reset). The slot's
  estimate is ``A (L+ − L−) / (2σ²)``: unbiased for the gradient of the smoothed loss of the whole unroll.
* **NRES** (Li et al. 2023, "Noise-reuse in online evolution strategies"): the particles keep their states as in
  PES, but every slot draws one ``ε`` when its problem starts and reuses it for all its truncations; the estimate is
  ``ε (L+ − L−) / (2σ²)``: over an unroll, the antithetic ES estimate of the whole unroll (the same gradient as
  PES to first order in σ), with lower variance.
* **ES**: both particles start every truncation from one shared state (the ``+`` particle's state is kept); the
  estimate is ``ε (L+ − L−) / (2σ²)`` (biased by truncation, lower variance).
* **Backprop** (truncated backpropagation through time): one particle at θ itself; the estimate is the gradient
  of its truncated meta-loss ``∇θ L`` by differentiating through the unroll (the inner gradients included), the
  inner state carried across truncations as for PES but treated as a constant (the truncation bias). Its
  variance does not grow with θ's dimension, but through long unrolls it can explode (Metz et al. 2019, "Understanding
  and correcting pathologies in the training of learned optimizers", arXiv 1810.10180): each slot's gradient is
  clipped to global norm ``bp_clip`` and a slot whose gradient is not finite contributes nothing.
* **Hybrid** (the same paper, §4): the PES particles are also differentiated, so every slot gives both a PES
  estimate and a reparameterised one, ``∇θ (L+ + L−)/2`` (the gradient of the Gaussian-smoothed truncated loss).
  Per block of θ (one block per θ tensor) the two slot means are combined by inverse-variance weighting,
  ``g_B = (v_bp g_pes + v_pes g_bp) / (v_pes + v_bp)``, with ``v`` the variance of each slot mean measured across
  the call's slots (averaged over the block's entries): whichever estimator is noisier on a block counts less
  there. ``stats["pes_weight"]`` reports the PES weight of every block.

Each algorithm is one class with one interface (:class:`~.base.Estimator`), one per module: :class:`~.pes.PES`,
:class:`~.nres.NRES`, :class:`~.es.ES`, :class:`~.backprop.TruncatedBackprop`, :class:`~.hybrid.Hybrid`, named in
:data:`~.kinds.ESTIMATORS`. A class says which particles run with which perturbation, and how their losses and
gradients become the slots' estimates and the call's meta-gradient; :func:`~.compute.estimate_from_draws` runs the
slots and asks the class. The estimate is the mean over the slots that trained in this truncation. A slot whose
estimate has a non-finite entry contributes zero and is counted (``nan_grads``). :mod:`~.settings` holds the
settings and the slots' state; :mod:`~.programs` compiles a call's programs (keyed on task functions, optimizer,
settings, data layout, ahead of time, so compile time is measured apart from run time) and runs them.

Compile time is the cost of a new group on this machine, so the estimator is shaped for it: the θ-wide arithmetic
(perturbations, PES sums, per-slot estimates, finiteness) runs on θ raveled into one vector (one fused loop per
operation instead of one per θ leaf), and the random draws (ε and the slots' fresh initial parameters) are a
separate small compiled function (:func:`draws`) whose results enter :func:`estimate_from_draws` as arguments;
inside one program XLA would fuse the normal sampler into each of its ~40 consumers. Together these halve the
estimator's cold compile. States and gradients keep θ's tree structure; :func:`estimate` composes the two parts.
"""

from __future__ import annotations

from lopt_trainer.meta.estimators.backprop import TruncatedBackprop
from lopt_trainer.meta.estimators.base import Estimator
from lopt_trainer.meta.estimators.compute import draws, estimate, estimate_from_draws
from lopt_trainer.meta.estimators.es import ES
from lopt_trainer.meta.estimators.hybrid import Hybrid, inverse_variance_combine
from lopt_trainer.meta.estimators.kinds import DIFFERENCES, ESTIMATORS, KINDS
from lopt_trainer.meta.estimators.nres import NRES
from lopt_trainer.meta.estimators.pes import PES
from lopt_trainer.meta.estimators.programs import (MAX_PROGRAMS, PROGRAMS, estimator_ready, place_slot_data,
                                                    prefetch_estimator, run_estimator, slot_sharding)
from lopt_trainer.meta.estimators.settings import (EstimatorSettings, EstimatorState, estimator_state_shapes,
                                                    init_estimator_state, part_mask)

__all__ = ["Estimator", "PES", "NRES", "ES", "TruncatedBackprop", "Hybrid", "ESTIMATORS", "KINDS", "DIFFERENCES",
           "EstimatorSettings", "EstimatorState", "estimator_state_shapes", "init_estimator_state", "part_mask",
           "draws", "estimate", "estimate_from_draws", "inverse_variance_combine", "MAX_PROGRAMS", "PROGRAMS",
           "slot_sharding", "place_slot_data", "estimator_ready", "prefetch_estimator", "run_estimator"]
