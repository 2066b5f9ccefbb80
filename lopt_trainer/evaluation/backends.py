"""Where the units of an evaluation run: in this process (:class:`LocalBackend`) or as Ray tasks on a local (or
given) cluster (:class:`RayBackend`).

Both backends take ``(unit, settings, theta)`` items and yield ``(unit, records, timing)`` as units finish (Ray:
in completion order), so the caller can write each result as soon as it exists — an interrupted evaluation
loses at most the units in flight.

Meta-training's Ray pool (:mod:`lopt_trainer.meta.ray_pool`) drives *stateful* gradient actors in lock step;
evaluation runs are independent and stateless, so here they are plain Ray tasks scheduled by Ray (one CPU each).
The cluster is started the same way (loopback only, no dashboard, :mod:`lopt_trainer.common.ray_local`); see
the pool's module for the security notes on using an existing cluster.
"""

from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp

from lopt_trainer.common.ray_local import init_ray, local_ray_usable
from lopt_trainer.evaluation.compute import compute_unit
from lopt_trainer.evaluation.settings import EvalSettings, RunUnit
from taskgen import TaskSpec, build_task
from taskgen.jax_cache import enable_compilation_cache
from taskgen.registry import PLUGINS_ENV


class LocalBackend:
    """Runs units one after another in this process (compiled code is reused across tasks of equal shape).

    The most recently built task is kept, so the consecutive units of one task build it once.
    """

    def run(self, items, tasks=None):
        """Yield ``(unit, records, timing)`` for ``items`` = ``[(unit, settings, theta), ...]`` in order.

        ``tasks``: optional ``{task_id: Task}`` of already built tasks.
        """
        last = (None, None)
        for unit, settings, theta in items:
            task = (tasks or {}).get(unit.task_id)
            if task is None:
                if last[0] != unit.task_id:
                    last = (unit.task_id, build_task(TaskSpec.from_json(unit.spec_json)))
                task = last[1]
            records, timing = compute_unit(unit, settings, theta, task=task)
            yield unit, records, timing

    def close(self) -> None:
        """Nothing to release."""


def _remote_compute(unit_dict: dict, settings_dict: dict, theta):
    """Body of one Ray task: compute a unit from plain data; returns ``(records, timing)``."""
    enable_compilation_cache()
    if theta is not None:
        theta = jax.tree_util.tree_map(jnp.asarray, theta)
    return compute_unit(RunUnit.from_dict(unit_dict), EvalSettings.from_dict(settings_dict), theta)


class RayBackend:
    """``num_workers`` concurrent Ray tasks on a local cluster bound to 127.0.0.1 (or the cluster at ``address``).

    ``single_thread``: give each worker process one XLA thread (sensible when workers = cores on one machine).
    """

    def __init__(self, num_workers: int, address: str | None = None, single_thread: bool = True):
        import ray  # optional heavy dependency: imported only when a Ray backend is made

        self.ray = ray
        self.num_workers = max(1, int(num_workers))
        paths = [p for p in dict.fromkeys([os.getcwd(), *sys.path]) if p and os.path.isdir(p)]
        env = {"PYTHONPATH": os.pathsep.join(paths), "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
        if os.environ.get(PLUGINS_ENV):  # user families: the workers load them as this process did
            env[PLUGINS_ENV] = os.environ[PLUGINS_ENV]
        if single_thread and not address:
            env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        self._owns = not ray.is_initialized()
        if self._owns:
            init_ray(self.num_workers, address, env)
        self.remote = ray.remote(num_cpus=1, max_retries=1)(_remote_compute)

    def run(self, items, tasks=None):
        """Yield ``(unit, records, timing)`` in completion order, at most ``num_workers`` units in flight."""
        del tasks  # workers build their own tasks from the spec JSON
        ray = self.ray
        pending = list(items)
        theta_refs = {}
        in_flight = {}
        while pending or in_flight:
            while pending and len(in_flight) < self.num_workers:
                unit, settings, theta = pending.pop(0)
                ref_theta = None
                if theta is not None:
                    if id(theta) not in theta_refs:
                        theta_refs[id(theta)] = ray.put(jax.device_get(theta))
                    ref_theta = theta_refs[id(theta)]
                ref = self.remote.remote(unit.to_dict(), settings.to_dict(), ref_theta)
                in_flight[ref] = unit
            done, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in done:
                unit = in_flight.pop(ref)
                records, timing = ray.get(ref)
                yield unit, records, timing

    def close(self) -> None:
        """Shut down the local cluster this backend started."""
        if self._owns:
            self.ray.shutdown()


def make_backend(workers: int, address: str | None = None):
    """:class:`LocalBackend` for ``workers`` ≤ 0 (in process) or when a local Ray cluster cannot start (its
    session directory is unwritable: one warning, :func:`~lopt_trainer.common.ray_local.local_ray_usable`), else
    :class:`RayBackend`."""
    if workers and workers > 0 and local_ray_usable(address):
        return RayBackend(workers, address)
    return LocalBackend()
