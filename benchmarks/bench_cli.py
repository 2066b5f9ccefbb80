"""Benchmark: everyday commands as a user runs them (issue 12).

Each command runs as a real subprocess (``python -m taskgen_cli …`` from the repository root), warm caches (one
untimed run first), median of 5. Reported per command: wall seconds and CPU seconds (user + sys of the child,
which the background load of a shared host disturbs less than wall time). For ``build`` the figure is the time
to the first printed loss line. ``load_specs`` of the default suite is timed in process.

    python -m benchmarks.bench_cli [--repeats 5] [--out NAME]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import RESULTS_DIR, cpu_model, print_table

ROOT = Path(__file__).resolve().parent.parent

TARGETS = {"help": 0.3, "families": 0.5, "list": 0.5, "show": 0.5, "sample+export": 1.5,
           "build quadratic (first loss)": 2.0, "build mlp (first loss)": 2.0, "load_specs (in process)": 0.3}

COMMANDS = [
    ("help", [["--help"]]),
    ("families", [["families"]]),
    ("list", [["list", "--family", "mlp", "--max-params", "20000", "--split", "meta_train", "--limit", "5"]]),
    ("show", [["show", "quadratic-83941fda3522"]]),
    ("sample+export", [["sample", "--per-family", "500", "--seed", "0", "-o", "{tmp}/s.jsonl"],
                       ["export", "{tmp}/s.jsonl", "-o", "{tmp}/s.arrow"]]),
]
BUILDS = [("build quadratic (first loss)", ["build", "quadratic-83941fda3522", "--steps", "100"]),
          ("build mlp (first loss)", ["build", "mlp-0872ef388cec", "--steps", "100"])]


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _taskgen(args: list[str], tmp: str) -> list[str]:
    return [sys.executable, "-m", "taskgen_cli", *(a.format(tmp=tmp) for a in args)]


def time_commands(cmds: list[list[str]], tmp: str) -> tuple[float, float]:
    """Run ``cmds`` one after another; (wall s, CPU s) in all. A failing command is an error."""
    t0, c0 = time.perf_counter(), _children_cpu()
    for args in cmds:
        subprocess.run(_taskgen(args, tmp), cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0, _children_cpu() - c0


def time_first_loss(args: list[str], tmp: str) -> tuple[float, float]:
    """(wall s to the first printed loss line, CPU s of the whole command)."""
    c0 = time.perf_counter(), _children_cpu()
    proc = subprocess.Popen(_taskgen(args, tmp), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, bufsize=1)
    first = None
    for line in proc.stdout:
        if first is None and "loss" in line:
            first = time.perf_counter() - c0[0]
    if proc.wait() != 0 or first is None:
        raise RuntimeError(f"{' '.join(args)} failed or printed no loss")
    return first, _children_cpu() - c0[1]


def time_load_specs(repeats: int) -> list[tuple[float, float]]:
    """In-process (wall, CPU) seconds of ``taskgen.load_specs()`` (default suite), each in a fresh interpreter
    after ``import taskgen``."""
    code = ("import time, taskgen; from taskgen.api import load_specs; t, c = time.perf_counter(), "
            "time.process_time(); s=load_specs(); print(time.perf_counter()-t, time.process_time()-c, len(s))")
    out = []
    for _ in range(repeats):
        r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True)
        wall, cpu, _n = r.stdout.split()
        out.append((float(wall), float(cpu)))
    return out


def main(repeats: int = 5, out: str = "cli") -> None:
    """Time every command ``repeats`` times after one warm-up run; print a table; save ``results/<out>.json``."""
    env_note = {"JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "")}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, cmds in COMMANDS:
            time_commands(cmds, tmp)  # warm-up (page cache, compilation cache, .pyc)
            runs = [time_commands(cmds, tmp) for _ in range(repeats)]
            rows.append(_row(name, runs))
        for name, args in BUILDS:
            time_first_loss(args, tmp)
            runs = [time_first_loss(args, tmp) for _ in range(repeats)]
            rows.append(_row(name, runs))
    load = time_load_specs(repeats + 1)[1:]
    rows.append(_row("load_specs (in process)", load))
    machine = {"cpu_model": cpu_model(), "cpus": os.cpu_count(), "platform": platform.platform(),
               "python": platform.python_version(), "load_average": os.getloadavg(), **env_note}
    _save(out, rows, {"machine": machine, "repeats": repeats, "statistic": "median"})


def _row(name: str, runs: list[tuple[float, float]]) -> dict:
    wall = statistics.median(r[0] for r in runs)
    cpu = statistics.median(r[1] for r in runs)
    return {"command": name, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "target_s": TARGETS[name],
            "meets_target": wall <= TARGETS[name] or cpu <= TARGETS[name]}


def _save(name: str, rows: list[dict], extra: dict) -> None:
    import json

    from taskgen.specfile import atomic_write_bytes

    path = RESULTS_DIR / f"{name}.json"
    payload = {"benchmark": "cli", "rows": rows, **extra}
    atomic_write_bytes(path, (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode())
    print_table(f"cli ({extra['machine']['cpu_model']})", rows)
    print(f"saved {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="cli", help="results/<OUT>.json")
    a = parser.parse_args()
    main(a.repeats, a.out)
