"""The yardstick's results as text: the headline table, a legend, per family, and a paired comparison."""

from __future__ import annotations

from lopt_trainer.evaluation.normalized import TIE_FLOOR, direction
from lopt_trainer.evaluation.yardstick import BASELINE_ROWS, ROW_LABELS

__all__ = ["legend", "summary_lines", "comparison_lines"]


def _ci(s: dict) -> str:
    return f"{s['value']:+.3f} [{s['low']:+.3f}, {s['high']:+.3f}]"


def legend(summary: dict) -> list[str]:
    """What the numbers mean, for the reader of :func:`summary_lines`."""
    lo, hi = summary["clip"]
    return [
        "legend:",
        f"  n = (L − L*) / (L0 − L*) per task and seed, on the test split after {summary['steps']} steps; L0 = loss",
        "    at initialisation, L* = best seed-mean final loss of the 14-point AdamLR grid (Metz et al. 2020).",
        "    0 = as good as the best AdamLR learning rate, 1 = no better than at initialisation; lower is better.",
        f"    Clipped to [{lo:g}, {hi:g}]; a diverged run counts {hi:g}. Curve: the same for the mean loss over the run.",
        "  mean / median / IQM (interquartile mean) over tasks of the seed-mean n, with 95% bootstrap intervals",
        "    (tasks resampled within each family).",
        f"  Global AdamLR: one learning rate ({summary['global_adamlr_lr']:.3g}) for every task, chosen on "
        f"{_chosen_on(summary)};",
        "    per-task AdamLR@14: per task, the grid rate with the best inner-valid loss.",
        "  win / tie / loss: θ's seed-mean n against the baseline's; a tie is |Δ| ≤ 2·SE (seed-to-seed) + 0.001.",
        f"  better / worse: the paired 95% interval of the mean Δn excludes 0 and |mean Δn| > {TIE_FLOOR:g}.",
    ]


def _chosen_on(summary: dict) -> str:
    on = summary.get("global_adamlr_chosen_on", "valid")
    return "the valid set" if on == "valid" else on


def summary_lines(summary: dict, label: str = "θ") -> list[str]:
    """The headline: mean / median / IQM per row (final and curve), wins / ties / losses, per family."""
    out = [f"{label} on the {summary['set']} set: {summary['tasks']} tasks × {summary['seeds']} seeds, "
           f"{summary['diverged']} of {summary['runs']} runs diverged",
           "",
           f"{'normalized final loss':24s} {'mean [95% CI]':>26s} {'median [95% CI]':>26s} {'IQM [95% CI]':>26s}"]
    for row in ("theta", *BASELINE_ROWS):
        s = summary["rows"][row]["final"]
        out.append(f"{ROW_LABELS[row]:24s} {_ci(s['mean']):>26s} {_ci(s['median']):>26s} {_ci(s['iqm']):>26s}")
    out += ["", f"{'normalized curve loss':24s} {'mean [95% CI]':>26s} {'median [95% CI]':>26s} "
                f"{'IQM [95% CI]':>26s}"]
    for row in ("theta", *BASELINE_ROWS):
        s = summary["rows"][row]["curve"]
        out.append(f"{ROW_LABELS[row]:24s} {_ci(s['mean']):>26s} {_ci(s['median']):>26s} {_ci(s['iqm']):>26s}")
    out += ["", "θ against each baseline, tasks won / tied / lost:"]
    for b in BASELINE_ROWS:
        f, c = summary["versus"][b]["final"], summary["versus"][b]["curve"]
        out.append(f"  {ROW_LABELS[b]:22s} final {f['wins']:3d} / {f['ties']:3d} / {f['losses']:3d}    "
                   f"curve {c['wins']:3d} / {c['ties']:3d} / {c['losses']:3d}")
    out += ["", f"{'family':26s} {'tasks':>5s} {'θ':>8s} {'Global':>8s} {'per-task':>8s} {'θ wins vs Global':>17s}"]
    for f, r in summary["families"].items():
        out.append(f"{f:26s} {r['tasks']:5d} {r['theta']:8.3f} {r['global_adamlr']:8.3f} "
                   f"{r['per_task_adamlr@14']:8.3f} {r['wins_vs_global_adamlr']:17d}")
    return out


def comparison_lines(label_a: str, label_b: str, comp: dict, per_task: bool = True) -> list[str]:
    """``a`` against ``b``: the paired difference with its interval, wins / ties / losses, and task by task."""
    f = comp["final"]
    d = f["difference"]
    verdict = {-1: "better than", 1: "worse than", 0: "not distinguishable from"}[direction(d)]
    out = [f"{label_a} − {label_b}: mean Δn {d['mean']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}] (95%, paired, "
           f"{d['tasks']} tasks); {label_a} is {verdict} {label_b} on this set",
           f"  tasks won / tied / lost by {label_a}: {f['wins']} / {f['ties']} / {f['losses']}  "
           f"(curve: mean Δ {comp['curve']['difference']['mean']:+.4f} "
           f"[{comp['curve']['difference']['low']:+.4f}, {comp['curve']['difference']['high']:+.4f}])"]
    if per_task:
        mark = {1: "win", 0: "tie", -1: "loss"}
        out.append(f"  {'task':42s} {'n ' + label_a[:10]:>14s} {'n ' + label_b[:10]:>14s}  outcome")
        for r in comp["per_task"]:
            out.append(f"  {r['task_id']:42s} {r['a']:14.4f} {r['b']:14.4f}  {mark[r['outcome']]}")
    return out
