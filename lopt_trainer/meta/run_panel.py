"""A run's quality panel: θ scored on held-out tasks every ``panel_every`` outer steps, the best θ kept.

Scores come from :mod:`lopt_trainer.evaluation.panel` into ``RUN/panel/step_NNNNNN/``; each evaluation appends a
``{"kind": "panel", ...}`` record to the run's metrics, and the best θ so far by panel score is kept as
``RUN/best_theta.npz`` (reference layout) with ``RUN/best.json`` (its step, figures and digest).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax
import numpy as np

from lopt_trainer.common.run_files import write_json
from lopt_trainer.evaluation.panel import PanelSettings, evaluate_panel, panel_tasks
from lopt_trainer.meta.metrics import append_metrics
from lopt_trainer.theta.load import theta_digest
from lopt_trainer.theta.reference_io import save_reference_npz


class Panel:
    """The panel of one run (see the module docstring); ``resumed``: keep the best θ an earlier part of the run
    recorded (a fresh run ignores an old ``best.json``)."""

    def __init__(self, settings: PanelSettings, run_dir: Path, lopt, resumed: bool):
        self.settings = settings
        self.tasks = panel_tasks(settings)
        self.run_dir = Path(run_dir)
        self.hierarchical = getattr(lopt, "name", "") == "hierarchical"
        best = self.run_dir / "best.json"
        self.best = json.loads(best.read_text()) if resumed and best.is_file() else None

    def evaluate(self, state, progress: bool = False) -> dict:
        """Score ``state.theta`` (after ``state.step`` outer steps); returns the metrics record (also appended to
        the run's metrics)."""
        t0 = time.perf_counter()
        figures = evaluate_panel(state.theta, self.tasks, self.settings,
                                 self.run_dir / "panel" / f"step_{state.step:06d}", progress=progress)
        record = {"kind": "panel", "step": state.step, **figures, "seconds": time.perf_counter() - t0}
        append_metrics(self.run_dir, record)
        score = figures["score"]
        best = None if self.best is None else self.best.get("score")
        better = score is not None and np.isfinite(score) and (best is None or not np.isfinite(best) or score > best)
        if (better or self.best is None) and self.hierarchical:
            # θ first, then the record that names it: a crash between the two leaves the older record, which
            # export_run checks against the file's digest.
            save_reference_npz(jax.device_get(state.theta), self.run_dir / "best_theta.npz")
            self.best = dict(record, theta_digest=theta_digest(state.theta))
            write_json(self.run_dir / "best.json", self.best)
        return record
