"""Evaluation of a learned optimizer θ against the baselines (``taskgen lopt eval``, ``make quality``, the panel).

Modules (one job each), in the order :func:`evaluate_theta` uses them: :mod:`~.runner` (the whole evaluation:
θ and tasks in, the missing runs planned and run, the results written), :mod:`~.tasks` (choosing the seen/unseen
task set), :mod:`~.settings` (settings and work units), :mod:`~.compute` (one vmapped unit), :mod:`~.backends`
(in process or on Ray), :mod:`~.records` (where run records live: per-unit JSON files and resume, the baseline
cache), :mod:`~.scoring` (metrics, baseline selection and the Arrow results table, the summary), :mod:`~.plots`
(box plots). :mod:`~.panel` is the quality panel of meta-training, built on the same pipeline.

Python use::

    from lopt_trainer.evaluation import EvalSettings, evaluate_theta
    summary = evaluate_theta("theta.npz", "runs/eval1", n_tasks=20, settings=EvalSettings(steps=300))
"""

from __future__ import annotations

import importlib

_EXPORTS = {"EvalSettings": "settings", "EvalTask": "tasks", "evaluate_theta": "runner", "run_evaluation": "runner",
            "select_tasks": "tasks"}


def __getattr__(name: str):
    """The public names of :data:`__all__`, imported from their module on first use (this package imports
    nothing heavy until then)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


__all__ = ["EvalSettings", "EvalTask", "evaluate_theta", "run_evaluation", "select_tasks"]
