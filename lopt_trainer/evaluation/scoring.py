"""From run records to numbers: the per-task metrics, the results table and its summary.

**Metrics**: improvement (final and area under the curve) and speedup. All losses are *normalised* losses
(``task.normalizer``; lower is better, ~0 excellent). Definitions, per task:

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

**The results table**: baseline selection, metrics, one row per task × optimizer row × seed. Optimizer rows
(column ``optimizer``):

* ``lopt`` — the learned optimizer;
* ``global_<b>`` for b in adamlr / adam8p / opt_list — the one trial with the lowest mean final ``select_split``
  loss over the *seen* tasks and seeds (all tasks if there are no seen tasks), used on every task;
* ``per_task_<b>@N`` — per task, the trial among the first N with the lowest seed-mean final ``select_split``
  loss (AdamLR: N = the whole grid; Adam8p / opt_list: every budget of ``EvalSettings.trials``).

Diverged trials count as the task's worst (``selection.fill_diverged``) when choosing. The reported numbers use
``report_split`` curves and the metrics above. The table has a fixed schema and row order, so equal inputs give
equal bytes.

**The summary** of a results table: per baseline and task group, the distribution over tasks of the
improvement. Per task the numbers are first averaged over seeds (improvements: mean; speedup: median), then
summarised over the tasks of a group (``seen`` / ``unseen``): median, quartiles, mean and ``frac_positive`` — the
fraction of tasks on which the learned optimizer beats that baseline (improvement > 0, i.e. strictly better than a
tie).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa

from lopt_trainer.evaluation.settings import LOPT, EvalSettings
from lopt_trainer.inner.selection import fill_diverged, select_global


# ------------------------------------------------------------------------------------ metrics

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


# ------------------------------------------------------------------------------------ the results table

BASELINE_LABELS = {"adamlr": "AdamLR", "adam8p": "Adam8p", "opt_list": "opt_list"}

SCHEMA = pa.schema([
    pa.field("task_id", pa.string()), pa.field("family", pa.string()), pa.field("variant", pa.string()),
    pa.field("group", pa.string()), pa.field("optimizer", pa.string()), pa.field("baseline", pa.string()),
    pa.field("selection", pa.string()), pa.field("budget", pa.int64()), pa.field("seed", pa.int64()),
    pa.field("trial", pa.int64()), pa.field("hparams", pa.string()), pa.field("diverged", pa.bool_()),
    pa.field("final", pa.float64()), pa.field("auc", pa.float64()), pa.field("best_known_final", pa.float64()),
    pa.field("best_known_auc", pa.float64()), pa.field("worst", pa.float64()),
    pa.field("improvement_final", pa.float64()), pa.field("improvement_auc", pa.float64()),
    pa.field("reach_step", pa.float64()), pa.field("speedup", pa.float64()),
    pa.field("steps", pa.list_(pa.int64())), pa.field("curve", pa.list_(pa.float64())),
])


def row_names(settings: EvalSettings) -> list[str]:
    """Every optimizer row name of an evaluation, in table order (``lopt`` first)."""
    names = [LOPT] + [f"global_{b}" for b in settings.baselines]
    for b in settings.baselines:
        budgets = [settings.adamlr_trials] if b == "adamlr" else list(settings.trials)
        names += [f"per_task_{b}@{n}" for n in budgets]
    return names


def label(name: str) -> str:
    """Display label of an optimizer row name, e.g. ``per_task_adam8p@10`` → ``Per-task Adam8p (10)``."""
    if name == LOPT:
        return "learned"
    if name.startswith("global_"):
        return f"Global {BASELINE_LABELS[name[7:]]}"
    base, n = name[9:].split("@")
    return f"Per-task {BASELINE_LABELS[base]} ({n})"


def baseline_of(name: str) -> str:
    """The optimizer a row name runs: ``lopt`` or a baseline (``per_task_opt_list@10`` → ``opt_list``)."""
    if name == LOPT:
        return LOPT
    stem = name.split("@")[0]
    return stem[len("global_"):] if stem.startswith("global_") else stem[len("per_task_"):]


def _nan(curve) -> np.ndarray:
    return np.asarray([np.nan if v is None else v for v in curve], np.float64)


def _select_final(rec) -> float:
    c = _nan(rec["select_curve"])
    return float(c[-1]) if (c.size and not rec["diverged"]) else np.nan


def choose_trials(tasks, records, settings: EvalSettings) -> dict:
    """``{row name: {task_id: trial}}`` for every baseline row (see the module docstring)."""
    seeds = settings.seed_list()
    out = {}
    seen = [t for t in tasks if t.group == "seen"] or list(tasks)
    for b in settings.baselines:
        n_trials = len(settings.trial_hparams(b))
        arr = np.full((len(tasks), n_trials, len(seeds)), np.nan)
        for i, t in enumerate(tasks):
            for (trial, seed), rec in records.get((t.task_id, b), {}).items():
                if trial < n_trials and seed in seeds:
                    arr[i, trial, seeds.index(seed)] = _select_final(rec)
        # per task: fill diverged with the task's worst, then mean over seeds
        filled = fill_diverged(arr.reshape(len(tasks), -1)).reshape(arr.shape).mean(axis=2)
        seen_idx = [tasks.index(t) for t in seen]
        rows = np.transpose(arr[seen_idx], (0, 2, 1)).reshape(-1, n_trials)  # (task, seed) × trial
        g, _ = select_global(rows)
        out[f"global_{b}"] = {t.task_id: int(g) for t in tasks}
        budgets = [settings.adamlr_trials] if b == "adamlr" else list(settings.trials)
        for n in budgets:
            out[f"per_task_{b}@{n}"] = {t.task_id: int(np.argmin(filled[i, :n])) for i, t in enumerate(tasks)}
    return out


def _task_stats(recs):
    curves = [_nan(r["report_curve"]) for r in recs]
    worst = worst_value(np.concatenate(curves) if curves else [])
    finals = [final_value(c, r["diverged"], worst) for c, r in zip(curves, recs)]
    aucs = [auc(r["steps"], c, worst) for c, r in zip(curves, recs)]
    finite_finals = [f for f, r in zip(finals, recs) if not r["diverged"]]
    return worst, best_known(finite_finals or finals), best_known(aucs)


def build_rows(tasks, records, settings: EvalSettings) -> list[dict]:
    """The result rows (dicts with the :data:`SCHEMA` columns), ordered by task, optimizer row, seed.

    ``tasks``: :class:`~lopt_trainer.evaluation.tasks.EvalTask` list; ``records``: ``{(task_id, optimizer):
    {(trial, seed): record}}``. Tasks whose learned-optimizer runs are missing are skipped.
    """
    chosen = choose_trials(tasks, records, settings)
    rows = []
    for t in tasks:
        mine = {opt: records.get((t.task_id, opt), {}) for opt in (LOPT, *settings.baselines)}
        if not mine[LOPT]:
            continue
        worst, best_final, best_auc = _task_stats([r for d in mine.values() for r in d.values()])
        for name in row_names(settings):
            base = baseline_of(name)
            for seed in settings.seed_list():
                trial = 0 if name == LOPT else chosen[name][t.task_id]
                rec = mine[base].get((trial, seed))
                lrec = mine[LOPT].get((0, seed))
                if rec is None or lrec is None:
                    continue
                rows.append(_row(t, name, base, trial, seed, rec, lrec, worst, best_final, best_auc, settings))
    return rows


def _row(t, name, base, trial, seed, rec, lrec, worst, best_final, best_auc, settings) -> dict:
    curve, lcurve = _nan(rec["report_curve"]), _nan(lrec["report_curve"])
    final = final_value(curve, rec["diverged"], worst)
    area = auc(rec["steps"], curve, worst)
    lfinal = final_value(lcurve, lrec["diverged"], worst)
    larea = auc(lrec["steps"], lcurve, worst)
    if name == LOPT:
        imp_f = imp_a = reach = speed = np.nan
    else:
        imp_f = improvement(lfinal, final, best_final)
        imp_a = improvement(larea, area, best_auc)
        reach, speed = speedup(rec["steps"], lcurve, lrec["diverged"], curve)
    selection = "-" if name == LOPT else ("global" if name.startswith("global_") else "per_task")
    budget = 1 if name == LOPT else (int(name.split("@")[1]) if "@" in name
                                     else len(settings.trial_hparams(base)))
    return {
        "task_id": t.task_id, "family": t.spec.family, "variant": t.variant, "group": t.group, "optimizer": name,
        "baseline": base, "selection": selection, "budget": budget, "seed": int(seed), "trial": int(trial),
        "hparams": json.dumps(rec.get("hparams"), sort_keys=True), "diverged": bool(rec["diverged"]),
        "final": final, "auc": area, "best_known_final": best_final, "best_known_auc": best_auc, "worst": worst,
        "improvement_final": imp_f, "improvement_auc": imp_a, "reach_step": reach, "speedup": speed,
        "steps": [int(s) for s in rec["steps"]], "curve": [float(v) for v in curve],
    }


def rows_to_table(rows: list[dict]) -> pa.Table:
    """The rows as an Arrow table with :data:`SCHEMA` (plus schema metadata naming the format)."""
    cols = {f.name: [r[f.name] for r in rows] for f in SCHEMA}
    schema = SCHEMA.with_metadata({"lopt.eval.format": "results", "lopt.eval.version": "1"})
    return pa.table(cols, schema=schema)


def table_bytes(table: pa.Table) -> bytes:
    """The table as Arrow IPC file bytes."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def read_table(path) -> pa.Table:
    """Read a results table written by the evaluation."""
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_file(source).read_all()


# ------------------------------------------------------------------------------------ the summary


def per_task(table, measure: str) -> dict:
    """``{(optimizer, group): {task_id: seed-aggregated value}}`` of column ``measure`` (baseline rows only)."""
    cols = table.select(["task_id", "optimizer", "group", measure]).to_pydict()
    acc: dict = {}
    for tid, opt, grp, v in zip(cols["task_id"], cols["optimizer"], cols["group"], cols[measure]):
        if opt == "lopt":
            continue
        acc.setdefault((opt, grp), {}).setdefault(tid, []).append(math.nan if v is None else v)
    agg = np.median if measure == "speedup" else np.mean
    return {k: {tid: float(agg(vs)) for tid, vs in d.items()} for k, d in acc.items()}


def summarize_table(table, row_order: list[str]) -> dict:
    """``{"rows": [...], "lopt": {...}}``: one entry per (baseline row, group) with the improvement summaries
    (``final``, ``auc``), the median speedup and ``n_tasks``; plus the learned optimizer's divergence count."""
    imp_f, imp_a, spd = (per_task(table, m) for m in ("improvement_final", "improvement_auc", "speedup"))
    out = []
    for name in row_order:
        for grp in ("seen", "unseen"):
            f = imp_f.get((name, grp))
            if not f:
                continue
            s = np.asarray(list(spd.get((name, grp), {}).values()), np.float64)
            s = s[~np.isnan(s)]
            out.append({"optimizer": name, "group": grp, "n_tasks": len(f),
                        "final": summarize(list(f.values())),
                        "auc": summarize(list(imp_a.get((name, grp), {}).values())),
                        "speedup_median": float(np.median(s)) if s.size else math.nan,
                        "frac_lopt_better": summarize(list(f.values()))["frac_positive"]})
    cols = table.select(["optimizer", "diverged", "task_id"]).to_pydict()
    lopt_runs = [d for o, d in zip(cols["optimizer"], cols["diverged"]) if o == "lopt"]
    return {"rows": out, "lopt": {"runs": len(lopt_runs), "diverged": int(sum(lopt_runs))}}
