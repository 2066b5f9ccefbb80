"""PES, truncated backprop and the hybrid at equal wall clock: the same recipe, seed and task stream, each
meta-training θ from the hand-set initialisation for the same minutes, side by side (all runs start together
and are stopped together, so whatever else loads the machine loads them alike), then every final θ scored on the
quality panel with a paired bootstrap 90% interval against the hand-set θ.

    python -m research.estimators --minutes 30                 # pes, backprop, hybrid
    python -m research.estimators --minutes 30 --resume        # score runs already made

Runs go to ``runs/estimators/<kind>`` (stopped with SIGTERM: each ends with a checkpoint); the table goes to
``research/results/estimators.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from research.common import RESULTS_DIR, cpu_model

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "lopt_trainer" / "data" / "pretrain_config.json"


def launch(kinds, config: str, out: Path, sets) -> dict:
    """Start one ``taskgen lopt meta-train`` per estimator kind; returns ``{kind: Popen}``."""
    procs = {}
    for kind in kinds:
        cmd = [sys.executable, "-m", "taskgen_cli", "lopt", "meta-train", "--config", config, "--out",
               str(out / kind), "--steps", "1000000", "--resume", "--no-progress", "--set", f"estimator={kind}",
               "--set", "panel_every=0", *[x for s in sets for x in ("--set", s)]]
        log = open(out / f"{kind}.log", "a")
        procs[kind] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    return procs


def stop_after(procs: dict, seconds: float) -> None:
    """Let the runs go for ``seconds``, then SIGTERM them (each checkpoints and exits) and wait."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(p.poll() is None for p in procs.values()):
        time.sleep(5)
    for p in procs.values():
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs.values():
        p.wait()


def run_figures(run: Path) -> dict:
    """Outer steps, inner steps and seconds of a run (from its metrics)."""
    from lopt_trainer.meta.metrics import read_metrics

    steps = [r for r in read_metrics(run) if r.get("kind") == "step"]
    return {"outer_steps": len(steps), "inner_steps": sum(r["inner_steps"] for r in steps),
            "step_seconds": sum(r["step_seconds"] for r in steps),
            "compile_seconds": sum(r["compile_seconds"] for r in steps),
            "meta_loss_first10": sum(r["meta_loss"] for r in steps[:10]) / max(1, len(steps[:10])),
            "meta_loss_last10": sum(r["meta_loss"] for r in steps[-10:]) / max(1, len(steps[-10:])),
            "nan_grads": sum(r["nan_grads"] for r in steps)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kinds", default="pes,backprop,hybrid")
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--config", default=str(RECIPE))
    p.add_argument("--set", dest="sets", action="append", default=[], help="extra meta-train settings")
    p.add_argument("--runs", default=str(ROOT / "runs" / "estimators"))
    p.add_argument("--resume", action="store_true", help="do not meta-train; score the runs already there")
    p.add_argument("--out", default=str(RESULTS_DIR / "estimators.json"))
    args = p.parse_args(argv)
    kinds = args.kinds.split(",")
    runs = Path(args.runs)
    runs.mkdir(parents=True, exist_ok=True)
    if not args.resume:
        stop_after(launch(kinds, args.config, runs, args.sets), args.minutes * 60)

    from lopt_trainer.evaluation.panel import (PanelSettings, evaluate_panel, paired_bootstrap, panel_tasks,
                                               task_scores)
    from lopt_trainer.evaluation.scoring import read_table
    from lopt_trainer.theta.load import load_theta

    settings = PanelSettings()
    tasks = panel_tasks(settings)
    scores, rows = {}, []
    for name in ["handset", *kinds]:
        theta = load_theta("handset" if name == "handset" else runs / name)
        folder = runs / "panel" / name
        figures = evaluate_panel(theta, tasks, settings, folder)
        scores[name] = task_scores(read_table(folder / "results.arrow"))
        row = {"theta": name, **figures, **({} if name == "handset" else run_figures(runs / name))}
        if name != "handset":
            row["vs_handset"] = paired_bootstrap(scores[name], scores["handset"])
        rows.append(row)
        print(json.dumps(row, sort_keys=True), flush=True)
    print(f"{'θ':<10} {'outer':>6} {'inner steps':>11} {'score':>7} {'vs hand-set [90% interval]':>30} "
          f"{'beats Global':>12} {'beats per-task':>14}")
    for r in rows:
        vs = r.get("vs_handset")
        cmp = f"{vs['mean']:+.3f} [{vs['low']:+.3f}, {vs['high']:+.3f}]" if vs else ""
        print(f"{r['theta']:<10} {r.get('outer_steps', 0):>6} {r.get('inner_steps', 0):>11} {r['score']:>7.3f} "
              f"{cmp:>30} {r['beats_global']:>12.2f} {r['beats_per_task']:>14.2f}")
    from lopt_trainer.common.run_files import write_json

    write_json(args.out, {"benchmark": "estimators_equal_wall_clock", "cpu": cpu_model(), "minutes": args.minutes,
                          "config": args.config, "sets": args.sets, "rows": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    main()
