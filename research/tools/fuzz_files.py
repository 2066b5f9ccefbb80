"""Fuzz the files the toolkit reads back, at scale: manifests and spec files built from the shipped suite.

``python -m research.tools.fuzz_files [--manifests 1000] [--specs 2000] [--seed 0]`` runs the seeded cases of
:mod:`tests.fuzz_cases` in worker processes (a case that kills its worker with a signal is counted as a crash and
the run goes on), prints a table of outcomes per mutation kind, and saves ``research/results/fuzz_files.json``.
Crashes (any exception other than the toolkit's own errors, or a signal), accepted-invalid files, errors that do
not name the file, over-long messages and faithful rewrites refused must all be 0; the exit status is 1 otherwise.
CI runs a few hundred cases of each (``tests/test_manifest_robustness.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

from research.common import RESULTS_DIR, cpu_model, print_table

FAILURES = ("crash", "accepted-invalid", "unnamed error", "long message", "refused-valid")


def main(manifests: int = 1000, specs: int = 2000, seed: int = 0, out: str = "fuzz_files") -> int:
    """Run the fuzz; returns the number of failing cases."""
    from tests.fuzz_cases import run_cases, tally

    rows, summary, failing = [], {}, []
    for what, n in (("manifests", manifests), ("specs", specs)):
        start = time.perf_counter()
        results = run_cases(what, n, seed=seed)
        wall = time.perf_counter() - start
        counts = tally(results)
        outcomes = counts["outcomes"]
        summary[what] = {"cases": n, "wall_s": round(wall, 2), "outcomes": outcomes, "by_kind": counts["by_kind"],
                         "crashes": outcomes.get("crash", 0),
                         "accepted_invalid": outcomes.get("accepted-invalid", 0)}
        failing += [dict(r, what=what) for r in results if r["outcome"] in FAILURES]
        kinds = sorted({k.split("|")[0] for k in counts["by_kind"]})
        for kind in kinds:
            row = {"files": what, "mutation": kind}
            for outcome in ("refused", "accepted", *FAILURES):
                row[outcome] = counts["by_kind"].get(f"{kind}|{outcome}", 0)
            rows.append(row)
        rows.append({"files": what, "mutation": "ALL", **{o: outcomes.get(o, 0)
                                                         for o in ("refused", "accepted", *FAILURES)}})
    path = RESULTS_DIR / f"{out}.json"
    payload = {"benchmark": "fuzz_files", "seed": seed, "summary": summary, "rows": rows, "failing": failing[:50],
               "command": f"python -m research.tools.fuzz_files --manifests {manifests} --specs {specs} --seed {seed}",
               "machine": {"cpu_model": cpu_model(), "cpus": os.cpu_count(), "platform": platform.platform(),
                           "python": platform.python_version()}}
    from taskgen.specfile import atomic_write_bytes

    atomic_write_bytes(path, (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode())
    print_table(f"fuzz_files (seed {seed})", rows)
    for what, s in summary.items():
        print(f"{what}: {s['cases']} cases in {s['wall_s']} s; crashes {s['crashes']}, accepted-invalid "
              f"{s['accepted_invalid']}")
    for r in failing[:10]:
        print("FAILING", r)
    print(f"saved {path}")
    return len(failing)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifests", type=int, default=1000)
    parser.add_argument("--specs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="fuzz_files", help="results/<OUT>.json")
    a = parser.parse_args()
    sys.exit(1 if main(a.manifests, a.specs, a.seed, a.out) else 0)
