"""The yardstick's numbers: the normalized loss of Metz et al. 2020, summaries with intervals, wins / ties / losses.

Per task and seed, a run's final loss ``L`` is normalized by the loss at initialisation ``L0`` and the best
final loss of the per-task tuned AdamLR grid ``L*`` (the lowest seed-mean final loss over the grid), as in
Metz et al. 2020, "Tasks, stability, architecture, and compute" (arXiv 2009.11243, §3.2)::

    n = (L − L*) / (L0 − L*)           0: as good as the best AdamLR;  1: no better than at initialisation

and clipped to ``[CLIP_LOW, CLIP_HIGH]`` (a diverged or non-finite run counts as ``CLIP_HIGH``) so that one
divergence, or one task whose ``L0 − L*`` is tiny, cannot dominate a mean. The mean-over-curve loss is normalized
the same way with ``L*`` the best seed-mean curve mean of the grid. Lower is better throughout.

Over tasks (seeds averaged first), a summary gives the mean, the median and the interquartile mean (the mean of
the middle 50 %, Agarwal et al. 2021, "Deep RL at the edge of the statistical precipice") with 95 % bootstrap
intervals; the bootstrap resamples tasks within each family (the sets are stratified by family, and so are the
resamples). Against a baseline, a task is a win, a tie or a loss by the difference ``Δ`` of the seed means: a
tie when ``|Δ| ≤ 2·SE + TIE_FLOOR``, with ``SE = sqrt(s_a²/k_a + s_b²/k_b)`` from the seed-to-seed sample
standard deviations ``s`` of the two (``k`` seeds each): the two-sample band the seed noise alone would fill.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["CLIP_LOW", "CLIP_HIGH", "TIE_FLOOR", "normalized_loss", "best_grid_loss", "best_trials", "iqm", "bootstrap_summary",
           "paired_difference", "win_tie_loss", "direction"]

CLIP_LOW, CLIP_HIGH = -1.0, 2.0
"""Bounds of a run's normalized loss: below ``CLIP_LOW`` a task's ``L0 − L*`` was tiny; ``CLIP_HIGH`` is twice as
far from ``L*`` as the initial loss, the value of a diverged run."""
TIE_FLOOR = 1e-3
"""The smallest difference of normalized losses that counts as a win or a loss (seeds that agree exactly)."""
DENOM_FLOOR = 1e-9


def normalized_loss(loss, init_loss, best_loss, *, low: float = CLIP_LOW, high: float = CLIP_HIGH):
    """``clip((L − L*) / (L0 − L*), low, high)`` element-wise; non-finite ``L`` gives ``high``.

    Args:
      loss: final (or curve-mean) losses ``L``, any shape.
      init_loss: the losses at initialisation ``L0``, broadcastable to ``loss``.
      best_loss: the best baseline loss ``L*``, broadcastable to ``loss``.
      low: the lower clip.
      high: the upper clip, also the value of a non-finite ``loss``.

    Returns:
      The normalized losses, a float64 array of ``loss``'s shape (a float for scalar input).
    """
    loss = np.asarray(loss, np.float64)
    gap = np.maximum(np.asarray(init_loss, np.float64) - np.asarray(best_loss, np.float64), DENOM_FLOOR)
    n = (loss - np.asarray(best_loss, np.float64)) / gap
    n = np.where(np.isfinite(n), np.clip(n, low, high), high)
    return float(n) if np.ndim(n) == 0 else n


def best_grid_loss(grid_losses) -> np.ndarray:
    """``L*`` per task: the lowest seed-mean loss over the grid's trials.

    Args:
      grid_losses: ``[tasks, trials, seeds]`` losses of the grid; NaN for a diverged run.

    Returns:
      ``[tasks]``: the minimum over trials of the mean over seeds (trials with a diverged seed excluded); NaN
      where every trial diverged.
    """
    arr = np.asarray(grid_losses, np.float64)
    with np.errstate(invalid="ignore"):
        means = arr.mean(axis=2)  # NaN when any seed diverged
    means = np.where(np.isfinite(means), means, np.inf)
    best = means.min(axis=1)
    return np.where(np.isfinite(best), best, np.nan)


def best_trials(grid_losses) -> np.ndarray:
    """Per task, the grid trial with the lowest seed-mean loss (trials with a diverged seed never chosen).

    Args:
      grid_losses: ``[tasks, trials, seeds]`` losses (e.g. the final inner-valid loss); NaN for a diverged run.

    Returns:
      ``[tasks]`` trial indices (0 where every trial diverged).
    """
    with np.errstate(invalid="ignore"):
        means = np.asarray(grid_losses, np.float64).mean(axis=2)
    return np.argmin(np.where(np.isfinite(means), means, np.inf), axis=1)


def iqm(values) -> float:
    """The interquartile mean: the mean of the values left after dropping ``floor(n/4)`` at each end."""
    x = np.sort(np.asarray(values, np.float64).ravel())
    if x.size == 0:
        return math.nan
    cut = x.size // 4
    return float(x[cut:x.size - cut].mean())


_STATS = {"mean": np.mean, "median": np.median, "iqm": iqm}


def _strata_indices(strata, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``[n_boot, n]`` resample indices that resample within each stratum."""
    strata = np.asarray(strata)
    n = strata.size
    idx = np.empty((n_boot, n), np.int64)
    for value in np.unique(strata):
        where = np.flatnonzero(strata == value)
        idx[:, where] = where[rng.integers(0, where.size, size=(n_boot, where.size))]
    return idx


def bootstrap_summary(values, strata=None, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict:
    """Mean, median and IQM of ``values`` (one per task) with percentile-bootstrap intervals.

    Args:
      values: per-task values, ``[tasks]``.
      strata: per-task stratum labels (the family), ``[tasks]``; None resamples all tasks together.
      n_boot: bootstrap resamples.
      level: the intervals' coverage.
      seed: the resampling seed.

    Returns:
      ``{"tasks": n, "mean": {"value", "low", "high"}, "median": {…}, "iqm": {…}}`` (NaN figures for no task).
    """
    x = np.asarray(values, np.float64).ravel()
    out = {"tasks": int(x.size)}
    if x.size == 0:
        return {**out, **{k: {"value": math.nan, "low": math.nan, "high": math.nan} for k in _STATS}}
    strata = np.zeros(x.size, np.int64) if strata is None else np.asarray(strata)
    idx = _strata_indices(strata, n_boot, np.random.default_rng(seed))
    samples = x[idx]
    tail = (1.0 - level) / 2.0
    for name, fn in _STATS.items():
        boots = np.asarray([fn(row) for row in samples]) if name == "iqm" else fn(samples, axis=1)
        out[name] = {"value": float(fn(x)), "low": float(np.quantile(boots, tail)),
                     "high": float(np.quantile(boots, 1.0 - tail))}
    return out


def paired_difference(a, b, strata=None, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict:
    """The mean over tasks of ``a − b`` (two per-task values on the same tasks) with a bootstrap interval.

    Args:
      a: per-task values of the first, ``[tasks]``.
      b: per-task values of the second, ``[tasks]``.
      strata: per-task family labels for a stratified bootstrap (None: unstratified).
      n_boot: bootstrap resamples.
      level: the interval's coverage.
      seed: the resampling seed.

    Returns:
      ``{"mean", "low", "high", "tasks"}``; an interval below 0 says ``a`` has the lower (better) loss.
    """
    d = np.asarray(a, np.float64).ravel() - np.asarray(b, np.float64).ravel()
    s = bootstrap_summary(d, strata, n_boot=n_boot, level=level, seed=seed)
    return {**s["mean"], "mean": s["mean"]["value"], "tasks": s["tasks"]}


def win_tie_loss(a, b, *, floor: float = TIE_FLOOR) -> dict:
    """Per task, whether ``a`` beats ``b`` (lower normalized loss), ties, or loses (module docstring rule).

    Args:
      a: ``[tasks, seeds]`` normalized losses of the first.
      b: ``[tasks, seeds]`` (or ``[tasks, other seeds]``) normalized losses of the second.
      floor: the smallest difference that is not a tie.

    Returns:
      ``{"wins", "ties", "losses", "tasks", "outcome": [+1 win / 0 tie / −1 loss per task]}``.
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[0]:
        raise ValueError(f"win_tie_loss needs [tasks, seeds] arrays with equal task counts, got {a.shape} and "
                         f"{b.shape}")
    delta = a.mean(axis=1) - b.mean(axis=1)
    var = lambda x: x.var(axis=1, ddof=1) / x.shape[1] if x.shape[1] > 1 else np.zeros(x.shape[0])  # noqa: E731
    band = 2.0 * np.sqrt(var(a) + var(b)) + floor
    outcome = np.where(np.abs(delta) <= band, 0, np.where(delta < 0, 1, -1))
    return {"wins": int((outcome == 1).sum()), "ties": int((outcome == 0).sum()),
            "losses": int((outcome == -1).sum()), "tasks": int(outcome.size),
            "outcome": [int(o) for o in outcome]}


def direction(d: dict, floor: float = TIE_FLOOR) -> int:
    """Which way a paired difference ``a − b`` of normalized losses (:func:`paired_difference`) points.

    Args:
      d: ``{"mean", "low", "high"}`` of the difference.
      floor: the least mean difference that counts (normalized-loss units, as the tie rule's).

    Returns:
      ``-1`` (``a`` lower, better: the interval lies below 0 and the mean below ``-floor``), ``1`` (``a`` higher,
      worse), or ``0`` (not distinguishable, or smaller than ``floor``).
    """
    if d["high"] < 0 and d["mean"] < -floor:
        return -1
    if d["low"] > 0 and d["mean"] > floor:
        return 1
    return 0
