"""One estimator's share of an outer step, as plain data (:class:`Work`), and the function that computes it.

The learner plans every :class:`Work` (group, slot tasks, resets, horizons); :func:`compute_work` turns one into
``(grad, new estimator state, stats, compile seconds)``. The in-process trainer and the Ray workers call the same
function with the same inputs, so both give the same numbers for the same seed.
"""

from __future__ import annotations

import dataclasses
import os

import jax
import numpy as np

from lopt_trainer.meta.config import WorkerSettings
from lopt_trainer.meta.estimators import (EstimatorSettings, estimator_ready, estimator_state_shapes,
                                         init_estimator_state, place_slot_data, prefetch_estimator, run_estimator)
from lopt_trainer.meta.task_sampler import TaskSampler, slot_data, slot_data_shapes
from lopt_trainer.meta.truncation import TaskFns
from lopt_trainer.optimizer.protocol import resolve_lopt
from taskgen.registry import PLUGINS_ENV, env_plugins, load_plugins


@dataclasses.dataclass
class Work:
    """Inputs of one estimator for one outer step (besides θ and its state)."""

    index: int
    step: int
    group: str
    anchor: str
    task_ids: list
    reset: np.ndarray
    horizons: np.ndarray


@dataclasses.dataclass
class WorkerContext:
    """What computing a :class:`Work` needs: the sampler (to build tasks), the optimizer, settings and seed."""

    sampler: TaskSampler
    lopt: object
    settings: EstimatorSettings
    seed: int
    _data_cache: dict = dataclasses.field(default_factory=dict)

    @property
    def splits(self) -> tuple[str, ...]:
        """The data splits the estimator reads."""
        return self.settings.unroll.splits_needed(self.lopt.observe_validation is not None)

    def fns(self, task_id: str) -> TaskFns:
        """The shared functions of a task's group."""
        return TaskFns.of(self.sampler.task(task_id))

    def data(self, index: int, task_ids) -> tuple[dict, dict]:
        """Slot data of estimator ``index`` (cached while its slot tasks stay the same)."""
        key = tuple(task_ids)
        hit = self._data_cache.get(index)
        if hit is not None and hit[0] == key:
            return hit[1], hit[2]
        data, axes = slot_data([self.sampler.task(t) for t in task_ids], self.splits)
        data = place_slot_data(data, axes, len(task_ids))
        self._data_cache[index] = (key, data, axes)
        return data, axes

    def data_shapes(self, task_ids) -> tuple[dict, dict]:
        """``(data shapes, axes)`` that :meth:`data` would give for these slot tasks, without copying arrays."""
        return slot_data_shapes([self.sampler.task(t) for t in task_ids], self.splits)

    def template(self, theta, anchor: str, n: int):
        """An all-zeros estimator state of ``n`` slots for the group of ``anchor``."""
        return init_estimator_state(theta, self.fns(anchor), self.lopt, n)


def import_plugins(modules) -> None:
    """Load the run's plugin modules (``MODULE`` or ``MODULE:FAMILY``, see :mod:`taskgen.registry`; each only once),
    and name them in ``TASKGEN_PLUGINS`` so that worker processes load them too. A module that fails is one
    :class:`taskgen.registry.PluginError` naming it and the ``plugins`` setting."""
    if modules:
        load_plugins(modules, "the plugins setting")
        merged = dict.fromkeys([*env_plugins(), *modules])
        os.environ[PLUGINS_ENV] = ",".join(merged)


def make_context(worker: WorkerSettings, specs) -> WorkerContext:
    """A :class:`WorkerContext` for a run's worker settings and its (already filtered) training specs; imports
    the settings' plugins first. ``ValueError`` when ``specs`` is empty."""
    import_plugins(worker.plugins)
    return WorkerContext(TaskSampler(specs), resolve_lopt(worker.lopt), worker.estimator, int(worker.seed))


def work_keys(seed: int, step: int, index: int, n: int, redraw: int = 0):
    """``(init_keys (n, 2), estimator key)`` of one work item (derived from seed, step and estimator index).

    ``redraw`` > 0 gives another estimator key (other perturbations and batches) with the same init keys: an
    independent estimate of the same step (a gradient-quality measurement)."""
    base = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed), step), index)
    k_init, k_est = jax.random.split(base)
    if redraw:
        k_est = jax.random.fold_in(k_est, redraw)
    return jax.random.split(k_init, n), k_est


def compute_work(ctx: WorkerContext, theta, state, work: Work, redraw: int = 0):
    """Run one estimator call; returns ``(grad, new_state, stats, compile_seconds)`` (``state`` is consumed).
    ``redraw``: see :func:`work_keys`."""
    data, axes = ctx.data(work.index, work.task_ids)
    init_keys, key = work_keys(ctx.seed, work.step, work.index, len(work.task_ids), redraw)
    state = jax.device_put(state)
    return run_estimator(theta, state, data, axes, np.asarray(work.reset, bool), init_keys,
                         np.asarray(work.horizons, np.int32), key, fns=ctx.fns(work.anchor), lopt=ctx.lopt,
                         settings=ctx.settings)


def work_ready(ctx: WorkerContext, theta, state, work: Work) -> bool:
    """Whether :func:`compute_work` of ``work`` would find its programs compiled (it would not wait for a
    compile)."""
    data, axes = ctx.data_shapes(work.task_ids)
    return estimator_ready(theta, state, data, axes, len(work.task_ids), fns=ctx.fns(work.anchor), lopt=ctx.lopt,
                           settings=ctx.settings)


def prefetch_work(ctx: WorkerContext, theta, state, work: Work) -> None:
    """Queue the compiles :func:`compute_work` of ``work`` needs on the background compile thread (no-op when
    compiled or queued). ``state``: the estimator's state, or None for a group not drawn yet (the shapes of its
    :meth:`WorkerContext.template`, no array made)."""
    if state is None:
        state = estimator_state_shapes(theta, ctx.fns(work.anchor), ctx.lopt, len(work.task_ids))
    data, axes = ctx.data_shapes(work.task_ids)
    prefetch_estimator(theta, state, data, axes, len(work.task_ids), fns=ctx.fns(work.anchor), lopt=ctx.lopt,
                       settings=ctx.settings)
