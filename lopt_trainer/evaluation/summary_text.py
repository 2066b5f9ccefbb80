"""An evaluation's summary as text a person can read: what the numbers mean, one row per baseline and task
group, and the tasks it ran on (what ``taskgen lopt eval`` prints; ``--json`` prints :func:`summary_json`)."""

from __future__ import annotations

import math
import textwrap

from lopt_trainer.evaluation.scoring import EPS, label

GROUP_TEXT = {"seen": "seen (meta_train)", "unseen": "unseen (meta_test)"}


def legend(settings: dict) -> list[str]:
    """What the numbers of :func:`summary_lines` mean, given the evaluation's settings dict."""
    report, select = settings.get("report_split", "test"), settings.get("select_split", "inner_valid")
    text = [
        f"improvement = log((B - b + {EPS:g}) / (L - b + {EPS:g})) per task, from the final normalised {report} "
        f"loss after {settings.get('steps')} steps (mean over {settings.get('seeds')} seed(s)); L: learned, "
        "B: baseline, b: the best loss any run reached on the task.",
        "  > 0: the learned optimizer got closer to the best loss (by the factor e^improvement); < 0: the "
        "baseline did; 0: a tie.",
        f"Baselines choose their trial on {select} (Global: one trial for all tasks, picked on the seen tasks; "
        f"per-task: the best of N trials on each task) and are scored on {report}, like the learned optimizer.",
        "speedup: steps the baseline needs to reach the learned optimizer's final loss / steps the learned "
        "optimizer needs (median over tasks; > 1: the learned optimizer is faster; inf: the baseline never gets "
        "there).",
    ]
    return [line for para in text for line in textwrap.wrap(para, 110, subsequent_indent="  ")]


def summary_lines(summary: dict) -> list[str]:
    """The table: one row per baseline row and task group (tasks, median and quartiles of the improvement, how
    often the learned optimizer is better, median speedup)."""
    head = (f"{'baseline':<24} {'tasks':<19} {'n':>3}  {'median':>7}  {'[q25, q75]':<17} {'learned better':<15}"
            f" {'speedup':>7}")
    out = [head, "-" * len(head)]
    for r in summary["rows"]:
        f = r["final"]
        better = r["frac_lopt_better"]
        wins = "-" if _nan(better) else f"{round(better * r['n_tasks'])}/{r['n_tasks']} ({100 * better:.0f}%)"
        quart = "-" if _nan(f["q25"]) else f"[{f['q25']:+.2f}, {f['q75']:+.2f}]"
        out.append(f"{label(r['optimizer']):<24} {GROUP_TEXT.get(r['group'], r['group']):<19} {r['n_tasks']:>3}  "
                   f"{_num(f['median']):>7}  {quart:<17} {wins:<15} {_num(r['speedup_median'], '.2f'):>7}")
    lopt = summary.get("lopt", {})
    out.append(f"learned optimizer runs: {lopt.get('runs', 0)}, diverged: {lopt.get('diverged', 0)}")
    return out


def task_lines(tasks) -> list[str]:
    """The chosen tasks, one per line: group, task id, family variant (``tasks``: EvalTask-like objects)."""
    return [f"  {GROUP_TEXT.get(t.group, t.group):<19} {t.task_id:<24} {t.variant}" for t in tasks]


def summary_json(summary: dict, tasks, theta: str) -> dict:
    """The summary with the θ it scored, the chosen tasks and the legend, for ``--json``."""
    return {"theta": theta, "legend": legend(summary.get("settings", {})),
            "tasks": [{"task_id": t.task_id, "group": t.group, "variant": t.variant} for t in tasks],
            **{k: summary[k] for k in ("rows", "lopt", "settings", "n_tasks") if k in summary}}


def _nan(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _num(x, fmt: str = "+.3f") -> str:
    return "-" if _nan(x) else ("inf" if x == math.inf else format(x, fmt))
