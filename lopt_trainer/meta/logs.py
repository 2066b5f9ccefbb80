"""A run's scalars where researchers' tools read them: TensorBoard event files and a CSV, beside ``metrics.jsonl``.

Every metrics record (:mod:`lopt_trainer.meta.metrics`) also becomes scalars named ``<kind>/<field>`` (an outer
step's record is ``train``; then ``eval``, ``panel``): its numeric
fields, the ``mean`` of each interval it holds (e.g. ``panel/vs_handset``), and for the held-out check the mean
over tasks of each loss (``eval/test_loss``). They go to ``RUN/tensorboard/`` (``tensorboard --logdir RUN``;
written with tensorboardX, no TensorFlow needed) and to ``RUN/scalars.csv`` (``kind,step,name,value``, one row per
scalar, appended as the run goes).
"""

from __future__ import annotations

import csv
import io
import math
import numbers
from pathlib import Path

from lopt_trainer.meta.metrics import kept_on_resume
from taskgen.specfile import atomic_write_bytes

__all__ = ["CSV_FILE", "TENSORBOARD_DIR", "RunLogs", "scalars"]

CSV_FILE = "scalars.csv"
TENSORBOARD_DIR = "tensorboard"
CSV_HEADER = ("kind", "step", "name", "value")
KIND_NAMES = {"step": "train"}
"""How the logs name a metrics record's kind (an outer step's record is ``train``)."""


def scalars(record: dict) -> dict[str, float]:
    """The scalars of one metrics record: ``{name: value}`` (finite numbers only; see the module docstring)."""
    out = {}
    for key, value in record.items():
        if key in ("kind", "step"):
            continue
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            out[key] = float(value)
        elif isinstance(value, dict) and isinstance(value.get("mean"), numbers.Real):
            out[key] = float(value["mean"])
    if record.get("kind") == "eval" and isinstance(record.get("tasks"), dict):
        per_task = list(record["tasks"].values())
        for name in sorted({k for t in per_task for k in t}):
            values = [t[name] for t in per_task if isinstance(t.get(name), numbers.Real)]
            if values:
                out[name] = sum(values) / len(values)
    return {k: v for k, v in out.items() if math.isfinite(v)}


class RunLogs:
    """The TensorBoard and CSV logs of one run folder (open for the run's length; :meth:`close` at its end).

    Args:
      run_dir: the run folder.
      truncate_at: on resume, the checkpoint's step: CSV rows of later steps are dropped first.
    """

    def __init__(self, run_dir, truncate_at: int | None = None):
        from tensorboardX import SummaryWriter  # deferred: protobuf loads only for a run that logs

        self.run_dir = Path(run_dir)
        self.csv_path = self.run_dir / CSV_FILE
        if truncate_at is not None and self.csv_path.is_file():
            self._truncate(truncate_at)
        self.writer = SummaryWriter(str(self.run_dir / TENSORBOARD_DIR), flush_secs=30)

    def _truncate(self, step: int) -> None:
        """Drop the CSV rows a resume from ``step`` does not keep, as the metrics are (:func:`kept_on_resume`)."""
        with open(self.csv_path, newline="") as f:
            rows = list(csv.reader(f))
        keep = [r for r in rows[1:] if len(r) == 4 and r[1].lstrip("-").isdigit()
                and kept_on_resume(r[0], int(r[1]), step)]
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows([list(CSV_HEADER), *keep])
        atomic_write_bytes(self.csv_path, text.getvalue().encode())

    def __call__(self, record: dict) -> None:
        """Log the scalars of ``record`` (a metrics record with ``kind`` and ``step``)."""
        kind = KIND_NAMES.get(record.get("kind"), str(record.get("kind", "record")))
        step = int(record.get("step", 0))
        values = scalars(record)
        if not values:
            return
        for name, value in values.items():
            self.writer.add_scalar(f"{kind}/{name}", value, step)
        new = not self.csv_path.is_file() or self.csv_path.stat().st_size == 0
        with open(self.csv_path, "a", newline="") as f:
            out = csv.writer(f, lineterminator="\n")
            if new:
                out.writerow(CSV_HEADER)
            out.writerows((kind, step, name, repr(value)) for name, value in values.items())

    def close(self) -> None:
        """Flush and close the event file."""
        self.writer.close()
