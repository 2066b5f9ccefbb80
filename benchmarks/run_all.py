"""Run the speed benchmarks (``benchmarks/bench_*.py``) in turn; ``python -m benchmarks.run_all [NAME...]``.

Every module here measures speed; the studies that measure findings (and need a θ named) live in ``research/``.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

__all__ = ["default_names", "main"]


def default_names() -> list[str]:
    """The benchmarks a run without names runs: every ``bench_*.py`` of this folder, sorted."""
    return sorted(p.stem for p in Path(__file__).parent.glob("bench_*.py"))


def main(argv: list[str]) -> int:
    """Run the named benchmarks (default: all); returns the number that failed."""
    names = argv or default_names()
    failed = 0
    for name in names:
        print(f"\n##### {name}", flush=True)
        argv_before = sys.argv
        sys.argv = [name]  # each benchmark parses its own (empty) command line, not this one's names
        try:
            importlib.import_module(f"benchmarks.{name}").main()
        except (Exception, SystemExit) as e:  # keep going: one broken benchmark should not hide the others' figures
            if isinstance(e, SystemExit) and not e.code:
                continue
            failed += 1
            print(f"{name} FAILED: {type(e).__name__}: {e}", flush=True)
        finally:
            sys.argv = argv_before
    return failed


if __name__ == "__main__":
    sys.exit(1 if main(sys.argv[1:]) else 0)
