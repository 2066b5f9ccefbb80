"""What an evaluation runs: its settings (:class:`EvalSettings`) and its units of work (:class:`RunUnit`).

A :class:`RunUnit` is one task × one optimizer (``lopt`` or a baseline) × a set of trials × a set of seeds, run
as ONE vmapped :func:`lopt_trainer.inner.loop.train_many` call (:mod:`.compute`). It yields one record per
(trial, seed) — the resume key of a run is ``(task_id, optimizer, trial, seed)``. A unit is plain data (JSON),
so local and Ray workers (:mod:`.backends`) compute the same thing from the same inputs.
"""

from __future__ import annotations

import dataclasses
import json

from lopt_trainer.inner import baselines
from lopt_trainer.inner.names import EVAL_BASELINES, LOPT


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
    [all of :data:`~lopt_trainer.inner.names.EVAL_BASELINES`] which baselines to run.
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
    baselines: tuple = EVAL_BASELINES

    def __post_init__(self):
        object.__setattr__(self, "trials", tuple(sorted({int(n) for n in self.trials})))
        unknown = sorted(set(self.baselines) - set(EVAL_BASELINES))
        if unknown:
            raise ValueError(f"unknown baselines {unknown}; choose from {EVAL_BASELINES}")
        object.__setattr__(self, "baselines", tuple(b for b in EVAL_BASELINES if b in set(self.baselines)))
        if not self.baselines:
            raise ValueError(f"need at least one baseline of {EVAL_BASELINES}")
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
        return cls(**{**d, "trials": tuple(d["trials"]), "baselines": tuple(d.get("baselines", EVAL_BASELINES))})


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
