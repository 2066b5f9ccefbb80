"""AdamLR baselines for the yardstick's next tasks, computed ahead of enlarging its sets (resumable).

The sets' seed stream continues past the tasks the frozen sets hold (positions 0–29 of each family's stream, see
``task_sets.LAYOUT``); this computes the 14-point AdamLR grid (3 seeds, 1000 steps: the committed tables' settings)
for the next ``--extra`` tasks of each family, one resumable record file per task, so that enlarged sets can be
frozen with their baselines at once (``research.yardstick_grow``). Nothing here changes the frozen sets.

    python -m research.yardstick_extra_baselines [--extra 20] [--work runs/yardstick/extra_baselines]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
from lopt_trainer.evaluation import baseline_table as bt
from lopt_trainer.evaluation import task_sets as ts
from lopt_trainer.evaluation.tasks import EvalTask
from taskgen import default_registry, load_specs


def extra_tasks(extra: int) -> list[EvalTask]:
    """The next ``extra`` tasks of each family's stream after those the frozen sets hold, family by family."""
    sets = ts.sample_task_sets(load_specs(), layout=ts.LAYOUT + (("test", extra),))  # the positions after LAYOUT's
    frozen = {s.task_id for name in ts.SET_NAMES for s in ts.load_task_set(name)}
    registry = default_registry()
    new = [s for s in sets["test"] if s.task_id not in frozen]
    return [EvalTask(s, "extra", registry.get(s.family).variant(s.config)) for s in new]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--extra", type=int, default=20, help="Next tasks per family (default 20).")
    ap.add_argument("--work", default=str(ROOT / "runs" / "yardstick" / "extra_baselines"))
    args = ap.parse_args(argv)
    tasks = extra_tasks(args.extra)
    print(f"{len(tasks)} tasks beyond the frozen sets; records in {args.work}", flush=True)
    bt.compute_baselines("extra", args.work, tasks=tasks, desc=f"AdamLR baselines for {len(tasks)} next tasks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
