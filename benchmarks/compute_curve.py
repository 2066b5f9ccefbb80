"""The compute curve of pretraining: panel score against outer steps and CPU-hours over the whole history.

Pretraining accumulates over sessions (``make pretrain`` continues the committed portable state
``lopt_trainer/data/pretrain_state/``, :mod:`lopt_trainer.meta.portable`); every session records its steps, wall
seconds, machine and the panel evaluations it made. This script joins them (and, with ``--run``, the session
still in a run folder that has not been exported yet) into one curve: each panel evaluation's score and its paired
bootstrap 90% interval against the hand-set θ (``vs_handset``), at its cumulative outer step and cumulative
CPU-hours (wall hours × the machine's cores, summed over sessions).

Usage: ``python -m benchmarks.compute_curve [--state DIR] [--run RUN]``. Writes
``benchmarks/results/compute_curve.json`` and ``compute_curve.png``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import RESULTS_DIR, save, save_figure  # noqa: E402


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


def main(argv=None):
    from lopt_trainer.meta.metrics import read_metrics
    from lopt_trainer.meta.portable import read_run_history, read_state, session_record

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--state", default="lopt_trainer/data/pretrain_state")
    parser.add_argument("--run", default=None, help="a run folder whose current session is not exported yet")
    args = parser.parse_args(argv)
    sessions = list(read_state(args.state).history) if Path(args.state, "index.json").is_file() else []
    if args.run:
        history = read_run_history(args.run)
        sessions = list(history["sessions"])
        steps = [r["step"] + 1 for r in read_metrics(args.run) if r.get("kind") == "step"]
        sessions.append(session_record(Path(args.run), history["session_start"], max(steps, default=0)))
    points = curve_points(sessions)
    save("compute_curve", points, {"sessions": [{k: v for k, v in s.items() if k != "panel"} for s in sessions]})
    plot(points, RESULTS_DIR / "compute_curve.png")


def plot(points: list[dict], path: Path) -> None:
    """Score (top) and score minus the hand-set θ's with its 90% interval (bottom) against outer steps and
    CPU-hours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5), squeeze=False)
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
    fig.tight_layout()
    save_figure(fig, path)


if __name__ == "__main__":
    main()
