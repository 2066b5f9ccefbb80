"""From run records to the results table: baseline selection, metrics, one row per task × optimizer × seed.

Optimizer rows (column ``optimizer``):

* ``lopt`` — the learned optimizer;
* ``global_<b>`` for b in adamlr / adam8p / opt_list — the one trial with the lowest mean final ``select_split``
  loss over the *seen* tasks and seeds (all tasks if there are no seen tasks), used on every task;
* ``per_task_<b>@N`` — per task, the trial among the first N with the lowest seed-mean final ``select_split``
  loss (AdamLR: N = the whole grid; Adam8p / opt_list: every budget of ``EvalSettings.trials``).

Diverged trials count as the task's worst (``selection.fill_diverged``) when choosing. The reported numbers use
``report_split`` curves and the definitions of :mod:`lopt_trainer.evaluation.metrics`. The table has a fixed
schema and row order, so equal inputs give equal bytes.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from lopt_trainer.evaluation import metrics as M
from lopt_trainer.evaluation.runs import LOPT, EvalSettings

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
    from lopt_trainer.selection import fill_diverged, select_global

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
    worst = M.worst_value(np.concatenate(curves) if curves else [])
    finals = [M.final_value(c, r["diverged"], worst) for c, r in zip(curves, recs)]
    aucs = [M.auc(r["steps"], c, worst) for c, r in zip(curves, recs)]
    finite_finals = [f for f, r in zip(finals, recs) if not r["diverged"]]
    return worst, M.best_known(finite_finals or finals), M.best_known(aucs)


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
    final = M.final_value(curve, rec["diverged"], worst)
    area = M.auc(rec["steps"], curve, worst)
    lfinal = M.final_value(lcurve, lrec["diverged"], worst)
    larea = M.auc(lrec["steps"], lcurve, worst)
    if name == LOPT:
        imp_f = imp_a = reach = speed = np.nan
    else:
        imp_f = M.improvement(lfinal, final, best_final)
        imp_a = M.improvement(larea, area, best_auc)
        reach, speed = M.speedup(rec["steps"], lcurve, lrec["diverged"], curve)
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
