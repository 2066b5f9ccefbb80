"""Truncated gradient estimators over a batch of inner problems: antithetic PES (default) and antithetic ES.

One estimator call advances ``n`` *slots* (inner problems of one compiled shape, vmapped) by one truncation. Every
slot draws ``ε ~ N(0, σ² I)`` (θ-shaped) and runs two particles, ``θ + ε`` and ``θ − ε``, on the same batches
(common random numbers) with ``lax.scan`` over the truncation; ``L±`` is each particle's mean per-step meta-loss
(:mod:`lopt_trainer.meta.truncation`).

* **PES** (Vicol et al. 2021): the ``±`` particles keep separate inner states across truncations and every slot
  keeps the sum ``A`` of the perturbations since its problem started (``A ← A + ε``, zeroed at a reset). The slot's
  estimate is ``A (L+ − L−) / (2σ²)``: unbiased for the gradient of the smoothed loss of the whole unroll.
* **ES**: both particles start every truncation from one shared state (the ``+`` particle's state is kept); the
  estimate is ``ε (L+ − L−) / (2σ²)`` (biased by truncation, lower variance).

The estimate is the mean over slots. A slot whose estimate has a non-finite entry contributes zero and is counted
(``nan_grads``). Compiled code is keyed on (task functions, optimizer, settings, data layout) and compiled ahead
of time, so compile time is measured apart from run time.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from lopt_trainer.meta.truncation import ProblemState, TaskFns, UnrollSettings, fresh_problem, tree_where, unroll


@dataclasses.dataclass(frozen=True)
class EstimatorSettings:
    """Estimator kind (``"pes"`` or ``"es"``), σ and the unroll settings (hashable)."""

    kind: str = "pes"
    sigma: float = 0.01
    unroll: UnrollSettings = UnrollSettings()

    def __post_init__(self):
        if self.kind not in ("pes", "es"):
            raise ValueError(f"unknown estimator {self.kind!r}; use 'pes' or 'es'")
        if not self.sigma > 0:
            raise ValueError(f"sigma must be > 0, got {self.sigma}")


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


def init_estimator_state(theta, fns: TaskFns, lopt, n: int) -> EstimatorState:
    """An all-zeros state for ``n`` slots (every slot must be reset at its first use)."""
    shapes = jax.eval_shape(functools.partial(_fresh_slots, fns=fns, lopt=lopt, n=n), theta)
    return jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def perturbation(key, theta, sigma: float):
    """``σ · N(0, I)`` shaped like θ (one key per leaf, split from ``key``)."""
    leaves, treedef = jax.tree_util.tree_flatten(theta)
    keys = jax.random.split(key, len(leaves))
    return treedef.unflatten([sigma * jax.random.normal(k, jnp.shape(x), jnp.result_type(x))
                              for k, x in zip(keys, leaves)])


def _bcast(mask, x):
    return mask.reshape(mask.shape + (1,) * (x.ndim - mask.ndim))


def estimate(theta, state: EstimatorState, data, reset, init_keys, horizons, key, *,
             fns: TaskFns, lopt, settings: EstimatorSettings, data_axes: dict):
    """One truncation of every slot; returns ``(grad, new_state, stats)`` (pure; jit it).

    Args:
      theta: meta-parameters. state: :class:`EstimatorState` of ``n`` slots.
      data: ``{split: split_data}``; ``data_axes[split]`` is 0 (leaves stacked per slot) or None (shared).
      reset: bool ``(n,)``: slots to start afresh (new init from ``init_keys[i]``, horizon ``horizons[i]``, PES
        sum zeroed) before this truncation.
      key: this call's key (perturbations and batches are derived from it per slot).

    ``stats``: ``meta_loss`` (mean of ``(L+ + L−)/2`` over slots), ``done`` (bool ``(n,)``: horizon reached or
    diverged, reset these next time), ``clipped`` (non-finite step losses replaced), ``nan_grads`` (slots zeroed),
    ``active_steps`` (particle steps that trained), ``slot_loss`` ``(n,)``.
    """
    n = reset.shape[0]
    sigma = settings.sigma
    k_eps, k_unroll = jax.random.split(key)
    slot_ids = jnp.arange(n)
    eps = jax.vmap(lambda i: perturbation(jax.random.fold_in(k_eps, i), theta, sigma))(slot_ids)
    accum = jax.tree_util.tree_map(lambda a, e: jnp.where(_bcast(reset, a), 0.0, a) + e, state.accum, eps)
    signs = jnp.array([1.0, -1.0], jnp.float32)

    def slot(eps_s, parts_s, data_s, reset_s, init_key_s, horizon_s, i):
        ukey = jax.random.fold_in(k_unroll, i)

        def particle(sign, ps):
            theta_p = jax.tree_util.tree_map(lambda t, e: t + sign.astype(e.dtype) * e, theta, eps_s)
            ps = tree_where(reset_s, fresh_problem(theta_p, fns, lopt, init_key_s, horizon_s), ps)
            ps, meta, active, clipped = unroll(theta_p, ps, data_s, ukey, fns, lopt, settings.unroll)
            count = jnp.sum(active)
            mean = jnp.sum(meta) / jnp.maximum(count, 1)
            return ps, mean, count, jnp.sum(clipped)

        return jax.vmap(particle)(signs, parts_s)

    axes = {s: data_axes[s] for s in data}
    parts, losses, counts, clipped = jax.vmap(slot, in_axes=(0, 0, axes, 0, 0, 0, 0))(
        eps, state.particles, data, reset, init_keys, horizons, slot_ids)
    diff = (losses[:, 0] - losses[:, 1]) / (2.0 * sigma * sigma)
    weights = accum if settings.kind == "pes" else eps
    per_slot = jax.tree_util.tree_map(lambda w: w * _bcast(diff, w), weights)
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x.reshape(n, -1)), axis=1)
                                for x in jax.tree_util.tree_leaves(per_slot)]), axis=0)
    grad = jax.tree_util.tree_map(lambda g: jnp.sum(jnp.where(_bcast(finite, g), g, 0.0), axis=0) / n, per_slot)
    if settings.kind == "es":
        parts = jax.tree_util.tree_map(lambda x: jnp.stack([x[:, 0], x[:, 0]], axis=1), parts)
        accum = jax.tree_util.tree_map(jnp.zeros_like, accum)
    done = (parts.step[:, 0] >= parts.horizon[:, 0]) | jnp.any(parts.diverged, axis=1)
    slot_loss = jnp.mean(losses, axis=1)
    stats = {"meta_loss": jnp.mean(slot_loss), "slot_loss": slot_loss, "done": done,
             "clipped": jnp.sum(clipped), "nan_grads": jnp.sum(~finite), "active_steps": jnp.sum(counts)}
    return grad, EstimatorState(parts, accum), stats


@functools.lru_cache(maxsize=None)
def _jitted(fns: TaskFns, lopt, settings: EstimatorSettings, data_axes: tuple):
    fn = functools.partial(estimate, fns=fns, lopt=lopt, settings=settings, data_axes=dict(data_axes))
    return jax.jit(fn, donate_argnums=(1,))


_EXECUTABLES: dict = {}


def _signature(args) -> tuple:
    leaves, treedef = jax.tree_util.tree_flatten(args)
    return (treedef, tuple((jnp.shape(x), jnp.result_type(x).name) for x in leaves))


def compiled_estimator(fns: TaskFns, lopt, settings: EstimatorSettings, data_axes: dict, args: tuple):
    """The compiled estimator for these arguments and the seconds spent compiling it now (0 when cached)."""
    axes = tuple(sorted(data_axes.items()))
    jitted = _jitted(fns, lopt, settings, axes)
    sig = (id(jitted), _signature(args))
    exe = _EXECUTABLES.get(sig)
    if exe is not None:
        return exe, 0.0
    t0 = time.perf_counter()
    exe = jitted.lower(*args).compile()
    _EXECUTABLES[sig] = exe
    return exe, time.perf_counter() - t0


def run_estimator(theta, state: EstimatorState, data, data_axes: dict, reset, init_keys, horizons, key, *,
                  fns: TaskFns, lopt, settings: EstimatorSettings):
    """Compile (once per shape) and run :func:`estimate`; returns ``(grad, state, stats, compile_seconds)``.

    ``state`` is donated: do not use it after the call.
    """
    args = (theta, state, data, jnp.asarray(reset), jnp.asarray(init_keys), jnp.asarray(horizons, jnp.int32), key)
    exe, compile_s = compiled_estimator(fns, lopt, settings, data_axes, args)
    grad, state, stats = exe(*args)
    return grad, state, stats, compile_s
