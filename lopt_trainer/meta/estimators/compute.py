"""One estimator call as pure functions: the random draws, then every slot's truncation and the meta-gradient."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from lopt_trainer.meta.estimators.kinds import ESTIMATORS
from lopt_trainer.meta.estimators.settings import EstimatorSettings, EstimatorState, part_mask
from lopt_trainer.meta.truncation import TaskFns, problem_from_params, tree_where, unroll

__all__ = ["draws", "estimate", "estimate_from_draws"]


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
    mask = part_mask(theta, settings.parts)
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
            if mask is not None:  # the parts held fixed neither weigh in the clip nor void the slot
                g = g * mask
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

