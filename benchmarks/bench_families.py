"""Benchmark: per family, build + compile + 100 Adam steps on a sample of default-suite specs; and the suite's
distribution of per-step cost (measured ms over the sample, analytic FLOPs over all 6000 specs).

    python -m benchmarks.bench_families [--per-family 4] [--steps 100]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.common import save
from taskgen.api import build_task, default_suite_path
from taskgen.manifest import load_manifest, specs_from_manifest
from taskgen.quickstep import adam_losses


def _quantiles(x) -> dict:
    x = np.asarray(x, dtype=float)
    return {"median": float(np.median(x)), "p90": float(np.quantile(x, 0.9))}


def main(argv=None) -> None:
    """Measure every family on ``--per-family`` specs (every ``500/n``-th spec of the family in suite order)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-family", type=int, default=4)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args(argv or [])
    from taskgen.jax_cache import enable_compilation_cache

    enable_compilation_cache()
    table = load_manifest(default_suite_path().with_suffix(".arrow"))
    specs = specs_from_manifest(table)
    rows, step_ms = [], []
    for family in sorted({s.family for s in specs}):
        members = [s for s in specs if s.family == family]
        sample = members[:: max(1, len(members) // args.per_family)][: args.per_family]
        for spec in sample:
            t0 = time.perf_counter()
            task = build_task(spec)
            t1 = time.perf_counter()
            adam_losses(task, args.steps)  # first call: trace + compile + run
            t2 = time.perf_counter()
            losses = adam_losses(task, args.steps)  # compiled: run only
            t3 = time.perf_counter()
            ms = 1000 * (t3 - t2) / args.steps
            step_ms.append(ms)
            rows.append({"family": family, "task_id": spec.task_id, "build_s": t1 - t0,
                         "compile_s": max(0.0, (t2 - t1) - (t3 - t2)), "run_100_s": t3 - t2, "step_ms": ms,
                         "loss_first": float(losses[0]), "loss_last": float(losses[-1])})
            print(f"{spec.task_id:<40} build {t1 - t0:6.2f}s compile {rows[-1]['compile_s']:6.2f}s "
                  f"step {ms:7.3f}ms", flush=True)
    flops = table["flops_per_step"].to_numpy()
    per_family = {}
    for r in rows:
        per_family.setdefault(r["family"], []).append(r["step_ms"])
    summary = {"measured_step_ms": _quantiles(step_ms), "analytic_flops_per_step": _quantiles(flops),
               "per_family_step_ms": {f: _quantiles(v) for f, v in per_family.items()}}
    save("families", rows, {"summary": summary, "steps": args.steps})
    print(f"suite per-step cost: measured median {summary['measured_step_ms']['median']:.2f} ms, "
          f"p90 {summary['measured_step_ms']['p90']:.2f} ms; analytic FLOPs median "
          f"{summary['analytic_flops_per_step']['median']:.3g}, p90 {summary['analytic_flops_per_step']['p90']:.3g}")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
