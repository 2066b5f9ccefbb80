"""The yardstick results of several θ on one set as plain data and as a folder: ``yardstick.json``,
``per_task.csv`` and ``strip.png`` (what ``taskgen lopt eval --on``, ``taskgen lopt compare --out`` and the
default job write, and what the report reads)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from lopt_trainer.common.folder_lock import folder_lock
from lopt_trainer.common.run_files import write_command, write_json
from lopt_trainer.evaluation import yardstick, yardstick_text
from taskgen.specfile import atomic_write_bytes

__all__ = ["results_payload", "write_results"]


def results_payload(labels: list, results: list, set_name: str) -> dict:
    """The results of several θ on one set as a JSON-able dict.

    Args:
      labels: how each θ is named (``[θ, other θ, …]``).
      results: each θ's ``(summary, scores, timing)`` from :func:`~.yardstick.evaluate` or
        :func:`~.yardstick.evaluate_tasks`, on the same tasks.
      set_name: how the set is named.

    Returns:
      ``{"set", "theta", "summary", "against", "comparisons", "per_task", "legend"}``: the first θ's headline,
      the others' headlines, the first θ against each other one (paired), its per-task rows and the legend.
    """
    comparisons = [{"a": labels[0], "b": lab, **yardstick.compare(results[0][1], res[1])}
                   for lab, res in zip(labels[1:], results[1:])]
    return {"set": set_name, "theta": labels[0], "summary": results[0][0],
            "against": [{"theta": lab, "summary": res[0]} for lab, res in zip(labels[1:], results[1:])],
            "comparisons": comparisons, "per_task": yardstick.per_task_rows(results[0][1]),
            "legend": yardstick_text.legend(results[0][0])}


def write_results(out_dir, payload: dict, labels: list, results: list) -> list[Path]:
    """Write ``payload`` (:func:`results_payload`) as ``yardstick.json``, its per-task rows as ``per_task.csv``, a
    strip plot of every θ and the command line into ``out_dir`` (locked while writing; each file atomic).

    Returns:
      The paths written.
    """
    from lopt_trainer.evaluation.yardstick_plot import strip_plot  # deferred: matplotlib only when writing

    out_dir = Path(out_dir)
    with folder_lock(out_dir, "evaluation folder"):
        written = [write_json(out_dir / "yardstick.json", payload)]
        rows, text = payload["per_task"], io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_bytes(out_dir / "per_task.csv", text.getvalue().encode())
        written.append(out_dir / "per_task.csv")
        written.append(strip_plot({lab: res[1] for lab, res in zip(labels, results)}, out_dir / "strip.png"))
        write_command(out_dir)
    return written
