"""Two panel evaluations paired task by task: the verdict of a branch experiment (a recipe change tried from one
θ against the run it branched from, at equal outer steps).

Each ``--pair NAME A_DIR B_DIR`` names two panel evaluation folders of the same panel tasks (``RUN/panel/step_N``
of a meta-training run, or a ``taskgen lopt panel --out`` folder). For each pair it reports both panel scores (the
mean over tasks of the improvement over Global AdamLR, clipped to ±3: :func:`~lopt_trainer.evaluation.panel.
task_scores`), the mean of ``A − B`` over the tasks with a paired bootstrap 90% interval
(:func:`~lopt_trainer.evaluation.panel.paired_bootstrap`; above 0: A is better beyond the task-to-task noise),
and the mean difference per family (where a recipe gains or loses).

Usage: ``python -m research.compare_panels --pair NAME A_DIR B_DIR [--pair ...] [--name compare_panels]``.
Writes ``research/results/<name>.json`` (``rows``: the figures; ``pairs``: the same with the folders and the per-family
differences). A folder without a results table, or two folders of different task
sets, stops with a message naming it (exit 2) before anything is written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from research.common import check_results_name, save


def panel_scores(eval_dir) -> tuple[dict[str, float], dict[str, str]]:
    """``(task scores, task families)`` of a panel evaluation folder; ``ValueError`` naming a folder without a
    readable results table."""
    from lopt_trainer.evaluation.panel import task_scores
    from lopt_trainer.evaluation.runner import RESULTS_FILE
    from lopt_trainer.evaluation.scoring import read_table

    path = Path(eval_dir) / RESULTS_FILE
    try:
        table = read_table(path)
    except (OSError, ValueError) as e:
        raise ValueError(f"{eval_dir}: no readable panel results ({path.name}): {e}") from None
    cols = table.select(["task_id", "family"]).to_pydict()
    return task_scores(table), dict(zip(cols["task_id"], cols["family"]))


def compare_pair(name: str, a_dir, b_dir) -> dict:
    """One row: both scores, ``a − b`` with its paired interval, and the per-family mean differences.
    ``ValueError`` when the two folders hold different panel tasks."""
    from lopt_trainer.evaluation.compare import family_scores
    from lopt_trainer.evaluation.panel import paired_bootstrap

    a, families = panel_scores(a_dir)
    b, _ = panel_scores(b_dir)
    if set(a) != set(b):
        raise ValueError(f"{name}: {a_dir} and {b_dir} hold different panel tasks ({len(a)} and {len(b)}, "
                         f"{len(set(a) & set(b))} shared); compare evaluations of one panel")
    diff = paired_bootstrap(a, b)
    by_family = family_scores({t: {"group": "panel", "family": families[t], "score": a[t] - b[t]} for t in a}, None)
    return {"pair": name, "a": str(a_dir), "b": str(b_dir), "tasks": len(a),
            "score_a": float(np.mean(list(a.values()))), "score_b": float(np.mean(list(b.values()))),
            "diff": diff["mean"], "low": diff["low"], "high": diff["high"],
            "by_family": {f: round(v["score"], 4) for f, v in by_family.items()}}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pair", nargs=3, action="append", required=True, metavar=("NAME", "A_DIR", "B_DIR"),
                        help="two panel evaluation folders to compare (repeatable)")
    parser.add_argument("--name", default="compare_panels", help="results file name (research/results/NAME.json)")
    args = parser.parse_args(argv)
    check_results_name(parser, args.name)
    try:
        rows = [compare_pair(*pair) for pair in args.pair]
    except ValueError as e:
        parser.exit(2, f"error: {e}\n")
    families = sorted({f for r in rows for f in r["by_family"]})
    table = [{k: r[k] for k in ("pair", "tasks", "score_a", "score_b", "diff", "low", "high")} for r in rows]
    save(args.name, table, {"pairs": rows})
    print("\nmean score difference A − B by family:")
    print(f"{'family':24s} " + " ".join(f"{r['pair']:>12s}" for r in table))
    for f in families:
        print(f"{f:24s} " + " ".join(f"{r['by_family'].get(f, float('nan')):+12.2f}" for r in rows))


if __name__ == "__main__":
    main()
