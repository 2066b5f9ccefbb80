"""Computing one :class:`~.settings.RunUnit` of an evaluation: a vmapped inner-loop run, turned into records."""

from __future__ import annotations

import numpy as np

from lopt_trainer.evaluation.settings import LOPT, EvalSettings, RunUnit
from lopt_trainer.inner import baselines, loop
from lopt_trainer.optimizer.optax_api import optax_lopt
from taskgen import TaskSpec, build_task


def _curve(arr):
    return [float(x) if np.isfinite(x) else None for x in np.asarray(arr, np.float64)]


def compute_unit(unit: RunUnit, settings: EvalSettings, theta=None, task=None) -> tuple[list[dict], dict]:
    """Run ``unit``; returns ``(records, timing)``.

    Each record: ``task_id``, ``optimizer``, ``trial``, ``seed``, ``hparams`` (the trial's dict, None for lopt),
    ``steps`` (curve steps), ``select_curve`` / ``report_curve`` (normalised losses of the two splits, None after
    divergence), ``diverged``, ``diverged_at``. ``timing``: ``wall_s``, ``compile_s``. ``theta`` is needed for
    ``lopt`` units; ``task`` (already built) saves building it again.
    """
    if task is None:
        task = build_task(TaskSpec.from_json(unit.spec_json))
    all_hp = settings.trial_hparams(unit.optimizer)
    seeds = list(unit.seeds)
    kw = {"eval_every": settings.eval_every, "eval_batches": settings.eval_batches,
          "valid_every": settings.valid_every, "name": unit.optimizer}
    if unit.optimizer == LOPT:
        if theta is None:
            raise ValueError("a lopt unit needs theta")
        res = loop.train_many(task, optax_lopt, [theta], seeds, settings.steps, **kw)
        trials, hps = [0], [None]
    else:
        trials = list(unit.trials)
        hps = [all_hp[i] for i in trials]
        factory = baselines.optimizer_factory(unit.optimizer, settings.steps)
        res = loop.train_many(task, factory, hps, seeds, settings.steps, **kw)
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
