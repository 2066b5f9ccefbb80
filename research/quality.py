"""Quality benchmark: a learned optimizer θ against AdamLR on held-out tasks (not a test; numbers are reported).

Runs ``taskgen lopt eval`` machinery (:func:`lopt_trainer.evaluation.run_evaluation`) on ``--tasks`` tasks of
the suite — half ``meta_train`` (only used to choose Global AdamLR's one learning rate), half ``meta_test``
(the *unseen* tasks, including held-out family variants) — at ``--steps`` inner steps (default 1000), and
reports on the unseen tasks the fraction where the learned optimizer's final normalised test loss beats

* Global AdamLR (one learning rate for all tasks, chosen on the seen tasks) — target ≥ 60%, with a median
  improvement over it > 0;
* per-task AdamLR with 14 trials (the best of the 14-point grid on each task) — target ≥ 25%;

and that no unseen task diverges. AdamLR runs come from the baseline cache
(:mod:`lopt_trainer.evaluation.records`), so comparing several θ costs the grid once.

"Beats" = improvement > 0 (see :mod:`lopt_trainer.evaluation.scoring`; per task averaged over seeds; a
diverged learned-optimizer run counts as the task's worst loss). Only AdamLR is run unless ``--all-baselines``.
Results: printed table + ``research/results/<label>.json`` and its box plots (``<label>_boxplot_*.png``;
``--label`` defaults to ``quality``); the evaluation folder (``--out``, resumable with ``--resume``) holds the full
table and the box plots.

Usage: ``python -m research.quality --theta THETA.npz [--label quality] [--tasks 40]
[--steps 1000] [--seeds 2] [--workers 2] [--suite S.jsonl] [--out runs/bench_quality] [--resume]
[--against research/results/quality_handset.json]``.

The JSON also keeps each task's learned-optimizer result (``lopt_tasks``: final normalised loss, score over Global
AdamLR, divergences; :func:`lopt_trainer.evaluation.compare.lopt_tasks`), so two θ measured on the same tasks can
be compared task by task later (``--against``, and the ship gate's "ahead of the hand-set θ" check).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

TARGETS = {"global_adamlr": 0.60, "per_task_adamlr@14": 0.25}


def main(argv=None) -> int:
    """Run the benchmark; returns the exit status."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--theta", required=True, help="θ: reference-layout .npz, a meta-training run folder, or "
                   "'handset' / 'random' (the untrained hand-set or random θ of seed 0)")
    p.add_argument("--tasks", type=int, default=40, help="tasks in all (half seen, half unseen)")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--label", default="quality", help="name of the results file (research/results/LABEL.json)")
    p.add_argument("--task-seed", type=int, default=0)
    p.add_argument("--max-params", type=int, default=20_000)
    p.add_argument("--max-flops", type=int, default=5_000_000)
    p.add_argument("--suite", default=None, help="spec file (default: the shipped suite)")
    p.add_argument("--manifest", default=None)
    p.add_argument("--workers", type=int, default=0, help="Ray workers (0 = in process)")
    p.add_argument("--all-baselines", action="store_true", help="also run Adam8p and opt_list (1 and 10 trials)")
    p.add_argument("--out", default="runs/bench_quality")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--against", action="append", default=[], metavar="RESULT.json",
                   help="an earlier result of this benchmark (another θ, same tasks): report the paired per-task "
                   "comparison with it (repeatable)")
    args = p.parse_args(argv)
    from lopt_trainer.evaluation.compare import check_lopt_tasks

    against = {}
    for path in args.against:  # read first: a bad file fails before an hour of evaluation
        try:
            theirs = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            p.error(f"--against {path}: cannot be read ({e})")
        try:
            check_lopt_tasks(theirs)
        except ValueError as e:
            p.error(f"--against {path}: not a quality result with per-task results: {e}")
        against[path] = theirs

    from research.common import save
    from lopt_trainer.common.run_files import write_command
    from lopt_trainer.common.task_pool import load_pool
    from lopt_trainer.evaluation import EvalSettings, run_evaluation
    from lopt_trainer.evaluation.compare import lopt_tasks, paired_comparison
    from lopt_trainer.evaluation.scoring import read_table
    from lopt_trainer.evaluation.tasks import held_out_variants, select_tasks
    from lopt_trainer.theta.load import load_theta, theta_digest
    from lopt_trainer.theta.names import theta_label

    pool = load_pool(args.suite, args.manifest)
    tasks = select_tasks(pool, args.tasks, args.task_seed, max_params=args.max_params, max_flops=args.max_flops)
    settings = EvalSettings(steps=args.steps, seeds=args.seeds, trials=(1, 10), adamlr_trials=14,
                            baselines=("adamlr", "adam8p", "opt_list") if args.all_baselines else ("adamlr",))
    ids = {t.task_id for t in tasks}
    for path, theirs in against.items():
        if theirs.get("settings") != settings.to_dict() or set(theirs["lopt_tasks"]) != ids:
            p.error(f"--against {path}: measured on other tasks or with other settings than this run "
                    f"({len(set(theirs['lopt_tasks']) & ids)} of {len(ids)} tasks shared)")
    t0 = time.perf_counter()
    theta = load_theta(args.theta)
    summary = run_evaluation(theta, tasks, args.out, settings, workers=args.workers,
                             resume=args.resume, theta_path=args.theta)
    wall = time.perf_counter() - t0
    write_command(args.out, [sys.executable, *sys.argv])
    rows = []
    for r in summary["rows"]:
        rows.append({"baseline": r["optimizer"], "group": r["group"], "tasks": r["n_tasks"],
                     "frac_lopt_better": r["frac_lopt_better"], "median_improvement": r["final"]["median"],
                     "median_improvement_auc": r["auc"]["median"], "median_speedup": r["speedup_median"],
                     "target": TARGETS.get(r["optimizer"]) if r["group"] == "unseen" else None})
    unseen = {r["baseline"]: r["frac_lopt_better"] for r in rows if r["group"] == "unseen"}
    verdict = {k: {"target": v, "measured": unseen.get(k), "met": (unseen.get(k) or 0.0) >= v}
               for k, v in TARGETS.items()}
    median = next((r["median_improvement"] for r in rows
                   if r["group"] == "unseen" and r["baseline"] == "global_adamlr"), None)
    verdict["median_improvement_global_adamlr"] = {"target": "> 0", "measured": median,
                                                   "met": median is not None and median > 0}
    unseen_div = unseen_divergences(args.out)
    verdict["unseen_diverged"] = {"target": 0, "measured": unseen_div, "met": unseen_div == 0}
    mine = lopt_tasks(read_table(Path(args.out) / "results.arrow"))
    paired = {path: {"theta": theirs.get("theta"), "theta_digest": theirs.get("theta_digest"),
                     **{grp: paired_comparison(mine, theirs["lopt_tasks"], grp) for grp in ("seen", "unseen")}}
              for path, theirs in against.items()}
    save(args.label, rows, {"theta": theta_label(args.theta), "theta_digest": theta_digest(theta),
                           "settings": settings.to_dict(), "lopt_tasks": mine, "paired": paired,
                           "n_tasks": summary["n_tasks"], "held_out_variants": held_out_variants(tasks, pool),
                           "lopt_divergence": summary["lopt"], "targets": verdict, "wall_s": wall,
                           "eval_dir": os.path.abspath(args.out)})
    from research.common import RESULTS_DIR
    from taskgen.specfile import atomic_write_bytes

    for plot in sorted(Path(args.out).glob("boxplot_*.png")):  # the figures next to the numbers
        atomic_write_bytes(RESULTS_DIR / f"{args.label}_{plot.name}", plot.read_bytes())
    for k, v in verdict.items():
        print(f"{k} (unseen tasks): {v['measured']} (target {v['target']}{', met' if v['met'] else ', NOT met'})")
    for path, by_group in paired.items():
        u = by_group["unseen"]
        d = u["score_diff"]
        print(f"against {path} (unseen tasks): ahead on {u['ahead']}/{u['tasks']} ({u['frac_ahead']:.0%}), "
              f"score difference {d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] (paired bootstrap 90%)")
    return 0


def unseen_divergences(out_dir) -> int:
    """Learned-optimizer runs on unseen tasks that diverged, from the evaluation's results table."""
    from lopt_trainer.evaluation.scoring import read_table

    cols = read_table(Path(out_dir) / "results.arrow").select(["optimizer", "group", "diverged"]).to_pydict()
    return int(sum(d for o, g, d in zip(cols["optimizer"], cols["group"], cols["diverged"])
                   if o == "lopt" and g == "unseen"))


if __name__ == "__main__":
    sys.exit(main())
