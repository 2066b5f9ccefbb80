"""The compute curve of pretraining: panel score against outer steps and CPU-hours over the whole history.

Pretraining accumulates over sessions (``make pretrain`` continues the committed portable state
``lopt_trainer/data/pretrain_state/``, :mod:`lopt_trainer.meta.portable`); every session records its steps, wall
seconds, machine and the panel evaluations it made. This script joins them (and, with ``--run``, the session
still in a run folder that has not been exported yet) into one curve: each panel evaluation's score and its paired
bootstrap 90% interval against the hand-set θ (``vs_handset``), at its cumulative outer step and cumulative
CPU-hours (wall hours × the machine's cores, summed over sessions).

With ``--quality STEP=RESULT.json`` (repeatable), the quality benchmark's results of the θ at those outer steps
(``make quality``: 40 tasks, half unseen, 2 seeds, 1000 steps) join the curve as a third row: on the unseen tasks,
the fraction beating Global AdamLR and per-task AdamLR@14 (with their targets), and the fraction ahead of the
hand-set θ (task by task, when the result was measured ``--against`` a result of the hand-set θ, recognised by its
θ digest), and each family's mean unseen-task score (printed as a table: where the θ gains and loses).

Usage: ``python -m research.compute_curve [--state DIR] [--run RUN] [--quality STEP=RESULT.json ...]
[--name compute_curve]``. Writes ``research/results/NAME.json`` and ``NAME.png`` (``--name``: a branch's curve
beside the main lineage's).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from lopt_trainer.evaluation.compare import family_scores
from research.common import RESULTS_DIR, check_results_name, save, save_figure


def curve_points(sessions: list[dict]) -> list[dict]:
    """One point per panel evaluation, oldest first: ``step``, ``cpu_hours`` and ``wall_hours`` (cumulative up to
    the evaluation), ``score``, ``vs_handset`` (``mean``, ``low``, ``high``), ``cpu`` (the machine)."""
    points, cpu_h, wall_h = [], 0.0, 0.0
    for session in sessions:
        cores = int(session.get("cpus") or 2)
        for p in session.get("panel") or []:
            at = float(p.get("session_seconds") or 0.0) / 3600
            points.append({"step": p["step"], "wall_hours": round(wall_h + at, 3),
                           "cpu_hours": round(cpu_h + at * cores, 3), "score": p.get("score"),
                           "vs_handset": p.get("vs_handset"), "cpu": session.get("cpu")})
        wall = float(session.get("wall_seconds") or 0.0) / 3600
        wall_h += wall
        cpu_h += wall * cores
    return points


def session_ends(sessions: list[dict]) -> dict[int, float]:
    """``{outer step at a session's end: cumulative CPU-hours then}`` (where a θ without a panel point sits on the
    CPU-hours axis)."""
    out, cpu_h = {}, 0.0
    for session in sessions:
        cpu_h += float(session.get("wall_seconds") or 0.0) / 3600 * int(session.get("cpus") or 2)
        if session.get("steps_to") is not None:
            out[int(session["steps_to"])] = round(cpu_h, 3)
    return out


def handset_digest() -> str:
    """The digest of the untrained hand-set θ (how a comparison with it is recognised)."""
    from lopt_trainer.theta.load import load_theta, theta_digest

    return theta_digest(load_theta("handset"))


def quality_point(step: int, result: dict, path: str) -> dict:
    """One quality measurement on the curve: the unseen-task figures of a :mod:`research.quality` result, and (when it
    keeps per-task results) each family's mean unseen-task score, ``family_scores``."""
    unseen = {r.get("baseline"): r for r in result["rows"] if isinstance(r, dict) and r.get("group") == "unseen"}
    point = {"step": step, "file": path, "theta": result.get("theta"),
             "beats_global": unseen.get("global_adamlr", {}).get("frac_lopt_better"),
             "median_improvement_global": unseen.get("global_adamlr", {}).get("median_improvement"),
             "beats_per_task": unseen.get("per_task_adamlr@14", {}).get("frac_lopt_better"),
             "diverged": ((result.get("targets") or {}).get("unseen_diverged") or {}).get("measured")}
    if isinstance(result.get("lopt_tasks"), dict):
        point["family_scores"] = family_scores(result["lopt_tasks"], "unseen")
    for groups in (result.get("paired") or {}).values():
        if isinstance(groups, dict) and groups.get("theta_digest") == handset_digest() \
                and isinstance(groups.get("unseen"), dict):
            point["ahead_of_handset"] = groups["unseen"].get("frac_ahead")
            point["vs_handset_score"] = groups["unseen"].get("score_diff")
    return point


def family_table(quality: list[dict]) -> str:
    """A text table of the quality points' unseen-task scores by family (rows) and outer step (columns)."""
    points = [q for q in quality if q.get("family_scores")]
    if not points:
        return ""
    families = sorted({f for q in points for f in q["family_scores"]})
    lines = ["unseen-task score over Global AdamLR by family (make quality), at outer step:",
             f"{'family':24s} {'tasks':>5s} " + " ".join(f"{q['step']:>7d}" for q in points)]
    for f in families:
        cells = [q["family_scores"].get(f) for q in points]
        n = next(c["tasks"] for c in cells if c)
        lines.append(f"{f:24s} {n:5d} " + " ".join(_cell(c) for c in cells))
    return "\n".join(lines)


def _cell(c: dict | None) -> str:
    """A family's score at one step: ``—`` when the family is not in that result, ``n/a`` without a score."""
    if not c:
        return f"{'—':>7s}"
    return f"{c['score']:+7.2f}" if math.isfinite(c["score"]) else f"{'n/a':>7s}"


def parse_quality(values: list[str]) -> list[dict]:
    """``STEP=FILE`` arguments → quality points, by step; ``SystemExit`` naming a malformed one."""
    import json

    points = []
    for value in values:
        step, sep, path = value.partition("=")
        if not sep or not step.isdigit():
            raise SystemExit(f"--quality {value!r}: expected STEP=RESULT.json")
        try:
            result = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise SystemExit(f"--quality {value!r}: cannot read {path}: {e}")
        if not isinstance(result, dict) or not isinstance(result.get("rows"), list):
            raise SystemExit(f"--quality {value!r}: {path} is not a quality benchmark result")
        points.append(quality_point(int(step), result, path))
    return sorted(points, key=lambda p: p["step"])


def main(argv=None):
    from lopt_trainer.meta.metrics import read_metrics
    from lopt_trainer.meta.portable import read_run_history, read_state, session_record

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--state", default="lopt_trainer/data/pretrain_state")
    parser.add_argument("--run", default=None, help="a run folder whose current session is not exported yet")
    parser.add_argument("--quality", action="append", default=[], metavar="STEP=RESULT.json",
                        help="a quality benchmark result of the θ at outer step STEP (repeatable)")
    parser.add_argument("--name", default="compute_curve",
                        help="results file name (research/results/NAME.json and NAME.png; a branch's own curve)")
    args = parser.parse_args(argv)
    check_results_name(parser, args.name)
    quality = parse_quality(args.quality)
    sessions = list(read_state(args.state).history) if Path(args.state, "index.json").is_file() else []
    if args.run:
        history = read_run_history(args.run)
        sessions = list(history["sessions"])
        steps = [r["step"] + 1 for r in read_metrics(args.run) if r.get("kind") == "step"]
        sessions.append(session_record(Path(args.run), history["session_start"], max(steps, default=0)))
    points = curve_points(sessions)
    save(args.name, points, {"sessions": [{k: v for k, v in s.items() if k != "panel"} for s in sessions],
                                   "quality": quality})
    plot(points, RESULTS_DIR / f"{args.name}.png", quality, session_ends(sessions))
    table = family_table(quality)
    if table:
        print(table)


def plot(points: list[dict], path: Path, quality: list[dict] = (), ends: dict | None = None) -> None:
    """Score (top) and score minus the hand-set θ's with its 90% interval (middle) against outer steps and
    CPU-hours; with ``quality`` points, a bottom row of the quality benchmark's unseen-task fractions against
    outer steps (and CPU-hours, where the step is on the panel curve or ends a session, ``ends``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = 3 if quality else 2
    fig, axes = plt.subplots(rows, 2, figsize=(10, 3.3 * rows), squeeze=False)
    hours = {**(ends or {}), **{p["step"]: p["cpu_hours"] for p in points}}
    for col, (key, label) in enumerate((("step", "outer steps"), ("cpu_hours", "CPU-hours"))):
        x = [p[key] for p in points]
        axes[0, col].plot(x, [p["score"] for p in points], "o-")
        axes[0, col].set_ylabel("panel score")
        rel = [(p[key], p["vs_handset"]) for p in points if p.get("vs_handset")]
        if rel:
            xs = [r[0] for r in rel]
            mean = [r[1]["mean"] for r in rel]
            err = [[m - r[1]["low"] for m, r in zip(mean, rel)], [r[1]["high"] - m for m, r in zip(mean, rel)]]
            axes[1, col].errorbar(xs, mean, yerr=err, fmt="o-", capsize=3)
        axes[1, col].axhline(0.0, color="grey", lw=0.8)
        axes[1, col].set_ylabel("score − hand-set θ (90% interval)")
        axes[1, col].set_xlabel(label)
        if quality:
            ax = axes[2, col]
            qs = [q for q in quality if key == "step" or q["step"] in hours]
            x = [q["step"] if key == "step" else hours[q["step"]] for q in qs]
            for field, name, target in (("beats_global", "beats Global AdamLR", 0.6),
                                        ("beats_per_task", "beats AdamLR@14", 0.25),
                                        ("ahead_of_handset", "ahead of hand-set θ", 0.6)):
                pts = [(xi, q[field]) for xi, q in zip(x, qs) if q.get(field) is not None]
                if pts:
                    line, = ax.plot(*zip(*pts), "s-", label=name)
                    ax.axhline(target, color=line.get_color(), ls=":", lw=1)
            ax.set_ylim(0, 1)
            ax.set_ylabel("unseen tasks (make quality)")
            ax.set_xlabel(label)
            ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


if __name__ == "__main__":
    main()
