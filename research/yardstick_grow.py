"""Grow the yardstick's frozen sets to the blocks of ``task_sets.LAYOUT`` and pack their baselines (resumable).

1. Samples the sets with the current ``LAYOUT`` and checks that every frozen file is a prefix of its new one (sets
   only grow; a set that would change its old tasks is refused, nothing written).
2. Gathers the AdamLR grid records of the sets' tasks from ``--from`` folders (each ``<folder>/runs/*.json``, as
   ``taskgen lopt yardstick baselines`` and ``research.yardstick_extra_baselines`` leave them) into one work folder
   per set, computes whatever task is still missing, and packs the tables; the sets and their tables replace the
   package's (``lopt_trainer/data/yardstick/``) together, only when all are made.

    python -m research.yardstick_grow --from runs/yardstick/baselines_valid --from runs/yardstick/baselines_test \\
        --from runs/yardstick/extra_baselines [--work runs/yardstick/grown]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from lopt_trainer.common.run_files import write_files_together
from lopt_trainer.evaluation import baseline_table as bt
from lopt_trainer.evaluation import task_sets as ts
from lopt_trainer.evaluation.tasks import EvalTask
from taskgen import default_registry, load_specs
from taskgen.specfile import specs_to_jsonl

ROOT = Path(__file__).resolve().parent.parent


def grown_sets() -> dict:
    """The sets of ``LAYOUT``; ``SystemExit`` when a frozen set is not a prefix of its grown one."""
    sets = ts.sample_task_sets(load_specs())
    for name in ts.SET_NAMES:
        old = (ts.DATA_DIR / f"{name}.jsonl").read_bytes()
        if not specs_to_jsonl(sets[name]).startswith(old):
            raise SystemExit(f"set {name!r}: the frozen file is not a prefix of the grown set; nothing written")
    return sets


def gather(sources, work: Path, task_ids) -> int:
    """Copy the record files of ``task_ids`` found in ``sources`` into ``work/runs``; returns how many."""
    (work / "runs").mkdir(parents=True, exist_ok=True)
    copied = 0
    for src in sources:
        for path in sorted(Path(src, "runs").glob("*.json")):
            if any(path.name.startswith(f"{tid}.") for tid in task_ids) and not (work / "runs" / path.name).exists():
                shutil.copy2(path, work / "runs" / path.name)
                copied += 1
    return copied


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="sources", action="append", default=[], help="A folder of grid records (repeat).")
    ap.add_argument("--work", default=str(ROOT / "runs" / "yardstick" / "grown"), help="Work folders' parent.")
    args = ap.parse_args(argv)
    sets = grown_sets()
    registry = default_registry()
    with tempfile.TemporaryDirectory() as tmp:  # the grown sets and their tables, staged before any is committed
        index = ts.write_task_sets(sets, tmp)
        for name in ts.SET_NAMES:
            work = Path(args.work) / name
            ids = [s.task_id for s in sets[name]]
            print(f"{name}: {len(ids)} tasks; {gather(args.sources, work, ids)} record files gathered", flush=True)
            tasks = [EvalTask(s, name, registry.get(s.family).variant(s.config)) for s in sets[name]]
            bt.compute_baselines(name, work, tasks=tasks)
            bt.write_baselines(name, work, data_dir=tmp)
        names = [ts.INDEX_FILE, *(f"{n}.jsonl" for n in ts.SET_NAMES),
                 *(bt.table_path(n, tmp).name for n in ts.SET_NAMES)]
        write_files_together(ts.DATA_DIR, {n: (Path(tmp) / n).read_bytes() for n in names})
    print(f"wrote {', '.join(names)} into {ts.DATA_DIR}: " +
          ", ".join(f"{n} {index['sets'][n]['tasks']} tasks" for n in ts.SET_NAMES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
