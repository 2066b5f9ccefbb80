"""Benchmark: sampling the default-size suite (6000 specs) and exporting its Arrow manifest."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from benchmarks.common import save
from taskgen.manifest import write_manifest
from taskgen.registry import default_registry
from taskgen.specfile import write_specs
from taskgen.suite import generate_suite


def main(total: int = 6000, repeats: int = 3) -> None:
    """Time sample + write + export of ``total`` specs over every registered family; best of ``repeats``."""
    names = default_registry().names()
    per_family = total // len(names)
    for name in names:  # import the family modules (and jax) outside the timed region
        default_registry().get(name)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            t0 = time.perf_counter()
            specs = generate_suite(names, per_family)
            t1 = time.perf_counter()
            write_specs(specs, Path(tmp) / "suite.jsonl")
            t2 = time.perf_counter()
            write_manifest(specs, Path(tmp) / "manifest.arrow")
            t3 = time.perf_counter()
            rows.append({"specs": len(specs), "families": len(names), "sample_s": t1 - t0, "write_s": t2 - t1,
                         "export_s": t3 - t2, "total_s": t3 - t0})
    best = min(rows, key=lambda r: r["total_s"])
    save("suite", rows, {"best_total_s": best["total_s"], "target_s": 3.0})


if __name__ == "__main__":
    main()
