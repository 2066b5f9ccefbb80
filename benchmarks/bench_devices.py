"""Several devices in one process: an evaluation unit and a meta-training step on 1 device against N.

Each device count runs in its own child process, one after the other on this machine: on the CPU the host is split
into N devices (``XLA_FLAGS=--xla_force_host_platform_device_count=N``), on an accelerator the first N are made
visible (``CUDA_VISIBLE_DEVICES``). Measured, compile excluded (each is run once to warm up, then the median of
``--reps``):

1. ``eval_s``: one AdamLR grid unit of the yardstick (14 learning rates × 3 seeds, ``--steps`` steps) on an MLP task
   of the default suite, as :func:`lopt_trainer.evaluation.compute.compute_unit` runs it (rows split over the
   devices);
2. ``meta_step_s``: one PES outer step of 2 estimators × 8 slots on MLP tasks of the default suite (≤ 5000
   parameters; slots split over the devices).

``speedup`` is the 1-device time over the N-device time. Results: printed table + ``benchmarks/results/devices.json``.

Usage: ``python -m benchmarks.bench_devices [--devices 1,2] [--steps 300] [--reps 3]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.common import save

ROOT = Path(__file__).resolve().parent.parent

_CHILD = r"""
import json, statistics, sys, tempfile, time
import jax
import taskgen
from lopt_trainer.evaluation.compute import compute_unit
from lopt_trainer.evaluation.settings import EvalSettings, RunUnit
from lopt_trainer.meta.config import MetaTrainConfig
from lopt_trainer.meta.trainer import meta_train
from lopt_trainer.common.task_pool import within_limits

steps, reps = int(sys.argv[1]), int(sys.argv[2])
spec = [s for s in taskgen.load_specs(None) if s.family == "mlp" and s.split == "meta_train"][0]
task = taskgen.build_task(spec)
settings = EvalSettings(steps=steps, seeds=3, baselines=("adamlr",), adamlr_trials=14)
unit = RunUnit(spec.task_id, spec.to_json(), "adamlr", tuple(range(14)), (0, 1, 2))
compute_unit(unit, settings, task=task)  # compile
times = []
for _ in range(reps):
    t0 = time.perf_counter()
    compute_unit(unit, settings, task=task)
    times.append(time.perf_counter() - t0)
cfg = MetaTrainConfig(steps=2 + reps, num_groups=2, tasks_per_group=8, truncation=20, horizon_min=200,
                      horizon_max=400, eval_every=0, checkpoint_every=0, compilation_cache="", prefetch_steps=0)
with tempfile.TemporaryDirectory() as run:
    specs = [s for s in taskgen.load_specs(None) if s.family == "mlp" and s.split == "meta_train"
             and within_limits(s, 5000, 5_000_000, taskgen.default_registry())]
    meta_train(cfg, run, specs=specs, progress=False)
    records = [json.loads(line) for line in open(run + "/metrics.jsonl")]
step_s = [r["step_seconds"] - r["compile_seconds"] for r in records if r.get("kind") == "step"][2:]
print(json.dumps({"devices": jax.local_device_count(), "platform": jax.devices()[0].platform,
                  "eval_s": statistics.median(times), "meta_step_s": statistics.median(step_s)}))
"""


def _child_env(n: int, platform: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if platform == "cpu":
        flags = [f for f in env.get("XLA_FLAGS", "").split() if "device_count" not in f]
        env["XLA_FLAGS"] = " ".join(flags + [f"--xla_force_host_platform_device_count={n}"])
    else:  # the first n of the devices this process may use
        visible = [d for d in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
        env["CUDA_VISIBLE_DEVICES"] = ",".join(visible[:n] if visible else (str(i) for i in range(n)))
    return env


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", default="1,2", help="Device counts to compare, comma-separated (default 1,2).")
    ap.add_argument("--steps", type=int, default=300, help="Inner steps of the AdamLR unit (default 300).")
    ap.add_argument("--reps", type=int, default=3, help="Timed repetitions after the warm-up (default 3).")
    args = ap.parse_args(argv)
    counts = [int(c) for c in args.devices.split(",") if c.strip()]
    import jax

    platform = jax.devices()[0].platform
    rows = []
    for n in counts:
        done = subprocess.run([sys.executable, "-c", _CHILD, str(args.steps), str(args.reps)], cwd=ROOT,
                              env=_child_env(n, platform), capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            return 1
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    base = rows[0]
    for r in rows:
        r["eval_speedup"] = base["eval_s"] / r["eval_s"]
        r["meta_speedup"] = base["meta_step_s"] / r["meta_step_s"]
    save("devices", rows, {"steps": args.steps, "reps": args.reps})
    return 0


if __name__ == "__main__":
    sys.exit(main())
