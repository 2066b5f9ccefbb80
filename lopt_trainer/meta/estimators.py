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
  ``ε (L+ − L−) / (2σ²)``, unbiased for the same gradient as PES, with lower variance.
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

Each algorithm is one class (:class:`PES`, :class:`NRES`, :class:`ES`, :class:`TruncatedBackprop`,
:class:`Hybrid`, named in :data:`ESTIMATORS`): which particles run with which perturbation, and how their losses
and gradients become the slots' estimates and the call's meta-gradient; :func:`estimate_from_draws` runs the slots
and asks the class. The estimate is the mean over the slots that trained in this truncation. A slot whose estimate
has a non-finite entry contributes zero and is counted (``nan_grads``). Compiled code is keyed on (task functions, optimizer,
settings, data layout) and compiled ahead of time, so compile time is measured apart from run time.

Compile time is the cost of a new group on this machine, so the estimator is shaped for it: the θ-wide arithmetic
(perturbations, PES sums, per-slot estimates, finiteness) runs on θ raveled into one vector (one fused loop per
operation instead of one per θ leaf), and the random draws (ε and the slots' fresh initial parameters) are a
separate small compiled function (:func:`draws`) whose results enter :func:`estimate_from_draws` as arguments;
inside one program XLA would fuse the normal sampler into each of its ~40 consumers. Together these halve the
estimator's cold compile. States and gradients keep θ's tree structure; :func:`estimate` composes the two parts.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jax.sharding import NamedSharding, PartitionSpec

from lopt_trainer.meta.truncation import (ProblemState, TaskFns, UnrollSettings, fresh_problem, problem_from_params,
                                         tree_where, unroll)
from lopt_trainer.common.devices import row_sharding
from lopt_trainer.common.program_cache import ProgramCache, shape_signature, shapes_of

__all__ = ["Estimator", "PES", "NRES", "ES", "TruncatedBackprop", "Hybrid", "ESTIMATORS", "KINDS", "DIFFERENCES",
           "EstimatorSettings", "EstimatorState", "estimator_state_shapes", "init_estimator_state", "part_mask",
           "draws", "estimate", "estimate_from_draws", "inverse_variance_combine", "MAX_PROGRAMS", "PROGRAMS",
           "slot_sharding", "estimator_ready", "prefetch_estimator", "run_estimator"]


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


def _difference(losses, settings):
    """The antithetic factor of ES/PES: ``(L+ − L−) / (2σ²)``, or ``sign(L+ − L−) / σ`` (:data:`DIFFERENCES`)."""
    sigma = settings.sigma
    if settings.difference == "sign":
        return jnp.sign(losses[:, 0] - losses[:, 1]) / sigma
    return (losses[:, 0] - losses[:, 1]) / (2.0 * sigma * sigma)


def _finite(x):
    return jnp.all(jnp.isfinite(x), axis=1)


class PES(Estimator):
    """Persistent evolution strategies (Vicol et al. 2021): ``A (L+ − L−) / (2σ²)`` with ``A`` the slot's
    perturbations summed since its reset; the particles keep their states across truncations."""

    def slot_estimates(self, losses, eps, accum, bp, settings):
        per_slot = accum * _difference(losses, settings)[:, None]
        return per_slot, _finite(per_slot)


class NRES(Estimator):
    """Noise-reuse evolution strategies (Li et al. 2023, arXiv 2304.12180): one perturbation ``ε`` per episode,
    drawn at the slot's reset and reused by every truncation of that unroll; the estimate is ``ε (L+ − L−) / (2σ²)``.
    Like PES unbiased for the smoothed loss of the whole unroll, with lower variance (no sum of fresh draws)."""

    def perturbations(self, eps, accum, reset):
        noise = jnp.where(reset[:, None], eps, accum)
        return noise, noise

    def slot_estimates(self, losses, eps, accum, bp, settings):
        per_slot = accum * _difference(losses, settings)[:, None]
        return per_slot, _finite(per_slot)


class ES(Estimator):
    """Antithetic evolution strategies over one truncation: ``ε (L+ − L−) / (2σ²)``; both particles restart from
    the ``+`` particle's state."""

    keeps_particles = False

    def slot_estimates(self, losses, eps, accum, bp, settings):
        per_slot = eps * _difference(losses, settings)[:, None]
        return per_slot, _finite(per_slot)


class TruncatedBackprop(Estimator):
    """Truncated backpropagation through time: one particle at θ, its truncated meta-loss differentiated through
    the unroll (each slot's gradient clipped to ``bp_clip``)."""

    signs = (0.0,)
    differentiates = True
    keeps_particles = False

    def slot_estimates(self, losses, eps, accum, bp, settings):
        return bp, _finite(bp)


class Hybrid(PES):
    """PES and the reparameterised gradient of the PES particles, combined per block of θ by inverse-variance
    weighting (Metz et al. 2019, §4); ``stats["pes_weight"]`` reports the PES weight of every block."""

    differentiates = True

    def slot_estimates(self, losses, eps, accum, bp, settings):
        per_slot, finite = super().slot_estimates(losses, eps, accum, bp, settings)
        return per_slot, finite & _finite(bp)

    def combine(self, per_slot, bp, finite, live, trained, theta):
        flat, weight = inverse_variance_combine(per_slot, bp, finite & live, _segments(theta))
        return flat, {"pes_weight": weight}


ESTIMATORS = {"pes": PES(), "es": ES(), "backprop": TruncatedBackprop(), "hybrid": Hybrid(), "nres": NRES()}
"""The estimators by the name the ``estimator`` setting gives them."""
KINDS = tuple(ESTIMATORS)
DIFFERENCES = ("value", "sign")
"""How a slot's antithetic difference ``L+ − L−`` enters its ES/PES estimate: ``value``, the estimate
``A (L+ − L−) / (2σ²)``; ``sign``, only which particle did better, ``A sign(L+ − L−) / σ`` (VeLO's reduction, Metz
et al. 2022, arXiv 2211.09760: a task's scale and outliers no longer weigh; the estimate has expectation
``√(2/π)`` times the unit gradient direction for ES)."""


@dataclasses.dataclass(frozen=True)
class EstimatorSettings:
    """Estimator kind (one of :data:`KINDS`), σ (ES/PES/hybrid), ``bp_clip`` (the global-norm clip of each slot's
    backpropagated gradient; backprop and hybrid), the unroll settings, ``difference`` (one of
    :data:`DIFFERENCES`: how a slot's antithetic loss difference enters its ES/PES estimate) and ``parts`` (the
    top-level parts of θ that are perturbed and get a meta-gradient, :func:`part_mask`; None: all) (hashable)."""

    kind: str = "pes"
    sigma: float = 0.01
    unroll: UnrollSettings = UnrollSettings()
    bp_clip: float = 10.0
    difference: str = "value"
    parts: tuple | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown estimator {self.kind!r}; use one of {', '.join(KINDS)}")
        if self.difference not in DIFFERENCES:
            raise ValueError(f"unknown loss difference {self.difference!r}; use one of {', '.join(DIFFERENCES)}")
        if not self.sigma > 0:
            raise ValueError(f"sigma must be > 0, got {self.sigma}")
        if not self.bp_clip > 0:
            raise ValueError(f"bp_clip must be > 0, got {self.bp_clip}")
        if self.parts is not None and (not self.parts or not all(isinstance(p, str) for p in self.parts)):
            raise ValueError(f"parts must be a non-empty list of names of θ's parts, or None; got {self.parts!r}")


class EstimatorState(NamedTuple):
    """Per-slot state: ``particles`` (a :class:`ProblemState` with leading axes ``(n, 2)``) and the PES
    perturbation sums ``accum`` (θ-shaped with a leading ``n`` axis; zeros for ES)."""

    particles: ProblemState
    accum: Any


def _fresh_slots(theta, fns: TaskFns, lopt, n: int) -> EstimatorState:
    keys = jax.random.split(jax.random.PRNGKey(0), n)
    one = jax.vmap(lambda k: fresh_problem(theta, fns, lopt, k, 1))(keys)
    particles = jax.tree_util.tree_map(lambda x: jnp.stack([x, x], axis=1), one)
    accum = jax.tree_util.tree_map(lambda t: jnp.zeros((n,) + t.shape, t.dtype), theta)
    return EstimatorState(particles, accum)


def estimator_state_shapes(theta, fns: TaskFns, lopt, n: int) -> EstimatorState:
    """The shapes and dtypes (``jax.ShapeDtypeStruct`` leaves) of :func:`init_estimator_state`'s state."""
    shapes = jax.eval_shape(functools.partial(_fresh_slots, fns=fns, lopt=lopt, n=n), theta)
    return jax.tree_util.tree_map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype), shapes)


def init_estimator_state(theta, fns: TaskFns, lopt, n: int) -> EstimatorState:
    """An all-zeros state for ``n`` slots (every slot must be reset at its first use).

    The zeros are host (numpy) arrays: building them dispatches nothing to XLA, so a new group costs no compile.
    """
    return jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), estimator_state_shapes(theta, fns, lopt, n))


def part_mask(theta, parts) -> np.ndarray | None:
    """Which entries of raveled θ belong to the named top-level parts (the keys of θ's outer dict).

    Args:
      theta: θ (a dict of parts for the hierarchical optimizer: ``mlp``, ``lstm``, ``to_mlp``, …).
      parts: part names, or None for all of θ.

    Returns:
      float32 ``(|θ|,)``, 1 inside the parts and 0 elsewhere; None when ``parts`` is None.

    Raises:
      ValueError: a name is not a top-level part of θ (the message lists θ's parts).
    """
    if parts is None:
        return None
    names = list(theta) if isinstance(theta, dict) else []
    unknown = [p for p in parts if p not in names]
    if unknown:
        raise ValueError(f"train_parts {list(unknown)} are not parts of θ; θ's parts: {names or 'none (not a dict)'}")
    leaves = jax.tree_util.tree_flatten_with_path(theta)[0]
    return np.concatenate([np.full(int(np.size(x)), float(path[0].key in parts), np.float32)
                           for path, x in leaves])


def draws(theta, init_keys, key, *, fns: TaskFns, sigma: float, parts=None):
    """The random inputs of one estimator call; returns ``(eps, fresh_params, unroll_key)``.

    ``eps``: ``(n, |θ|)`` float32, ``σ · N(0, I)`` per slot over raveled θ (zero outside ``parts``, see
    :func:`part_mask`); ``fresh_params``: ``fns.init`` of every slot's ``init_keys[i]`` (used where the slot
    resets); ``unroll_key``: the key of the slots' batches.
    """
    k_eps, k_unroll = jax.random.split(key)
    flat, _ = ravel_pytree(theta)
    n = init_keys.shape[0]
    eps = jax.vmap(lambda i: sigma * jax.random.normal(jax.random.fold_in(k_eps, i), flat.shape, flat.dtype))(
        jnp.arange(n))
    mask = part_mask(theta, parts)
    if mask is not None:
        eps = eps * mask
    # lax.map, not vmap: a batched-key initializer takes about twice as long to compile, for no run-time gain
    # (an init is cheap next to the unroll).
    return eps, jax.lax.map(fns.init, init_keys), k_unroll


def estimate(theta, state: EstimatorState, data, reset, init_keys, horizons, key, *,
             fns: TaskFns, lopt, settings: EstimatorSettings, data_axes: dict):
    """One truncation of every slot; returns ``(grad, new_state, stats)`` (pure; jit it).

    Args:
      theta: meta-parameters. state: :class:`EstimatorState` of ``n`` slots.
      data: ``{split: split_data}``; ``data_axes[split]`` is 0 (leaves stacked per slot) or None (shared).
      reset: bool ``(n,)``: slots to start afresh (new init from ``init_keys[i]``, horizon ``horizons[i]``, PES
        sum zeroed) before this truncation.
      key: this call's key (perturbations and batches are derived from it per slot).

    ``stats``: ``meta_loss`` (mean of ``(L+ + L−)/2`` over the slots that trained), ``trained`` (how many slots
    trained with steps that count in the meta-loss: a draining estimator's ended slots idle, and a truncation
    wholly before ``settings.unroll.meta_loss_from`` counts nothing), ``done`` (bool ``(n,)``: horizon reached or,
    when ``meta_loss_from`` is 0, diverged; reset these next time), ``clipped`` (counted steps scored
    ``loss_clip``: non-finite or diverged), ``nan_grads`` (slots zeroed),
    ``active_steps`` (particle steps that trained), ``counted_steps`` (of those, the ones the meta-loss counts),
    ``slot_loss`` ``(n,)``.
    """
    eps, fresh_params, k_unroll = draws(theta, init_keys, key, fns=fns, sigma=settings.sigma, parts=settings.parts)
    return estimate_from_draws(theta, state, data, reset, init_keys, horizons, eps, fresh_params, k_unroll,
                               fns=fns, lopt=lopt, settings=settings, data_axes=data_axes)


def estimate_from_draws(theta, state: EstimatorState, data, reset, init_keys, horizons, eps, fresh_params,
                        unroll_key, *, fns: TaskFns, lopt, settings: EstimatorSettings, data_axes: dict):
    """:func:`estimate` given the outputs of :func:`draws` (pure; jit it); returns ``(grad, new_state, stats)``."""
    algo = ESTIMATORS[settings.kind]
    n = reset.shape[0]
    flat_theta, unravel = ravel_pytree(theta)
    flat_accum = jax.vmap(lambda a: ravel_pytree(a)[0])(state.accum)
    noise, accum = algo.perturbations(eps, flat_accum, reset)
    signs = jnp.asarray(algo.signs, jnp.float32)
    particles = jax.tree_util.tree_map(lambda x: x[:, :len(algo.signs)], state.particles)

    def slot(eps_s, parts_s, data_s, reset_s, params_s, init_key_s, horizon_s, i):
        ukey = jax.random.fold_in(unroll_key, i)

        def particle(sign, ps, flat_t):
            theta_p = unravel(flat_t + sign.astype(eps_s.dtype) * eps_s)
            fresh = problem_from_params(theta_p, params_s, lopt, init_key_s, horizon_s)
            ps = tree_where(reset_s, fresh, ps)
            start = ps.step
            ps, meta, counted, clipped = unroll(theta_p, ps, data_s, ukey, fns, lopt, settings.unroll)
            count = jnp.sum(counted)
            return jnp.sum(meta) / jnp.maximum(count, 1), (ps, count, jnp.sum(clipped), ps.step - start)

        def all_particles(flat_t):
            means, aux = jax.vmap(particle, in_axes=(0, 0, None))(signs, parts_s, flat_t)
            return jnp.mean(means), (means, aux)

        if algo.differentiates:
            (_, (means, aux)), g = jax.value_and_grad(all_particles, has_aux=True)(flat_theta)
            g = _clip_norm(g, settings.bp_clip)
        else:
            _, (means, aux) = all_particles(flat_theta)
            g = jnp.zeros_like(flat_theta)
        return (means, *aux, g)

    axes = {s: data_axes[s] for s in data}
    losses, parts, counts, clipped, steps_run, bp = jax.vmap(slot, in_axes=(0, 0, axes, 0, 0, 0, 0, 0))(
        noise, particles, data, reset, fresh_params, init_keys, horizons, jnp.arange(n))
    # Idle slots (a draining estimator's ended problems, or a truncation wholly before ``meta_loss_from``) have no
    # signal: average over the slots whose steps counted in the meta-loss.
    live = counts[:, 0] > 0
    trained = jnp.maximum(jnp.sum(live), 1)
    per_slot, finite = algo.slot_estimates(losses, eps, accum, bp, settings)
    flat_grad, stats = algo.combine(per_slot, bp, finite, live, trained, theta)
    mask = part_mask(theta, settings.parts)
    if mask is not None:  # the parts held fixed get no meta-gradient (ES/PES: none arises; backprop: dropped)
        flat_grad = flat_grad * mask
    grad = unravel(flat_grad)
    if not algo.keeps_particles:  # one shared state for the next truncation; no perturbation sums
        parts = jax.tree_util.tree_map(lambda x: jnp.concatenate([x[:, :1], x[:, :1]], axis=1), parts)
        accum = jnp.zeros_like(accum)
        losses = jnp.concatenate([losses[:, :1], losses[:, :1]], axis=1)
    accum = jax.vmap(unravel)(accum)
    done = parts.step[:, 0] >= parts.horizon[:, 0]
    if settings.unroll.meta_loss_from == 0:
        done = done | jnp.any(parts.diverged, axis=1)
    # else a diverged problem runs on, frozen, to its horizon: its late steps score loss_clip, so diverging before
    # ``meta_loss_from`` costs as much as diverging after it (a reset would hide it from the late-phase meta-loss).
    slot_loss = jnp.mean(losses, axis=1)
    stats.update({"meta_loss": jnp.sum(jnp.where(live, slot_loss, 0.0)) / trained, "slot_loss": slot_loss,
                  "done": done, "trained": jnp.sum(live), "clipped": jnp.sum(clipped), "nan_grads": jnp.sum(~finite),
                  "active_steps": jnp.sum(steps_run), "counted_steps": jnp.sum(counts)})
    return grad, EstimatorState(parts, accum), stats


def _clip_norm(g, max_norm: float):
    """``g`` scaled down to global norm ``max_norm`` when longer (NaN/inf pass through, to be counted)."""
    norm = jnp.sqrt(jnp.sum(jnp.square(g)))
    return g * jnp.where(norm > max_norm, max_norm / norm, 1.0)


def _segments(theta) -> np.ndarray:
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


MAX_PROGRAMS = 40
"""Compiled estimator programs kept in memory (:mod:`lopt_trainer.common.program_cache`). Each group of tasks needs two,
so 40 holds the 16 estimators of the pretraining recipe with room for their next draws (each program maps ~1,000
memory regions; the kernel allows 65,530 per process). Unbounded, the pretraining run died after ~45 groups
(LLVM: "Cannot allocate memory", then a segfault). An evicted program that comes back is reloaded from the
persistent compilation cache (on by default here)."""

PROGRAMS = ProgramCache(MAX_PROGRAMS)


def slot_sharding(n: int):
    """How an estimator call of ``n`` slots is split over this process's devices: the row sharding of
    :func:`lopt_trainer.common.devices.row_sharding` when there are several devices and they divide ``n`` (the
    slots are never padded: a padded slot would change the estimate), else None (one device)."""
    sharding = row_sharding()
    if sharding is None or n % len(sharding.device_set):
        return None
    return sharding


def _estimate_shardings(sharding, data_axes: tuple):
    """``in_shardings`` of :func:`estimate_from_draws` with the slots split by ``sharding``: every argument with a
    leading slot axis split, θ, shared data and the unroll key replicated."""
    rep = NamedSharding(sharding.mesh, PartitionSpec())
    data = {split: sharding if axis == 0 else rep for split, axis in data_axes}
    return (rep, sharding, data, sharding, sharding, sharding, sharding, sharding, rep)


def _programs(fns: TaskFns, lopt, settings: EstimatorSettings, data_axes: dict, n: int):
    """The two programs of one compiled shape, as ``(draw key, make draws, estimate key, make estimate)``
    (:class:`~lopt_trainer.common.program_cache.ProgramCache` keys and their ``jax.jit`` factories). With several
    devices the estimate's slots are split over them (:func:`slot_sharding`); the draws run on one."""
    sigma = float(settings.sigma)
    draw_fn = functools.partial(draws, fns=fns, sigma=sigma, parts=settings.parts)
    axes = tuple(sorted(data_axes.items()))
    sharding = slot_sharding(n)
    split = {} if sharding is None else {"in_shardings": _estimate_shardings(sharding, axes)}

    def make_estimate():
        return jax.jit(functools.partial(estimate_from_draws, fns=fns, lopt=lopt, settings=settings,
                                         data_axes=dict(axes)), donate_argnums=(1,), **split)

    return (("draws", fns, sigma, settings.parts), (lambda: jax.jit(draw_fn)),
            ("estimate", fns, lopt, settings, axes, sharding), make_estimate)


def estimator_ready(theta, state: EstimatorState, data, data_axes: dict, n: int, *, fns: TaskFns, lopt,
                    settings: EstimatorSettings) -> bool:
    """Whether both programs of a call of :func:`run_estimator` with these inputs (``n`` slots) are compiled."""
    draw_key, _, est_key, _ = _programs(fns, lopt, settings, data_axes, n)
    draw_args = _draw_shapes(theta, n)
    est_args = _estimate_shapes(theta, state, data, n, fns, settings, draw_args)
    return (PROGRAMS.lookup(draw_key, draw_args) is not None
            and PROGRAMS.lookup(est_key, shapes_of(est_args)) is not None)


def prefetch_estimator(theta, state: EstimatorState, data, data_axes: dict, n: int, *, fns: TaskFns, lopt,
                       settings: EstimatorSettings) -> None:
    """Queue the compiles of :func:`run_estimator`'s two programs for these inputs on the background compile
    thread (no-op for programs compiled or queued). ``state`` and ``data`` may be arrays or
    ``jax.ShapeDtypeStruct`` trees: only their shapes are read. The numbers a later call computes do not depend
    on where its program was compiled."""
    draw_key, make_draws, est_key, make_estimate = _programs(fns, lopt, settings, data_axes, n)
    draw_args = _draw_shapes(theta, n)
    PROGRAMS.prefetch(draw_key, make_draws, draw_args)
    PROGRAMS.prefetch(est_key, make_estimate,
                      shapes_of(_estimate_shapes(theta, state, data, n, fns, settings, draw_args)))


def _draw_shapes(theta, n: int):
    """:func:`draws`' argument shapes for ``n`` slots (θ, ``n`` stacked keys and one key, as
    :func:`lopt_trainer.meta.work.work_keys` makes them with the configured PRNG)."""
    key = jax.eval_shape(lambda: jax.random.PRNGKey(0))
    return (theta, jax.ShapeDtypeStruct((n,) + key.shape, key.dtype), key)


_DRAW_OUTPUTS: dict = {}
"""Output shapes of :func:`draws` by (task functions, σ, argument shapes): a step asks for them for every
estimator (:func:`estimator_ready`), so they are traced once per group shape, not once per step."""


def _estimate_shapes(theta, state, data, n: int, fns: TaskFns, settings: EstimatorSettings, draw_args):
    """:func:`estimate_from_draws`' argument shapes (as passed by :func:`run_estimator`)."""
    head = (theta, state, data, jax.ShapeDtypeStruct((n,), np.bool_), draw_args[1],
            jax.ShapeDtypeStruct((n,), np.int32))
    sigma = float(settings.sigma)
    key = (fns, sigma, shape_signature(draw_args))
    if key not in _DRAW_OUTPUTS:
        if len(_DRAW_OUTPUTS) >= 4 * MAX_PROGRAMS:  # a long run visits many groups: keep the table small
            _DRAW_OUTPUTS.clear()
        _DRAW_OUTPUTS[key] = tuple(jax.eval_shape(functools.partial(draws, fns=fns, sigma=sigma), *draw_args))
    return head + _DRAW_OUTPUTS[key]


def run_estimator(theta, state: EstimatorState, data, data_axes: dict, reset, init_keys, horizons, key, *,
                  fns: TaskFns, lopt, settings: EstimatorSettings):
    """Compile (once per shape) and run :func:`estimate` as :func:`draws` then :func:`estimate_from_draws`;
    returns ``(grad, state, stats, compile_seconds)`` (wall seconds spent compiling, or waiting for a compile
    queued by :func:`prefetch_estimator`).

    A new group's two programs compile at the same time: the draws in the background
    (:meth:`~lopt_trainer.common.program_cache.ProgramCache.prefetch`), the estimator here, from the draws'
    output shapes.
    ``state`` is donated: do not use it after the call.
    """
    init_keys = jax.device_put(np.asarray(init_keys))
    draw_key, make_draws, est_key, make_estimate = _programs(fns, lopt, settings, data_axes, len(reset))
    draw_args = (theta, init_keys, key)
    head = (theta, state, data, jax.device_put(np.asarray(reset, bool)), init_keys,
            jax.device_put(np.asarray(horizons, np.int32)))
    compile_s = 0.0
    if PROGRAMS.lookup(draw_key, draw_args) is None:  # a new group: compile both programs side by side
        PROGRAMS.prefetch(draw_key, make_draws, draw_args)
        shapes = _estimate_shapes(theta, state, data, len(reset), fns, settings, draw_args)
        compile_s += PROGRAMS.get(est_key, make_estimate, shapes_of(shapes))[1]
    draw_exe, draw_s = PROGRAMS.get(draw_key, make_draws, draw_args)
    eps, fresh_params, unroll_key = draw_exe(*draw_args)
    args = head + (eps, fresh_params, unroll_key)
    # Looked up by shapes alone (a program's placement is part of its key): the arguments are then moved to where
    # the program wants them, a no-op on one device and for the slots' state it returned the step before.
    exe, est_s = PROGRAMS.get(est_key, make_estimate, shapes_of(args))
    compile_s += draw_s + est_s
    grad, state, stats = exe(*jax.device_put(args, exe.input_shardings[0]))
    return grad, state, stats, compile_s
