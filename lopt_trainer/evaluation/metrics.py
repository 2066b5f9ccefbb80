"""The per-task metrics of an evaluation: improvement (final and area under the curve) and speedup.

All losses are *normalised* losses (``task.normalizer``; lower is better, ~0 excellent). Definitions, per task:

* **Diverged runs count as the worst.** A run that diverged (NaN/Inf loss or parameters) gets, for its final
  loss and for every missing curve point, the task's *worst value*: the largest finite normalised loss seen at
  any curve point of any run on that task (so at least the loss at initialisation). See :func:`worst_value`.
* **Best known loss** ``b``: the lowest value of the measure (final loss, or AUC) over every run on the task —
  the learned optimizer, every trial of every baseline, every seed. See :func:`best_known`.
* **Improvement** of the learned optimizer ``L`` over a baseline ``B`` (per task and seed)::

      improvement = log(B − b + ε) − log(L − b + ε)          ε = :data:`EPS` (1e-3)

  i.e. the log-ratio of the two losses' excess over the best known loss. > 0: the learned optimizer got closer
  to the best known loss (by a factor ``exp(improvement)``); 0: a tie; < 0: the baseline did better. ε keeps the
  run that *is* the best known loss finite (a gap of 0 reads as ε) and makes differences below ~ε meaningless.
* **AUC**: the mean normalised loss over the evaluation points of the curve (trapezoid rule over the steps,
  divided by the number of steps), diverged points filled with the worst value. ``improvement_auc`` is the same
  log-ratio on AUCs, with ``b`` the best known AUC.
* **Speedup** of the learned optimizer over a baseline: ``target`` = the learned optimizer's final loss;
  ``reach_L`` / ``reach_B`` = the first curve step at which the learned optimizer / the baseline is at or below
  ``target``; ``speedup = reach_B / reach_L``. > 1: the baseline needs more steps than the learned optimizer to
  reach the learned optimizer's final loss; ``inf`` when the baseline never reaches it within the budget; NaN when
  the learned optimizer diverged. Resolution: the curve's evaluation spacing.
"""

from __future__ import annotations

import math

import numpy as np

EPS = 1e-3
"""ε of the improvement log-ratios, in normalised-loss units."""


def worst_value(curves) -> float:
    """The largest finite value over ``curves`` (any shape, NaN = diverged); 10.0 if nothing is finite."""
    arr = np.asarray(curves, dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    return float(finite.max()) if finite.size else 10.0


def fill_curve(curve, worst: float) -> np.ndarray:
    """``curve`` (float array) with every non-finite point replaced by ``worst``."""
    arr = np.asarray(curve, dtype=np.float64)
    return np.where(np.isfinite(arr), arr, worst)


def final_value(curve, diverged: bool, worst: float) -> float:
    """The final loss of a run: its last curve point, or ``worst`` if it diverged or that point is not finite."""
    arr = np.asarray(curve, dtype=np.float64)
    if diverged or arr.size == 0 or not np.isfinite(arr[-1]):
        return float(worst)
    return float(arr[-1])


def auc(steps, curve, worst: float) -> float:
    """Area under the (filled) curve divided by the number of steps: the run's mean normalised loss."""
    x = np.asarray(steps, dtype=np.float64)
    y = fill_curve(curve, worst)
    if x.size < 2 or x[-1] <= x[0]:
        return float(y[-1]) if y.size else float(worst)
    area = np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0
    return float(area / (x[-1] - x[0]))


def best_known(values) -> float:
    """The lowest finite value of ``values`` (NaN if none is finite)."""
    arr = np.asarray(values, dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    return float(finite.min()) if finite.size else math.nan


def improvement(lopt_value, baseline_value, best: float, eps: float = EPS):
    """``log(baseline − best + eps) − log(lopt − best + eps)`` (element-wise; > 0 means the learned optimizer
    is better). Values below ``best`` are clamped to it."""
    lo = np.maximum(np.asarray(lopt_value, np.float64) - best, 0.0)
    ba = np.maximum(np.asarray(baseline_value, np.float64) - best, 0.0)
    out = np.log(ba + eps) - np.log(lo + eps)
    return float(out) if np.ndim(out) == 0 else out


def reach_step(steps, curve, target: float) -> float:
    """The first step at which ``curve`` is ≤ ``target`` (NaN points never count); ``inf`` if never."""
    x = np.asarray(steps, dtype=np.float64)
    y = np.asarray(curve, dtype=np.float64)
    hit = np.flatnonzero(np.isfinite(y) & (y <= target))
    return float(x[hit[0]]) if hit.size else math.inf


def speedup(steps, lopt_curve, lopt_diverged: bool, baseline_curve) -> tuple[float, float]:
    """``(baseline reach step, speedup)`` of the learned optimizer over one baseline run (module docstring).

    The target is the learned optimizer's last curve point; NaN speedup if it diverged; ``inf`` if the baseline
    never reaches the target; a learned optimizer that reaches it at step 0 counts as reaching it at the first
    evaluation step after 0 (so the ratio stays finite).
    """
    y = np.asarray(lopt_curve, dtype=np.float64)
    if lopt_diverged or y.size == 0 or not np.isfinite(y[-1]):
        return math.nan, math.nan
    target = float(y[-1])
    b = reach_step(steps, baseline_curve, target)
    x = np.asarray(steps, dtype=np.float64)
    lo = max(reach_step(steps, y, target), float(x[1]) if x.size > 1 else 1.0)
    if math.isinf(b):
        return b, math.inf
    return b, max(b, float(x[1]) if x.size > 1 else 1.0) / lo


def summarize(values) -> dict:
    """``{"n", "median", "mean", "q25", "q75", "frac_positive"}`` of finite ``values`` (NaN fields if none)."""
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return {"n": 0, "median": math.nan, "mean": math.nan, "q25": math.nan, "q75": math.nan,
                "frac_positive": math.nan}
    return {"n": int(arr.size), "median": float(np.median(arr)), "mean": float(arr.mean()),
            "q25": float(np.quantile(arr, 0.25)), "q75": float(np.quantile(arr, 0.75)),
            "frac_positive": float(np.mean(arr > 0))}
