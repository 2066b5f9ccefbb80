"""Choosing baseline hyperparameters from a results table: global (one setting for all tasks) and per task.

A results table is an array ``[n_tasks, n_trials]`` of final normalised losses (lower is better) where NaN or
±Inf marks a diverged run. Diverged runs count as the worst outcome (see :func:`fill_diverged`). All functions
are pure numpy.
"""

from __future__ import annotations

import numpy as np


def fill_diverged(table, value: float | None = None) -> np.ndarray:
    """Copy of ``table`` ([task, trial]) with every non-finite entry replaced.

    ``value=None`` (default) uses, per task, the worst (largest) finite loss of any trial on that task, so a
    diverged trial ties with the worst trial that finished; a task on which every trial diverged gets 0 for all
    (it cannot change a ranking). Pass a number to substitute it instead. Returns a float64 array.
    """
    t = np.array(table, dtype=np.float64, copy=True)
    if t.ndim != 2:
        raise ValueError(f"expected a [task, trial] table, got shape {t.shape}")
    bad = ~np.isfinite(t)
    if value is not None:
        t[bad] = value
        return t
    finite = np.where(bad, -np.inf, t)
    worst = finite.max(axis=1, keepdims=True)
    worst = np.where(np.isfinite(worst), worst, 0.0)
    return np.where(bad, np.broadcast_to(worst, t.shape), t)


def select_global(table, n_trials: int | None = None, value: float | None = None) -> tuple[int, float]:
    """The one trial (among the first ``n_trials``, default all) with the lowest mean loss over all tasks.

    Diverged entries are filled by :func:`fill_diverged` (``value``) before averaging; ties go to the lower
    index. Returns ``(trial index, its mean filled loss)``.
    """
    t = np.asarray(table, dtype=np.float64)
    t = t[:, : (t.shape[1] if n_trials is None else n_trials)]
    if t.shape[1] == 0:
        raise ValueError("no trials to select from")
    means = fill_diverged(t, value).mean(axis=0)
    best = int(np.argmin(means))
    return best, float(means[best])


def select_per_task(table, n_trials: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per task, the best of the first ``n_trials`` trials (default all).

    Diverged entries never win unless every trial on that task diverged, in which case the index is 0 and the
    value NaN. Returns ``(indices [n_tasks] int, best losses [n_tasks] float64)``.
    """
    t = np.asarray(table, dtype=np.float64)
    if t.ndim != 2:
        raise ValueError(f"expected a [task, trial] table, got shape {t.shape}")
    t = t[:, : (t.shape[1] if n_trials is None else n_trials)]
    if t.shape[1] == 0:
        raise ValueError("no trials to select from")
    ranked = np.where(np.isfinite(t), t, np.inf)
    idx = np.argmin(ranked, axis=1)
    best = ranked[np.arange(t.shape[0]), idx]
    return idx.astype(np.int64), np.where(np.isfinite(best), best, np.nan)


def apply_global(table, trial: int) -> np.ndarray:
    """The losses ``[n_tasks]`` every task gets under the single global ``trial`` (NaN where it diverged)."""
    col = np.asarray(table, dtype=np.float64)[:, trial]
    return np.where(np.isfinite(col), col, np.nan)
