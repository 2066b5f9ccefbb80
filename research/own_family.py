"""Meta-training on one family alone, judged on that family's held-out tasks: the user story, measured.

For each family, a suite of that family only is sampled (``taskgen sample``, fixed seed), the default recipe
meta-trains θ on its ``meta_train`` specs for ``--hours`` from the hand-set θ (the recipe's cost limits: at most
20000 parameters and 5e6 FLOPs per step), and the run's own panel judges the start θ and the last θ on up to
``--judge-tasks`` of its held-out (``meta_test``) specs, spread as the run's panel spreads them, 3 seeds, 1000 steps,
in the yardstick's normalized final loss with the AdamLR grid of those tasks computed once. Only the start and the
end are scored (no panel in between), so no θ is chosen on the judged tasks. Everything comes from the run's
``summary.json``: the last θ against the start θ and against Global AdamLR, paired over the tasks, 95 % intervals.

    python -m research.own_family [--families mlp,conv_pooling,softmax_regression] [--hours 0.5]

``softmax_regression`` is the template family of ``examples/family_template`` (put on the path and registered
through ``TASKGEN_PLUGINS``, as an installed plugin would be). Resumable: a finished run is read back, an
interrupted one continues for the time it has left. Runs go to ``runs/own_family/<family>/``; the table to
``research/results/own_family.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from research.common import RESULTS_DIR
from research.objectives import ARMS as OBJECTIVE_ARMS
from research.objectives import run_figures

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "examples" / "family_template"

FAMILIES = {
    "mlp": {"per_family": 500},
    "conv_pooling": {"per_family": 400},
    "softmax_regression": {"per_family": 250, "path": TEMPLATE, "plugin": "my_families.register"},
}
"""Family → how many specs to sample (enough for at least 40 held-out specs within the cost limits) and, for a
family outside the toolkit, where its package lies and the module that registers it."""

ARMS = {arm: OBJECTIVE_ARMS[arm] for arm in ("recipe", "final_sign")}
"""Arm → the recipe settings it changes (the objectives study's arms of the same names): the recipe itself, or the
final-loss objective at the judged horizon with each slot's loss difference reduced to its sign."""

LIMITS = {"max_params": 20_000, "max_flops": 5_000_000}
"""The recipe's cost limits, applied to the family's tasks (training and judged alike)."""


def family_env(family: str) -> dict:
    """The environment of the commands for ``family`` (the template family's package on the path)."""
    info = FAMILIES[family]
    env = dict(os.environ)
    if "path" in info:
        paths = [str(info["path"]), str(ROOT), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(x for x in paths if x)
        env["TASKGEN_PLUGINS"] = info["plugin"]
    return env


def sample_suite(family: str, folder: Path, seed: int) -> Path:
    """The family's suite ``folder/suite.jsonl`` (sampled once)."""
    suite = folder / "suite.jsonl"
    if not suite.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "taskgen_cli", "sample", "--families", family, "--per-family",
                        str(FAMILIES[family]["per_family"]), "--seed", str(seed), "-o", str(suite)],
                       cwd=ROOT, env=family_env(family), check=True, stdout=subprocess.DEVNULL)
    return suite


def meta_train(family: str, folder: Path, hours: float, judge_tasks: int, seed: int, arm: str = "recipe") -> Path:
    """Meta-train on the family's suite for ``hours`` with the settings of ``arm`` (:data:`ARMS`), in
    ``folder/run`` for the recipe and ``folder/run_<arm>`` otherwise (continued when it holds an unfinished run)."""
    run = folder / ("run" if arm == "recipe" else f"run_{arm}")
    summary = run / "summary.json"
    if summary.is_file() and json.loads(summary.read_text()).get("stop_reason") in ("time", "steps"):
        return run
    resuming = (run / "checkpoint.msgpack").is_file()
    left = hours - (run_figures(run)["step_seconds"] / 3600 if resuming else 0.0)
    suite = sample_suite(family, folder, seed)
    panel = {"on": "source", "max_tasks": judge_tasks}
    cmd = [sys.executable, "-m", "taskgen_cli", "lopt", "meta-train", "--suite", str(suite), "--out", str(run),
           "--max-params", str(LIMITS["max_params"]), "--max-flops", str(LIMITS["max_flops"]),
           "--steps", "1000000", "--hours", f"{max(left, 1e-3):.4f}", "--seed", str(seed),
           "--set", f"panel={json.dumps(panel)}", "--set", "panel_every=1000000", "--no-progress",
           *[x for k, v in ARMS[arm].items() for x in ("--set", f"{k}={json.dumps(v)}")]]
    if resuming:
        cmd.append("--resume")
    print(f"{family}: meta-training {left:.2f} h on {suite} ({arm})", flush=True)
    subprocess.run(cmd, cwd=ROOT, env=family_env(family), check=True)
    return run


def panel_tasks(run: Path, step: int) -> dict:
    """``{task_id: per-task row}`` of the run's panel evaluation at ``step`` (the start θ: step 0, or the hand-set
    θ's scores when the run started from it)."""
    for folder in [f"step_{step:06d}"] + (["handset"] if step == 0 else []):
        path = run / "panel" / folder / "yardstick.json"
        if path.is_file():
            return {r["task_id"]: r for r in json.loads(path.read_text())["per_task"]}
    return {}


def curve_difference(run: Path, last_step: int) -> dict | None:
    """The last θ's mean-over-curve normalized loss minus the start θ's, paired over the judged tasks (95 %),
    and how many tasks each θ's final loss is the lower on."""
    from lopt_trainer.evaluation import normalized as nz

    start, last = panel_tasks(run, 0), panel_tasks(run, last_step)
    shared = sorted(set(start) & set(last))
    if not shared:
        return None
    d = nz.paired_difference([last[t]["theta_curve"] for t in shared], [start[t]["theta_curve"] for t in shared])
    return {**d, "final_better_on": sum(last[t]["theta"] < start[t]["theta"] for t in shared),
            "final_worse_on": sum(last[t]["theta"] > start[t]["theta"] for t in shared)}


def result_row(family: str, run: Path, arm: str = "recipe") -> dict:
    """The family's row: the run's end summary in normalized-loss terms (lower is better)."""
    summary = json.loads((run / "summary.json").read_text())
    panel = summary["panel"]
    flip = lambda d: {"mean": -d["mean"], "low": -d["high"], "high": -d["low"], "tasks": d["tasks"]}  # noqa: E731
    return {"family": family, "arm": arm, "settings": ARMS[arm], "outer_steps": summary["step"],
            "step_seconds": summary["step_seconds"], "compile_seconds": summary["compile_seconds"],
            "panel_seconds": summary["panel_seconds"],
            "tasks": panel["last_vs_start"]["tasks"],
            "start_n": -panel["start_score"], "last_n": -panel["last_score"],
            "last_minus_start_n": flip(panel["last_vs_start"]),
            "last_minus_start_curve_n": curve_difference(run, summary["step"]),
            "last_minus_global_adamlr_n": flip(panel["last_vs_global_adamlr"])
            if "last_vs_global_adamlr" in panel else None,
            "verdict": panel["verdict"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", default=",".join(FAMILIES), help=f"Comma-separated, of {', '.join(FAMILIES)}.")
    ap.add_argument("--hours", type=float, default=0.5, help="Meta-training time per family (default 0.5).")
    ap.add_argument("--arms", default="recipe", help=f"Comma-separated, of {', '.join(ARMS)} (default recipe).")
    ap.add_argument("--judge-tasks", type=int, default=48, help="Held-out tasks judged, at most (default 48).")
    ap.add_argument("--seed", type=int, default=7, help="Suite and meta-training seed (default 7).")
    ap.add_argument("--runs", default=str(ROOT / "runs" / "own_family"), help="Folder of the runs.")
    ap.add_argument("--out", default=str(RESULTS_DIR / "own_family.json"), help="The table (JSON).")
    args = ap.parse_args(argv)
    families = [f for f in args.families.split(",") if f]
    arms = [a for a in args.arms.split(",") if a]
    unknown = [f for f in families if f not in FAMILIES] + [a for a in arms if a not in ARMS]
    if unknown or not args.hours > 0 or args.judge_tasks < 1:
        ap.error(f"--families takes {', '.join(FAMILIES)} and --arms {', '.join(ARMS)} (unknown: {unknown}); "
                 "--hours > 0; --judge-tasks ≥ 1")
    rows = []
    for family in families:
        for arm in arms:
            run = meta_train(family, Path(args.runs) / family, args.hours, args.judge_tasks, args.seed, arm)
            rows.append(result_row(family, run, arm))

    from lopt_trainer.common.machine import machine
    from lopt_trainer.common.run_files import write_json

    cell = lambda d: f"{d['mean']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]" if d else "-"  # noqa: E731
    print("mean normalized final loss n on each family's held-out tasks (lower is better; 95% paired intervals)")
    print(f"{'family':<20} {'arm':<11} {'outer':>6} {'tasks':>5} {'start n':>8} {'last n':>8}  {'last − start':>26}  "
          f"{'last − Global AdamLR':>26}  {'last − start, curve':>26}")
    for r in rows:
        print(f"{r['family']:<20} {r['arm']:<11} {r['outer_steps']:>6} {r['tasks']:>5} {r['start_n']:>8.4f} "
              f"{r['last_n']:>8.4f}  "
              f"{cell(r['last_minus_start_n']):>26}  {cell(r['last_minus_global_adamlr_n']):>26}  "
              f"{cell(r['last_minus_start_curve_n']):>26}")
    out = Path(args.out)
    kept = json.loads(out.read_text()).get("rows", []) if out.is_file() else []  # rows of other families and arms
    done = {(r["family"], r["arm"]) for r in rows}
    rows = [r for r in kept if (r["family"], r.get("arm", "recipe")) not in done] + rows
    write_json(out, {"study": "own_family", "hours": args.hours, "judge_tasks": args.judge_tasks,
                     "seed": args.seed, "limits": LIMITS, "arms": ARMS, "rows": rows, "machine": machine()})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
