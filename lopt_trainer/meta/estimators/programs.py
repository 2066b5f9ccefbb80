"""Compiling and running an estimator call: its two programs, kept in a bounded cache, compiled ahead on request,
and the slots split over this process's devices."""

from __future__ import annotations

import functools

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from lopt_trainer.common.devices import row_sharding
from lopt_trainer.common.program_cache import ProgramCache, shape_signature, shapes_of
from lopt_trainer.meta.estimators.compute import draws, estimate_from_draws
from lopt_trainer.meta.estimators.settings import EstimatorSettings, EstimatorState
from lopt_trainer.meta.truncation import TaskFns

__all__ = ["MAX_PROGRAMS", "PROGRAMS", "slot_sharding", "place_slot_data", "estimator_ready", "prefetch_estimator",
           "run_estimator"]


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


def place_slot_data(data: dict, data_axes: dict, n: int) -> dict:
    """``data`` placed where an estimator call of ``n`` slots reads it (:func:`slot_sharding`): per-slot splits
    split over the devices, shared ones replicated; unchanged on one device. Placing it once per group spares every
    call the copy."""
    sharding = slot_sharding(n)
    if sharding is None:
        return data
    rep = NamedSharding(sharding.mesh, PartitionSpec())
    return {split: jax.device_put(v, sharding if data_axes[split] == 0 else rep) for split, v in data.items()}


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
    # Looked up by shapes alone (a program's placement is part of its key). A program that splits the slots over
    # devices gets its arguments moved where it wants them (a no-op for the slots' state it returned the step
    # before); on one device they are passed as they are, sparing the hot path a walk of every leaf.
    exe, est_s = PROGRAMS.get(est_key, make_estimate, shapes_of(args))
    compile_s += draw_s + est_s
    if est_key[-1] is not None:
        args = jax.device_put(args, exe.input_shardings[0])
    grad, state, stats = exe(*args)
    return grad, state, stats, compile_s
