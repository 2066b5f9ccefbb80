"""Helpers shared by the studies: their results saved as JSON under ``research/results/`` and printed as a table.

The writing and printing are the speed benchmarks' (:mod:`benchmarks.common`); only the folder differs.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks import common as _benchmarks
from benchmarks.common import check_results_name, cpu_model, machine, name_problem, print_table, save_figure

__all__ = ["RESULTS_DIR", "check_results_name", "cpu_model", "machine", "name_problem", "print_table", "save",
           "save_figure"]

RESULTS_DIR = Path(__file__).resolve().parent / "results"
"""Where the studies' results files live (``research/results/``)."""


def save(name: str, rows: list[dict], extra: dict | None = None) -> Path:
    """Write ``rows`` (plus machine info and ``extra``) to ``research/results/<name>.json`` atomically; print a table.

    Args:
      name: the results file's name, without ``.json`` (:func:`check_results_name`).
      rows: the table's rows.
      extra: more top-level fields of the file.

    Returns:
      The path written.
    """
    return _benchmarks.save(name, rows, extra, directory=RESULTS_DIR)
