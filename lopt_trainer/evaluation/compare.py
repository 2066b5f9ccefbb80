"""Two θ on the same tasks, task by task: the paired comparison behind "ahead of the hand-set θ" (issue 19, §4).

Two evaluations of different θ on the same tasks, seeds and steps share their AdamLR runs (the baseline cache), so
each task gives a *pair* of learned-optimizer results. Per task (:func:`lopt_tasks`, from an evaluation's results
table):

* ``final``: the learned optimizer's final normalised ``report_split`` loss, mean over seeds (a diverged run counts
  as the task's worst value, as everywhere in :mod:`~lopt_trainer.evaluation.scoring`);
* ``score``: its improvement over Global AdamLR (mean over seeds, clipped to ±3: the quality panel's per-task score,
  :func:`~lopt_trainer.evaluation.panel.task_scores`).

:func:`paired_comparison` of θ ``a`` against θ ``b`` over one task group: ``frac_ahead`` (tasks where ``a``'s
``final`` is lower than ``b``'s by more than ε = :data:`~lopt_trainer.evaluation.scoring.EPS`, the resolution of
every improvement in :mod:`~lopt_trainer.evaluation.scoring`), ``ties`` (within ε) and the mean score difference
with a paired bootstrap 90% interval (:func:`~lopt_trainer.evaluation.panel.paired_bootstrap`).

Two figures carry a little of their own evaluation: a diverged run's ``final`` is the worst value of *its*
evaluation's runs on the task, and ``score`` is measured from the best known loss of its evaluation (which includes
that evaluation's learned-optimizer runs). ``frac_ahead`` of two θ that never diverge is a function of the two θ
alone; ``score_diff`` is as the quality panel reports it.
"""

from __future__ import annotations

import numpy as np

from lopt_trainer.evaluation.panel import SCORE_CLIP, paired_bootstrap
from lopt_trainer.evaluation.scoring import EPS, per_task
from lopt_trainer.evaluation.settings import LOPT


def lopt_tasks(table) -> dict[str, dict]:
    """``{task_id: {"group", "family", "final", "score", "diverged"}}`` of an evaluation's results table (see the
    module docstring; ``diverged``: how many of the task's seeds diverged). Tasks without a Global AdamLR row get
    ``score`` NaN."""
    cols = table.select(["task_id", "family", "group", "optimizer", "final", "diverged"]).to_pydict()
    acc: dict[str, dict] = {}
    for tid, fam, grp, opt, final, div in zip(cols["task_id"], cols["family"], cols["group"], cols["optimizer"],
                                              cols["final"], cols["diverged"]):
        if opt != LOPT:
            continue
        t = acc.setdefault(tid, {"group": grp, "family": fam, "finals": [], "diverged": 0})
        t["finals"].append(float("nan") if final is None else float(final))
        t["diverged"] += int(bool(div))
    glob = {}
    for (opt, _), values in per_task(table, "improvement_final").items():
        if opt == "global_adamlr":
            glob.update(values)
    return {tid: {"group": t["group"], "family": t["family"], "final": float(np.mean(t["finals"])),
                  "score": float(np.clip(glob[tid], -SCORE_CLIP, SCORE_CLIP)) if tid in glob else float("nan"),
                  "diverged": t["diverged"]}
            for tid, t in sorted(acc.items())}


LOPT_TASK_KEYS = ("group", "score", "final")
"""The fields of a :func:`lopt_tasks` entry that a paired comparison reads."""


def check_lopt_tasks(result, keys=LOPT_TASK_KEYS) -> dict[str, dict]:
    """The ``lopt_tasks`` table of a quality benchmark result (parsed JSON), checked: a non-empty mapping whose
    entries hold ``keys``, with ``group`` "seen" or "unseen", ``score`` a number (NaN allowed: no Global AdamLR
    row) and ``final`` a finite number (a diverged run already counts as the task's worst value). ``ValueError``
    saying what is missing or which entry is malformed (callers add the file's name)."""
    tasks = result.get("lopt_tasks") if isinstance(result, dict) else None
    if not isinstance(tasks, dict) or not tasks or not all(isinstance(v, dict) and set(keys) <= set(v)
                                                           for v in tasks.values()):
        raise ValueError(f"no per-task results (lopt_tasks with {', '.join(keys)} per task)")
    for t, v in tasks.items():
        if v["group"] not in ("seen", "unseen") or not _is_number(v["score"]) or not _is_number(v["final"]) \
                or not np.isfinite(v["final"]):
            raise ValueError(f"lopt_tasks[{t!r}]: group must be 'seen' or 'unseen', score a number and final a finite "
                             f"number (got {v['group']!r}, {v['score']!r}, {v['final']!r})")
    return tasks


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def paired_comparison(a: dict, b: dict, group: str | None = "unseen", *, level: float = 0.9) -> dict:
    """θ ``a`` against θ ``b``, from two :func:`lopt_tasks` tables, on the tasks of ``group`` (None: all) that
    both have: ``{"tasks", "ahead", "ties", "behind", "frac_ahead", "score_diff": {"mean", "low", "high",
    "tasks"}}`` (ahead / behind: ``final`` lower / higher by more than ε). ``frac_ahead`` is NaN when no task is
    shared. ``ValueError`` when a shared task sits in different groups in the two tables (they are not evaluations
    of one task set) or has no finite final loss in one of them."""
    for t in sorted(set(a) & set(b)):
        if a[t]["group"] != b[t]["group"]:
            raise ValueError(f"task {t} is {a[t]['group']!r} in one evaluation and {b[t]['group']!r} in the other")
    shared = sorted(t for t in set(a) & set(b) if group is None or a[t]["group"] == group)
    diff = np.asarray([a[t]["final"] - b[t]["final"] for t in shared], np.float64)
    if not np.all(np.isfinite(diff)):  # diverged runs get the worst value, so a NaN means a broken table
        bad = [t for t, d in zip(shared, diff) if not np.isfinite(d)]
        raise ValueError(f"tasks {bad} have no finite final loss in one of the evaluations")
    ahead, ties = int(np.sum(diff < -EPS)), int(np.sum(np.abs(diff) <= EPS))
    scores_a = {t: a[t]["score"] for t in shared if np.isfinite(a[t]["score"])}
    scores_b = {t: b[t]["score"] for t in shared if np.isfinite(b[t]["score"])}
    return {"tasks": len(shared), "ahead": ahead, "ties": ties, "behind": len(shared) - ahead - ties,
            "frac_ahead": ahead / len(shared) if shared else float("nan"),
            "score_diff": paired_bootstrap(scores_a, scores_b, level=level)}


def family_scores(tasks: dict, group: str | None = "unseen") -> dict[str, dict]:
    """``{family: {"tasks", "score"}}``: the mean per-task ``score`` (over Global AdamLR, clipped to ±3) of each
    family's tasks of ``group`` (None: all) in a :func:`lopt_tasks` table, families sorted; a family whose scores
    are all NaN gets ``score`` NaN. Where a θ gains or loses across a pretraining history, family by family."""
    by_family: dict[str, list[float]] = {}
    for t in tasks.values():
        if group is None or t["group"] == group:
            by_family.setdefault(t["family"], []).append(float(t["score"]))
    out = {}
    for family, scores in sorted(by_family.items()):
        finite = [x for x in scores if np.isfinite(x)]
        out[family] = {"tasks": len(scores), "score": float(np.mean(finite)) if finite else float("nan")}
    return out
