"""Helpers shared by the speed benchmarks (and the studies of ``research/``): saving results as JSON and printing
them as a table."""

from __future__ import annotations

import json
import platform
import re
from pathlib import Path

__all__ = ["RESULTS_DIR", "check_results_name", "cpu_model", "machine", "name_problem", "print_table", "save",
           "save_figure"]

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a results file (``<results folder>/<name>.json``), or None when it can: letters,
    digits, ``_``, ``-`` and ``.`` only, not starting with ``.``."""
    if not re.fullmatch(r"[\w.-]+", name) or name.startswith("."):
        return f"{name!r}: use letters, digits, '_', '-' and '.' only (a file name in the results folder)"
    return None


def check_results_name(parser, name: str) -> None:
    """Exit through ``parser.error`` (status 2, nothing written) when ``name`` cannot name a results file
    (:func:`name_problem`): the ``--name`` check every benchmark with that option makes."""
    problem = name_problem(name)
    if problem:
        parser.error(f"--name {problem}")


def machine() -> dict:
    """A short description of the machine the figures were measured on: the library's
    (:func:`lopt_trainer.common.machine.machine`: CPU, cores, platform, Python, JAX, backend, device), with the CPU
    also under its older key ``cpu_model``."""
    from lopt_trainer.common.machine import machine as library_machine

    info = library_machine()
    return {**info, "cpu_model": info["cpu"]}


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def save(name: str, rows: list[dict], extra: dict | None = None, directory: Path | None = None) -> Path:
    """Write ``rows`` (plus machine info and ``extra``) to ``<directory>/<name>.json`` atomically; print a table.

    Args:
      name: the results file's name, without ``.json``.
      rows: the table's rows.
      extra: more top-level fields of the file.
      directory: the results folder (default :data:`RESULTS_DIR`, ``benchmarks/results/``).

    Returns:
      The path written.
    """
    from taskgen.specfile import atomic_write_bytes

    path = Path(directory if directory is not None else RESULTS_DIR) / f"{name}.json"
    payload = {"benchmark": name, "machine": machine(), "rows": rows, **(extra or {})}
    atomic_write_bytes(path, (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode())
    print_table(name, rows)
    print(f"saved {path}")
    return path


def print_table(title: str, rows: list[dict]) -> None:
    """Print ``rows`` as an aligned text table."""
    if not rows:
        print(f"{title}: no rows")
        return
    cols = list(rows[0])
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    widths = {c: max(len(c), *(len(fmt(r.get(c, ""))) for r in rows)) for c in cols}
    print(f"\n== {title} ==")
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(fmt(r.get(c, "")).ljust(widths[c]) for c in cols))


def save_figure(fig, path: Path) -> None:
    """Save a matplotlib figure as PNG at ``path`` atomically (a temporary file, then a rename) and say so."""
    tmp = Path(path).with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(path)
    print(f"saved {path}")
