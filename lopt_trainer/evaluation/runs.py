"""The independent training runs of an evaluation: settings, work units, computing one unit, and where units run.

A :class:`RunUnit` is one task × one optimizer (``lopt`` or a baseline) × a set of trials × a set of seeds, run
as ONE vmapped :func:`lopt_trainer.inner_loop.train_many` call. It yields one :func:`record <compute_unit>` per
(trial, seed) — the resume key of a run is ``(task_id, optimizer, trial, seed)``. A unit is plain data (JSON),
so local and Ray workers compute the same thing from the same inputs.

Units run in this process (:class:`LocalBackend`) or as Ray tasks on a local (or given) cluster
(:class:`RayBackend`). Both backends take ``(unit, settings, theta)`` items and yield ``(unit, records, timing)``
as units finish (Ray: in completion order), so the caller can write each result as soon as it exists — an
interrupted evaluation loses at most the units in flight.

The meta-training Ray backend (:mod:`lopt_trainer.meta.ray_backend`) drives *stateful* gradient actors in lock
step; evaluation runs are independent and stateless, so here they are plain Ray tasks scheduled by Ray (one CPU
each). The cluster is started the same way (loopback only, no dashboard); see that module for the security
notes on using an existing cluster.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

BASELINES = ("adamlr", "adam8p", "opt_list")
"""Baselines an evaluation runs (see :mod:`lopt_trainer.baselines`)."""

LOPT = "lopt"


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """Settings of an evaluation (defaults in brackets).

    ``steps`` [1000] inner steps per run; ``seeds`` [2] seeds 0…n−1 per (task, optimizer, trial);
    ``trials`` [(1, 10)] per-task trial budgets N of Adam8p and opt_list (their first N trials; the largest N is
    the number of trials run, and the global setting is chosen among them); ``adamlr_trials`` [14] size of the
    AdamLR grid (1e-7 … 10^-0.5; per-task AdamLR always uses the whole grid); ``trial_seed`` [0] seed of the
    Adam8p random search; ``eval_every`` [None = steps/20] curve spacing; ``eval_batches`` [4];
    ``valid_every`` [10] validation feed of the learned optimizer; ``select_split`` ["inner_valid"] split whose
    final loss picks baseline trials; ``report_split`` ["test"] split whose curves are reported; ``baselines``
    [all of :data:`BASELINES`] which baselines to run.
    """

    steps: int = 1000
    seeds: int = 2
    trials: tuple = (1, 10)
    adamlr_trials: int = 14
    trial_seed: int = 0
    eval_every: int | None = None
    eval_batches: int = 4
    valid_every: int = 10
    select_split: str = "inner_valid"
    report_split: str = "test"
    baselines: tuple = BASELINES

    def __post_init__(self):
        object.__setattr__(self, "trials", tuple(sorted({int(n) for n in self.trials})))
        unknown = sorted(set(self.baselines) - set(BASELINES))
        if unknown:
            raise ValueError(f"unknown baselines {unknown}; choose from {BASELINES}")
        object.__setattr__(self, "baselines", tuple(b for b in BASELINES if b in set(self.baselines)))
        if not self.baselines:
            raise ValueError(f"need at least one baseline of {BASELINES}")
        if not self.trials or self.trials[0] < 1:
            raise ValueError(f"trial budgets must be >= 1, got {self.trials}")
        if self.steps < 1 or self.seeds < 1 or self.adamlr_trials < 1:
            raise ValueError("steps, seeds and adamlr_trials must be >= 1")

    @property
    def max_trials(self) -> int:
        """Trials run for Adam8p and opt_list (the largest budget)."""
        return max(self.trials)

    def seed_list(self) -> list[int]:
        """The seeds 0…n−1."""
        return list(range(int(self.seeds)))

    def trial_hparams(self, optimizer: str) -> list:
        """The hyperparameter dicts of every trial run for ``optimizer`` (``[None]`` for ``lopt``)."""
        from lopt_trainer import baselines

        if optimizer == LOPT:
            return [None]
        if optimizer == "adamlr":
            return baselines.trial_grid("adamlr", self.adamlr_trials)
        if optimizer == "adam8p":
            return baselines.trial_grid("adam8p", self.max_trials, seed=self.trial_seed)
        if optimizer == "opt_list":
            return baselines.trial_grid("opt_list", self.max_trials)
        raise ValueError(f"unknown optimizer {optimizer!r}")

    def run_key(self, optimizer: str, theta_digest: str | None = None) -> str:
        """A string that must match for a stored run to be reused (loop settings; θ's digest for ``lopt``)."""
        d = {"steps": self.steps, "eval_every": self.eval_every, "eval_batches": self.eval_batches,
             "valid_every": self.valid_every, "splits": [self.select_split, self.report_split]}
        if optimizer == LOPT:
            d["theta"] = theta_digest
        return json.dumps(d, sort_keys=True)

    def to_dict(self) -> dict:
        """JSON-able settings."""
        d = dataclasses.asdict(self)
        d["trials"] = list(self.trials)
        d["baselines"] = list(self.baselines)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "EvalSettings":
        """Inverse of :meth:`to_dict`."""
        return cls(**{**d, "trials": tuple(d["trials"]), "baselines": tuple(d.get("baselines", BASELINES))})


@dataclasses.dataclass(frozen=True)
class RunUnit:
    """One vmapped call: ``optimizer`` on task ``spec_json`` for ``trials`` × ``seeds`` (index lists)."""

    task_id: str
    spec_json: str
    optimizer: str
    trials: tuple
    seeds: tuple

    def to_dict(self) -> dict:
        """JSON-able form (for Ray)."""
        return {"task_id": self.task_id, "spec_json": self.spec_json, "optimizer": self.optimizer,
                "trials": list(self.trials), "seeds": list(self.seeds)}

    @classmethod
    def from_dict(cls, d: dict) -> "RunUnit":
        """Inverse of :meth:`to_dict`."""
        return cls(d["task_id"], d["spec_json"], d["optimizer"], tuple(d["trials"]), tuple(d["seeds"]))


def _curve(arr):
    import numpy as np

    return [float(x) if np.isfinite(x) else None for x in np.asarray(arr, np.float64)]


def compute_unit(unit: RunUnit, settings: EvalSettings, theta=None, task=None) -> tuple[list[dict], dict]:
    """Run ``unit``; returns ``(records, timing)``.

    Each record: ``task_id``, ``optimizer``, ``trial``, ``seed``, ``hparams`` (the trial's dict, None for lopt),
    ``steps`` (curve steps), ``select_curve`` / ``report_curve`` (normalised losses of the two splits, None after
    divergence), ``diverged``, ``diverged_at``. ``timing``: ``wall_s``, ``compile_s``. ``theta`` is needed for
    ``lopt`` units; ``task`` (already built) saves building it again.
    """
    from lopt_trainer import baselines, inner_loop
    from taskgen import TaskSpec, build_task

    if task is None:
        task = build_task(TaskSpec.from_json(unit.spec_json))
    all_hp = settings.trial_hparams(unit.optimizer)
    seeds = list(unit.seeds)
    kw = {"eval_every": settings.eval_every, "eval_batches": settings.eval_batches,
          "valid_every": settings.valid_every, "name": unit.optimizer}
    if unit.optimizer == LOPT:
        from lopt_trainer.optax_api import optax_lopt

        if theta is None:
            raise ValueError("a lopt unit needs theta")
        res = inner_loop.train_many(task, optax_lopt, [theta], seeds, settings.steps, **kw)
        trials, hps = [0], [None]
    else:
        trials = list(unit.trials)
        hps = [all_hp[i] for i in trials]
        factory = baselines.optimizer_factory(unit.optimizer, settings.steps)
        res = inner_loop.train_many(task, factory, hps, seeds, settings.steps, **kw)
    records = []
    for i, (trial, hp) in enumerate(zip(trials, hps)):
        for j, seed in enumerate(seeds):
            records.append({
                "task_id": unit.task_id, "optimizer": unit.optimizer, "trial": int(trial), "seed": int(seed),
                "hparams": hp, "steps": [int(s) for s in res.steps],
                "select_curve": _curve(res.normalized[settings.select_split][i, j]),
                "report_curve": _curve(res.normalized[settings.report_split][i, j]),
                "diverged": bool(res.diverged[i, j]), "diverged_at": int(res.diverged_at[i, j]),
            })
    return records, {"wall_s": float(res.wall_time), "compile_s": float(res.compile_time)}


# ------------------------------------------------------------------------------------ where units run


class LocalBackend:
    """Runs units one after another in this process (compiled code is reused across tasks of equal shape).

    The most recently built task is kept, so the consecutive units of one task build it once.
    """

    def run(self, items, tasks=None):
        """Yield ``(unit, records, timing)`` for ``items`` = ``[(unit, settings, theta), ...]`` in order.

        ``tasks``: optional ``{task_id: Task}`` of already built tasks.
        """
        from taskgen import TaskSpec, build_task

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
    from taskgen.jax_cache import enable_compilation_cache

    enable_compilation_cache()
    if theta is not None:
        import jax
        import jax.numpy as jnp

        theta = jax.tree_util.tree_map(jnp.asarray, theta)
    return compute_unit(RunUnit.from_dict(unit_dict), EvalSettings.from_dict(settings_dict), theta)


class RayBackend:
    """``num_workers`` concurrent Ray tasks on a local cluster bound to 127.0.0.1 (or the cluster at ``address``).

    ``single_thread``: give each worker process one XLA thread (sensible when workers = cores on one machine).
    """

    def __init__(self, num_workers: int, address: str | None = None, single_thread: bool = True):
        import ray

        self.ray = ray
        self.num_workers = max(1, int(num_workers))
        paths = [p for p in dict.fromkeys([os.getcwd(), *sys.path]) if p and os.path.isdir(p)]
        env = {"PYTHONPATH": os.pathsep.join(paths), "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
        if single_thread and not address:
            env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        self._owns = not ray.is_initialized()
        if self._owns:
            from lopt_trainer.ray_local import init_ray

            init_ray(self.num_workers, address, env)
        self.remote = ray.remote(num_cpus=1, max_retries=1)(_remote_compute)

    def run(self, items, tasks=None):
        """Yield ``(unit, records, timing)`` in completion order, at most ``num_workers`` units in flight."""
        import jax

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
    """:class:`LocalBackend` for ``workers`` ≤ 0 (in process), else :class:`RayBackend`."""
    if workers and workers > 0:
        return RayBackend(workers, address)
    return LocalBackend()
