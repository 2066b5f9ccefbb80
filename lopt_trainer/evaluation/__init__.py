"""Evaluation of a learned optimizer θ against the baselines (``taskgen lopt eval``).

Modules (one job each): :mod:`~.metrics` (improvement, AUC, speedup), :mod:`~.tasks` (choosing the seen/unseen
task set), :mod:`~.runs` (settings, work units, one vmapped unit), :mod:`~.store` (per-unit result files,
resume), :mod:`~.backend` (in process or Ray), :mod:`~.table` (baseline selection and the Arrow results table),
:mod:`~.summary`, :mod:`~.plots` (box plots), :mod:`~.runner` (the whole evaluation), :mod:`~.io` (files).

Python use::

    from lopt_trainer.evaluation import EvalSettings, evaluate_theta
    summary = evaluate_theta("theta.npz", "runs/eval1", n_tasks=20, settings=EvalSettings(steps=300))
"""

from __future__ import annotations

from lopt_trainer.evaluation.runner import run_evaluation
from lopt_trainer.evaluation.runs import EvalSettings
from lopt_trainer.evaluation.tasks import EvalTask, select_tasks


def evaluate_theta(theta_path, out_dir, *, suite=None, manifest=None, n_tasks: int = 100, task_seed: int = 0,
                   max_params: int | None = 20_000, max_flops: int | None = 5_000_000, filters=None,
                   settings: EvalSettings | None = None, workers: int = 0, resume: bool = False,
                   progress: bool = True) -> dict:
    """Load θ from ``theta_path`` (.npz or a meta-training run), choose the task set and run the evaluation.

    Returns the summary (also in ``out_dir/eval_summary.json``).
    """
    from lopt_trainer.evaluation.io import load_theta
    from lopt_trainer.evaluation.tasks import load_pool

    theta = load_theta(theta_path)
    tasks = select_tasks(load_pool(suite, manifest), n_tasks, task_seed, max_params=max_params,
                         max_flops=max_flops, filters=filters)
    if not tasks:
        raise ValueError("no task passes the filters")
    return run_evaluation(theta, tasks, out_dir, settings or EvalSettings(), workers=workers, resume=resume,
                          theta_path=theta_path, progress=progress)


__all__ = ["EvalSettings", "EvalTask", "evaluate_theta", "run_evaluation", "select_tasks"]
