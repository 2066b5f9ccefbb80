"""Aggregates of a results table: per baseline and task group, the distribution over tasks of the improvement.

Per task the numbers are first averaged over seeds (improvements: mean; speedup: median), then summarised over
the tasks of a group (``seen`` / ``unseen``): median, quartiles, mean and ``frac_positive`` — the fraction of
tasks on which the learned optimizer beats that baseline (improvement > 0, i.e. strictly better than a tie).
"""

from __future__ import annotations

import math

import numpy as np

from lopt_trainer.evaluation import metrics as M


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
                        "final": M.summarize(list(f.values())),
                        "auc": M.summarize(list(imp_a.get((name, grp), {}).values())),
                        "speedup_median": float(np.median(s)) if s.size else math.nan,
                        "frac_lopt_better": M.summarize(list(f.values()))["frac_positive"]})
    cols = table.select(["optimizer", "diverged", "task_id"]).to_pydict()
    lopt_runs = [d for o, d in zip(cols["optimizer"], cols["diverged"]) if o == "lopt"]
    return {"rows": out, "lopt": {"runs": len(lopt_runs), "diverged": int(sum(lopt_runs))}}
