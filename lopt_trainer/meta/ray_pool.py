"""Gradient workers as Ray actors: :class:`RayGradientPool` (Ray is imported only here and only when used).

The learner plans every estimator's :class:`~lopt_trainer.meta.work.Work`, ships θ (once per step, through the
object store) and each estimator's state to a worker (round robin), and averages what comes back — synchronous
steps, so a Ray run gives the same numbers as an in-process run with the same seed. Workers rebuild tasks from
the spec JSON they got at start-up and keep their compiled estimators between steps.

A worker that dies (``RayActorError``, e.g. its process was killed) is replaced by a fresh actor; the step
completes with the gradients that did arrive (``estimators_ok`` in the metrics says how many) and the failed
estimators keep their previous state.

Network and security: without ``address`` a new *local* cluster is started (whatever ``RAY_ADDRESS`` says) with
the dashboard off and every service bound to the loopback interface (:func:`lopt_trainer.common.ray_local.init_ray`).
Ray itself has no authentication by default (anyone who can reach a cluster's ports can run code on it), and a
cluster started with ``ray start --head`` listens on all interfaces unless given ``--node-ip-address`` (and, for
the client server, ``--ray-client-server-port`` behind a firewall). To use an existing cluster pass
``address="ray://HOST:10001"`` (Ray client) or ``"auto"`` on a cluster node; keep such clusters on a private
network or behind an SSH tunnel, and enable Ray's token authentication where your Ray version offers it.
"""

from __future__ import annotations

import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

from lopt_trainer.common.ray_local import init_ray
from lopt_trainer.meta.config import WorkerSettings
from lopt_trainer.meta.work import Work, compute_work, make_context
from taskgen import TaskSpec
from taskgen.jax_cache import enable_compilation_cache
from taskgen.registry import PLUGINS_ENV


class GradientWorker:
    """One gradient worker (wrapped with ``ray.remote`` by :class:`RayGradientPool`), made from the run's
    :class:`~lopt_trainer.meta.config.WorkerSettings` as JSON and the training specs' JSON.

    ``core``: pin the process to this CPU (``os.sched_setaffinity``) before JAX starts its threads (its CPU
    backend starts them at the first computation, not at import).
    """

    def __init__(self, worker_json: str, spec_jsons: list, core: int | None = None):
        if core is not None and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {core})
        worker = WorkerSettings.from_dict(json.loads(worker_json))
        if worker.compilation_cache != "":
            enable_compilation_cache(worker.compilation_cache or None)
        self.ctx = make_context(worker, [TaskSpec.from_json(s) for s in spec_jsons])

    def compute(self, theta, work: dict, state):
        """``(grad, state, stats, compile_seconds)`` of one work item, as NumPy trees."""
        theta = jax.tree_util.tree_map(jnp.asarray, theta)
        out = compute_work(self.ctx, theta, state, Work(**work))
        return jax.device_get(out)

    def pid(self) -> int:
        """The worker's process id."""
        return os.getpid()


def _work_dict(work) -> dict:
    return {"index": work.index, "step": work.step, "group": work.group, "anchor": work.anchor,
            "task_ids": list(work.task_ids), "reset": np.asarray(work.reset), "horizons": np.asarray(work.horizons)}


class RayGradientPool:
    """``num_workers`` gradient actors on a local cluster (default) or the cluster at ``address``, each made from
    ``worker`` (the run's :class:`~lopt_trainer.meta.config.WorkerSettings`) and the training ``specs``.

    ``pin``: pin worker ``i`` to core ``i mod cores`` and give each one XLA thread (local clusters).
    """

    def __init__(self, worker: WorkerSettings, specs, num_workers: int, address: str | None = None,
                 pin: bool = False):
        import ray  # optional heavy dependency: imported only when a pool is made

        self.ray = ray
        self.worker_json = json.dumps(worker.to_dict())
        self.spec_jsons = [s.to_json() for s in specs]
        self.pin = pin
        paths = [p for p in dict.fromkeys([os.getcwd(), *sys.path]) if p and os.path.isdir(p)]
        env = {"PYTHONPATH": os.pathsep.join(paths)}
        if os.environ.get(PLUGINS_ENV):  # user families: the workers load them as this process did
            env[PLUGINS_ENV] = os.environ[PLUGINS_ENV]
        if pin:
            env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        if not ray.is_initialized():
            init_ray(num_workers, address, env)
            self._owns_ray = True
        else:
            self._owns_ray = False
        self.remote_cls = ray.remote(num_cpus=1, max_restarts=0)(GradientWorker)
        self.workers = [self._spawn(i) for i in range(num_workers)]
        self.replaced = 0

    def _spawn(self, i: int):
        core = i % (os.cpu_count() or 1) if self.pin else None
        return self.remote_cls.remote(self.worker_json, self.spec_jsons, core)

    def compute(self, theta, items):
        """Results for ``[(work, state), ...]`` in order; ``None`` for items whose worker died (replaced)."""
        ray = self.ray
        theta_ref = ray.put(jax.device_get(theta))
        refs = []
        for k, (work, state) in enumerate(items):
            w = k % len(self.workers)
            refs.append((w, self.workers[w].compute.remote(theta_ref, _work_dict(work), jax.device_get(state))))
        out, dead = [], set()
        for w, ref in refs:
            try:
                out.append(ray.get(ref))
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError):
                out.append(None)
                dead.add(w)
        for w in sorted(dead):
            self.workers[w] = self._spawn(w)
            self.replaced += 1
        return out

    def kill_worker(self, i: int) -> None:
        """Kill worker ``i`` (for tests of the replacement path)."""
        self.ray.kill(self.workers[i], no_restart=True)

    def close(self) -> None:
        """Stop the actors (and the local cluster this backend started)."""
        for w in self.workers:
            try:
                self.ray.kill(w)
            except Exception:  # already gone
                pass
        if self._owns_ray:
            self.ray.shutdown()
