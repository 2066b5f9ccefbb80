"""The pretraining recipe's throughput, this tree against another commit's, side by side on one machine.

Each code tree runs ``taskgen lopt meta-train`` on one recipe file for ``--steps`` outer steps from the same seed,
in its own process, with a fresh (cold) persistent compilation cache, no panel and no checkpoints; the trees run
one after the other, never together (the machine's two cores are the resource measured). From each run's
``metrics.jsonl``:

* ``effective_inner_steps_per_s``: inner steps (active particle steps) over the summed wall time of the outer
  steps, compiles and waits for compiles included: the figure that says how much meta-training an hour buys;
* ``run_inner_steps_per_s``: the same without the seconds the steps spent compiling or waiting for a compile;
* ``compile_s``: those seconds; ``first_step_s``; ``process_s``: the whole command, start-up included;
* ``distinct_tasks_per_step`` (min/mean) and ``families_per_step``.

Usage::

    python -m benchmarks.bench_recipe --baseline f8f0cb6 --steps 30
    python -m benchmarks.bench_recipe --baseline f8f0cb6 --config lopt_trainer/data/pretrain_config.json

``--baseline`` is checked out into a temporary git worktree (removed afterwards). ``--config`` (default: the
baseline's own recipe file, which both trees understand) is read by both trees; ``--set KEY=VALUE`` goes to
both. Results: printed table and ``benchmarks/results/recipe.json`` (with the CPU model and load averages).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import check_results_name, machine, print_table, save

ROOT = Path(__file__).resolve().parents[1]


def run_tree(tree: Path, config: Path, steps: int, sets: list[str], work: Path) -> dict:
    """Run the recipe in ``tree`` (its own code on ``PYTHONPATH``) and summarise its metrics."""
    run, cache = work / "run", work / "jax_cache"
    cmd = [sys.executable, "-m", "taskgen_cli", "lopt", "meta-train", "--config", str(config), "--steps", str(steps),
           "--out", str(run), "--set", "panel_every=0", "--set", "checkpoint_every=0", "--set", "eval_every=0",
           "--set", f'compilation_cache="{cache}"']
    for item in sets:
        cmd += ["--set", item]
    env = {**os.environ, "PYTHONPATH": str(tree), "JAX_PLATFORMS": "cpu"}
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    with open(work / "log.txt", "w") as log:
        subprocess.run(cmd, cwd=tree, env=env, check=True, stdout=log, stderr=subprocess.STDOUT)
    process_s = time.perf_counter() - t0
    return summarise(run / "metrics.jsonl") | {"process_s": process_s, "load_avg_before": load}


def summarise(metrics: Path) -> dict:
    """Throughput figures of a run's step records (see the module docstring)."""
    steps = [r for r in map(json.loads, metrics.read_text().splitlines()) if r.get("kind") == "step"]
    inner = sum(r["inner_steps"] for r in steps)
    wall = sum(r["step_seconds"] for r in steps)
    compile_s = sum(r["compile_seconds"] for r in steps)
    tasks = [len(r["tasks"]) for r in steps]
    return {"outer_steps": len(steps), "inner_steps": inner, "steps_wall_s": wall, "compile_s": compile_s,
            "first_step_s": steps[0]["step_seconds"] if steps else 0.0,
            "effective_inner_steps_per_s": inner / max(wall, 1e-9),
            "run_inner_steps_per_s": inner / max(wall - compile_s, 1e-9),
            "distinct_tasks_per_step_min": min(tasks, default=0),
            "distinct_tasks_per_step_mean": sum(tasks) / max(len(tasks), 1),
            "families_per_step_mean": sum(len(r["families"]) for r in steps) / max(len(steps), 1)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", default="f8f0cb6", help="commit to compare against")
    parser.add_argument("--steps", type=int, default=30, help="outer steps per run")
    parser.add_argument("--config", default=None, help="recipe file (default: the baseline's own)")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="KEY=VALUE for both runs")
    parser.add_argument("--name", default="recipe", help="results file name (benchmarks/results/NAME.json)")
    args = parser.parse_args(argv)
    check_results_name(parser, args.name)  # before an hour of runs
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_recipe_") as tmp:
        tmp = Path(tmp)
        base_tree = tmp / "baseline"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(base_tree), args.baseline], cwd=ROOT,
                       check=True)
        try:
            config = Path(args.config).resolve() if args.config else base_tree / "lopt_trainer/data/pretrain_config.json"
            for label, tree in ((f"baseline {args.baseline}", base_tree), (f"this tree {head}", ROOT)):
                work = tmp / ("run_" + label.split()[0])
                work.mkdir()
                print(f"running {label} …", flush=True)
                rows.append({"code": label, **run_tree(tree, config, args.steps, args.sets, work)})
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base_tree)], cwd=ROOT, check=False)
    base, new = rows
    ratios = {k: new[k] / base[k] for k in ("effective_inner_steps_per_s", "run_inner_steps_per_s") if base[k] > 0}
    print_table(f"recipe throughput, {args.steps} outer steps ({machine()['cpu_model']})",
                [{"code": r["code"], "eff steps/s": f"{r['effective_inner_steps_per_s']:.0f}",
                  "run steps/s": f"{r['run_inner_steps_per_s']:.0f}", "compile s": f"{r['compile_s']:.0f}",
                  "first step s": f"{r['first_step_s']:.0f}", "steps wall s": f"{r['steps_wall_s']:.0f}",
                  "tasks/step": f"{r['distinct_tasks_per_step_min']}-{r['distinct_tasks_per_step_mean']:.1f}"}
                 for r in rows])
    print("ratio this/baseline: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))
    save(args.name, rows, {"baseline": args.baseline, "head": head, "steps": args.steps,
                           "config": str(args.config or "baseline's lopt_trainer/data/pretrain_config.json"),
                           "sets": args.sets, "ratios": ratios, "load_avg_after": os.getloadavg()})
    return {"rows": rows, "ratios": ratios}


if __name__ == "__main__":
    main()
