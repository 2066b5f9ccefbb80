"""The independent training runs of an evaluation: settings, work units, and computing one unit.

A :class:`RunUnit` is one task × one optimizer (``lopt`` or a baseline) × a set of trials × a set of seeds, run
as ONE vmapped :func:`lopt_trainer.inner_loop.train_many` call. It yields one :func:`record <compute_unit>` per
(trial, seed) — the resume key of a run is ``(task_id, optimizer, trial, seed)``. A unit is plain data (JSON),
so local and Ray workers compute the same thing from the same inputs.
"""

from __future__ import annotations

import dataclasses
import json

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
