"""The yardstick: θ judged on a frozen task set in the paper's normalized loss, with intervals.

One entry point, :func:`evaluate`, for every consumer (``taskgen lopt eval --on``, ``make quality``, the ship
gate, the report, the reliability study). It runs θ with the learned optimizer on every task of the set
(:mod:`~.task_sets`) for the yardstick's seeds and steps (:data:`~.baseline_table.YARDSTICK_SETTINGS`), reusing
the runs already stored for θ's digest, and scores them against the committed AdamLR grid
(:mod:`~.baseline_table`) with the numbers of :mod:`~.normalized`:

* per task, the seed-mean normalized final loss ``n`` of θ, of Global AdamLR and of per-task AdamLR@14;
* over tasks, mean / median / IQM with 95 % bootstrap intervals (resampled within families), for the final loss
  and the mean-over-curve loss;
* against each baseline, wins / ties / losses; per family, the means.

The baselines: **per-task AdamLR@14** takes, per task, the grid learning rate with the lowest seed-mean final
inner-valid loss; **Global AdamLR** takes the one learning rate with the lowest mean normalized final loss over
the *valid* set, whatever set is being judged (so the test set never chooses it).

θ's runs live in ``<cache>/<set>/<θ digest>/runs/`` (``$TASKGEN_YARDSTICK_CACHE`` or
``~/.cache/taskgen/yardstick``), one record file per task (:mod:`~.records`), so an interrupted evaluation
resumes and a θ evaluated once is never run again on the same set.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from lopt_trainer.common.folder_lock import folder_lock
from lopt_trainer.common.progress import progress_bar
from lopt_trainer.evaluation import normalized as nz
from lopt_trainer.evaluation import task_sets
from lopt_trainer.evaluation.baseline_table import (YARDSTICK_SETTINGS, BaselineTable, load_baselines,
                                                    run_summaries, source_baselines)
from lopt_trainer.evaluation.backends import LocalBackend
from lopt_trainer.evaluation.records import load_records, save_records
from lopt_trainer.evaluation.settings import LOPT, RunUnit
from lopt_trainer.theta.load import theta_digest
from taskgen.jax_cache import enable_compilation_cache

__all__ = ["CACHE_ENV", "ThetaRuns", "YardstickScores", "run_theta", "score", "score_runs", "evaluate",
           "evaluate_tasks", "evaluate_many_on_tasks", "baselines_for", "compare",
           "global_trial", "cache_dir", "runs_to_dict", "runs_from_dict"]

CACHE_ENV = "TASKGEN_YARDSTICK_CACHE"
"""The setting that places the cache of θ runs."""
BASELINE_ROWS = ("global_adamlr", "per_task_adamlr@14")
ROW_LABELS = {"theta": "θ", "global_adamlr": "Global AdamLR", "per_task_adamlr@14": "per-task AdamLR@14"}


def cache_dir() -> Path:
    """``$TASKGEN_YARDSTICK_CACHE`` or ``~/.cache/taskgen/yardstick``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "taskgen" / "yardstick"


@dataclasses.dataclass(frozen=True)
class ThetaRuns:
    """θ's runs on a set, as arrays aligned with the set's task order.

    Attributes:
      set_name: ``valid`` or ``test``.
      theta_digest: θ's digest (:func:`lopt_trainer.theta.load.theta_digest`).
      task_ids: ``[tasks]``.
      families: ``[tasks]`` family names.
      final: ``[tasks, seeds]`` final test loss (NaN: diverged).
      curve_mean: ``[tasks, seeds]`` mean test loss over the curve (NaN: diverged).
      diverged: ``[tasks, seeds]`` bool.
      compile_s: seconds spent compiling in the runs made now.
      wall_s: seconds of the runs made now.
    """

    set_name: str
    theta_digest: str
    task_ids: tuple
    families: tuple
    final: np.ndarray
    curve_mean: np.ndarray
    diverged: np.ndarray
    compile_s: float = 0.0
    wall_s: float = 0.0


def run_theta(theta, set_name: str, *, cache=None, progress: bool = True, data_dir=None,
              tasks=None) -> ThetaRuns:
    """Run θ on every task of ``set_name`` not yet in the cache; returns all its runs there.

    Args:
      theta: the learned optimizer's θ (a pytree of arrays).
      set_name: ``valid`` or ``test``, or the label of ``tasks`` (:func:`~.task_sets.source_label`).
      cache: the cache folder (:func:`cache_dir` by default).
      progress: show a progress bar.
      data_dir: where the task sets live (the package's by default).
      tasks: the :class:`~.tasks.EvalTask` list in place of the frozen set ``set_name``.

    Returns:
      The :class:`ThetaRuns`.
    """
    enable_compilation_cache()
    tasks = tasks if tasks is not None else task_sets.task_set_tasks(set_name, data_dir)
    digest = theta_digest(theta)
    folder = Path(cache or cache_dir()) / set_name / digest
    key, seeds = YARDSTICK_SETTINGS.run_key(LOPT, digest), YARDSTICK_SETTINGS.seed_list()
    records, todo = {}, []
    compile_s = wall_s = 0.0
    with folder_lock(folder, "yardstick cache folder"):
        for t in tasks:
            have = load_records(folder, t.task_id, LOPT, key, [None])
            records[t.task_id] = have
            missing = tuple(s for s in seeds if (0, s) not in have)
            if missing:
                todo.append(RunUnit(t.task_id, t.spec.to_json(), LOPT, (0,), missing))
        bar = progress_bar(len(todo), f"θ {digest} on {set_name}", unit="task", enabled=progress and bool(todo))
        try:
            for unit, recs, tm in LocalBackend().run([(u, YARDSTICK_SETTINGS, theta) for u in todo]):
                have = records[unit.task_id]
                for r in recs:
                    have[(r["trial"], r["seed"])] = r
                save_records(folder, unit.task_id, LOPT, key, have, [tm])
                compile_s += tm["compile_s"]
                wall_s += tm["wall_s"]
                bar.update(1)
        finally:
            bar.close()
    final = np.full((len(tasks), len(seeds)), np.nan)
    curve = np.full_like(final, np.nan)
    for i, t in enumerate(tasks):
        for j, s in enumerate(seeds):
            summ = run_summaries(records[t.task_id][(0, s)])
            final[i, j], curve[i, j] = summ["final"], summ["curve_mean"]
    return ThetaRuns(set_name, digest, tuple(t.task_id for t in tasks), tuple(t.spec.family for t in tasks), final,
                     curve, ~np.isfinite(final), compile_s, wall_s)


@dataclasses.dataclass(frozen=True)
class YardstickScores:
    """Normalized losses of θ and the two baselines on one set (lower is better).

    Attributes:
      set_name: the set.
      task_ids: ``[tasks]``.
      families: ``[tasks]``.
      final: ``{row: [tasks, seeds]}`` normalized final losses, rows ``theta`` and :data:`BASELINE_ROWS`.
      curve: ``{row: [tasks, seeds]}`` normalized mean-over-curve losses.
      global_lr: Global AdamLR's learning rate.
      per_task_lr: ``[tasks]`` per-task AdamLR@14's learning rates.
    """

    set_name: str
    task_ids: tuple
    families: tuple
    final: dict
    curve: dict
    global_lr: float
    per_task_lr: np.ndarray


def _normalize_grid(base: BaselineTable, values) -> np.ndarray:
    """``[tasks, trials, seeds]`` normalized losses of the grid (final: ``values`` = base.final)."""
    best = nz.best_grid_loss(values)
    init = base.init.mean(axis=1)
    return nz.normalized_loss(values, init[:, None, None], best[:, None, None])


def global_trial(valid: BaselineTable) -> int:
    """The grid trial of Global AdamLR: the lowest mean over ``valid``'s tasks of the seed-mean normalized final
    loss (a diverged run counts as ``CLIP_HIGH``)."""
    n = _normalize_grid(valid, valid.final).mean(axis=2)  # [tasks, trials]
    return int(np.argmin(n.mean(axis=0)))


def score(runs: ThetaRuns, base: BaselineTable, g_trial: int) -> YardstickScores:
    """θ's runs and the baselines as normalized losses (module docstring).

    Args:
      runs: θ's runs on the set.
      base: the set's committed baselines.
      g_trial: Global AdamLR's trial (:func:`global_trial` of the valid set).

    Returns:
      The :class:`YardstickScores`.
    """
    if tuple(runs.task_ids) != tuple(base.task_ids):
        raise ValueError(f"θ's runs and the baselines are on different tasks of {runs.set_name!r}")
    init = base.init.mean(axis=1)[:, None]
    pt = nz.best_trials(base.select_final)  # per-task AdamLR@14: the best inner-valid loss
    out = {}
    for name, values, theta_values in (("final", base.final, runs.final), ("curve", base.curve_mean,
                                                                             runs.curve_mean)):
        best = nz.best_grid_loss(values)[:, None]
        grid = nz.normalized_loss(values, init[:, :, None], best[:, :, None])
        out[name] = {"theta": nz.normalized_loss(theta_values, init, best),
                     "global_adamlr": grid[:, g_trial, :],
                     "per_task_adamlr@14": grid[np.arange(len(pt)), pt, :]}
    return YardstickScores(runs.set_name, runs.task_ids, runs.families, out["final"], out["curve"],
                           float(base.lrs[g_trial]), base.lrs[pt])


def summarize(scores: YardstickScores, *, seed: int = 0) -> dict:
    """The headline of :class:`YardstickScores`: per row, the bootstrap summaries of the final and
    mean-over-curve normalized losses; θ's wins / ties / losses against each baseline; per family, the means."""
    fam = np.asarray(scores.families)
    rows = {}
    for row in ("theta", *BASELINE_ROWS):
        rows[row] = {m: nz.bootstrap_summary(getattr(scores, m)[row].mean(axis=1), fam, seed=seed)
                     for m in ("final", "curve")}
    versus = {}
    for b in BASELINE_ROWS:
        versus[b] = {m: {k: v for k, v in nz.win_tie_loss(getattr(scores, m)["theta"],
                                                          getattr(scores, m)[b]).items() if k != "outcome"}
                     for m in ("final", "curve")}
    families = {}
    for f in sorted(set(scores.families)):
        idx = fam == f
        families[f] = {"tasks": int(idx.sum()),
                       **{row: float(scores.final[row][idx].mean()) for row in ("theta", *BASELINE_ROWS)},
                       "wins_vs_global_adamlr": nz.win_tie_loss(scores.final["theta"][idx],
                                                                scores.final["global_adamlr"][idx])["wins"]}
    return {"set": scores.set_name, "tasks": len(scores.task_ids), "seeds": int(scores.final["theta"].shape[1]),
            "steps": YARDSTICK_SETTINGS.steps, "rows": rows, "versus": versus, "families": families,
            "global_adamlr_lr": scores.global_lr,
            "clip": [nz.CLIP_LOW, nz.CLIP_HIGH]}


def per_task_rows(scores: YardstickScores) -> list[dict]:
    """One dict per task: family, the seed-mean normalized final loss of each row, per-task AdamLR's rate."""
    out = []
    for i, tid in enumerate(scores.task_ids):
        out.append({"task_id": tid, "family": scores.families[i],
                    **{row: float(scores.final[row][i].mean()) for row in ("theta", *BASELINE_ROWS)},
                    "theta_curve": float(scores.curve["theta"][i].mean()),
                    "per_task_adamlr_lr": float(scores.per_task_lr[i])})
    return out


def evaluate(theta, set_name: str, *, cache=None, progress: bool = True,
             data_dir=None) -> tuple[dict, YardstickScores, dict]:
    """Run (or reuse) θ on ``set_name`` and score it: ``(summary, scores, timing)``.

    Args:
      theta: θ (a pytree of arrays).
      set_name: ``valid`` or ``test``.
      cache: the cache of θ runs (:func:`cache_dir` by default).
      progress: show a progress bar.
      data_dir: where the sets and their baselines live (the package's by default).

    Returns:
      :func:`summarize`'s dict (plus ``theta_digest``, ``diverged``, ``runs``), the scores, and
      ``{"wall_s", "compile_s"}`` of the runs made now (kept apart: equal inputs give equal summaries).

    Raises:
      lopt_trainer.evaluation.task_sets.TaskSetError: the set is unknown or altered.
      lopt_trainer.evaluation.baseline_table.BaselineTableError: its committed baselines are missing or stale.
    """
    base = load_baselines(set_name, data_dir=data_dir)  # a missing or stale table is refused before anything runs
    runs = run_theta(theta, set_name, cache=cache, progress=progress, data_dir=data_dir)
    summary, scores = score_runs(runs, data_dir=data_dir, base=base)
    return summary, scores, {"wall_s": runs.wall_s, "compile_s": runs.compile_s}


def score_runs(runs: ThetaRuns, *, data_dir=None, base: BaselineTable | None = None,
               g_trial: int | None = None) -> tuple[dict, YardstickScores]:
    """θ's runs on a set scored against the set's committed baselines (``base``, loaded when None), with Global
    AdamLR's trial ``g_trial`` (None: chosen on the valid set): ``(summary, scores)`` as :func:`evaluate` returns
    them."""
    base = base if base is not None else load_baselines(runs.set_name, data_dir=data_dir)
    if g_trial is None:
        valid = base if runs.set_name == "valid" else load_baselines("valid", data_dir=data_dir)
        g_trial = global_trial(valid)
    scores = score(runs, base, g_trial)
    summary = summarize(scores)
    summary["global_adamlr_chosen_on"] = "valid" if base.set_name in task_sets.SET_NAMES else "these tasks"
    summary.update({"theta_digest": runs.theta_digest, "diverged": int(runs.diverged.sum()),
                    "runs": int(runs.diverged.size)})
    return summary, scores


def evaluate_tasks(theta, tasks, *, what: str = "", cache=None, progress: bool = True,
                   base: BaselineTable | None = None) -> tuple[dict, YardstickScores, dict]:
    """The yardstick on any task list (e.g. a run's own held-out tasks): as :func:`evaluate`, with the AdamLR grid
    computed once per list into the cache and Global AdamLR chosen on the list itself.

    Args:
      theta: θ (a pytree of arrays).
      tasks: the :class:`~.tasks.EvalTask` list (:func:`~.task_sets.source_tasks`).
      what: how progress lines name the tasks (e.g. ``held-out tasks of mine.jsonl``).
      cache: the cache of θ runs and baselines (:func:`cache_dir` by default).
      progress: show progress bars.
      base: the list's baselines when already loaded (:func:`baselines_for`).

    Returns:
      ``(summary, scores, timing)`` as :func:`evaluate`; ``summary["set"]`` is the list's label.

    Raises:
      ValueError: ``tasks`` is empty.
    """
    if not tasks:
        raise ValueError("no tasks to evaluate on")
    base = base if base is not None else baselines_for(tasks, what=what, cache=cache, progress=progress)
    runs = run_theta(theta, base.set_name, cache=cache, progress=progress, tasks=tasks)
    summary, scores = score_runs(runs, base=base, g_trial=global_trial(base))
    return summary, scores, {"wall_s": runs.wall_s, "compile_s": runs.compile_s}


def evaluate_many_on_tasks(thetas, tasks, *, what: str = "", cache=None,
                           progress: bool = True) -> tuple[str, list]:
    """Several θ on one task list, its baselines loaded once: ``(set name, [(summary, scores, timing), ...])``.

    Args:
      thetas: the θ (pytrees of arrays), in the order of the results.
      tasks: the :class:`~.tasks.EvalTask` list.
      what: how progress lines and the set name say what the tasks are.
      cache: the cache of θ runs and baselines (:func:`cache_dir` by default).
      progress: show progress bars.

    Returns:
      The set's name (its label, the task count and ``what``; each summary's ``set`` too) and :func:`evaluate_tasks`'s
      result for each θ.
    """
    base = baselines_for(tasks, what=what, cache=cache, progress=progress)
    results = [evaluate_tasks(theta, tasks, what=what, cache=cache, progress=progress, base=base) for theta in thetas]
    set_name = f"{base.set_name} ({len(tasks)} {what or 'tasks'})"
    for summary, _, _ in results:
        summary["set"] = set_name
    return set_name, results


def baselines_for(tasks, *, what: str = "", cache=None, progress: bool = True) -> BaselineTable:
    """The AdamLR grid of a task list, computed once into ``<cache>/baselines/<label>/`` and read back after."""
    label = task_sets.source_label(tasks)
    desc = f"AdamLR baselines for {len(tasks)} {what or 'tasks'} (computed once, cached)"
    return source_baselines(tasks, label, Path(cache or cache_dir()) / "baselines" / label, progress=progress,
                            desc=desc)


def runs_to_dict(runs: ThetaRuns) -> dict:
    """θ's runs as plain JSON data (final and curve-mean losses per task and seed; NaN as None)."""
    as_list = lambda a: [[None if not np.isfinite(v) else float(v) for v in row] for row in a]  # noqa: E731
    return {"format": "lopt-yardstick-runs", "version": 1, "set": runs.set_name, "theta_digest": runs.theta_digest,
            "task_ids": list(runs.task_ids), "families": list(runs.families), "final": as_list(runs.final),
            "curve_mean": as_list(runs.curve_mean)}


def runs_from_dict(d: dict) -> ThetaRuns:
    """Inverse of :func:`runs_to_dict`; ``ValueError`` for another format."""
    if d.get("format") != "lopt-yardstick-runs":
        raise ValueError("not a yardstick runs file")
    arr = lambda x: np.asarray([[np.nan if v is None else v for v in row] for row in x], np.float64)  # noqa: E731
    final = arr(d["final"])
    return ThetaRuns(d["set"], d["theta_digest"], tuple(d["task_ids"]), tuple(d["families"]), final,
                     arr(d["curve_mean"]), ~np.isfinite(final))


def compare(a: YardstickScores, b: YardstickScores, *, seed: int = 0) -> dict:
    """θ ``a`` against θ ``b`` on the same set, task by task: the paired mean difference of normalized final
    (and curve) losses with a 95 % bootstrap interval (resampled within families; below 0: ``a`` is better),
    and wins / ties / losses of ``a``."""
    if a.task_ids != b.task_ids:
        raise ValueError("the two θ were scored on different task sets")
    fam = np.asarray(a.families)
    out = {}
    for m in ("final", "curve"):
        xa, xb = getattr(a, m)["theta"], getattr(b, m)["theta"]
        wtl = nz.win_tie_loss(xa, xb)
        out[m] = {"difference": nz.paired_difference(xa.mean(axis=1), xb.mean(axis=1), fam, seed=seed),
                  **{k: wtl[k] for k in ("wins", "ties", "losses", "tasks")}}
        if m == "final":
            out["per_task"] = [{"task_id": t, "family": f, "a": float(xa[i].mean()), "b": float(xb[i].mean()),
                                "outcome": wtl["outcome"][i]} for i, (t, f) in enumerate(zip(a.task_ids, a.families))]
    return out
