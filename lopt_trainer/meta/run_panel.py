"""A run's quality panel: θ scored on held-out tasks every ``panel_every`` outer steps, the best θ kept.

Scores come from :mod:`lopt_trainer.evaluation.panel` into ``RUN/panel/step_NNNNNN/``; each evaluation appends a
``{"kind": "panel", ...}`` record to the run's metrics with the per-task scores and two paired bootstrap 90%
intervals of the mean score difference (:func:`~lopt_trainer.evaluation.panel.paired_bootstrap`): against the
untrained hand-set θ (``vs_handset``, scored once into ``RUN/panel/handset/``) and against the best θ so far
(``vs_best``).

**Which θ is the best.** The panel's score moves by ±0.4 between evaluations from task-to-task noise alone, so the
highest score so far is partly a lucky draw. A θ becomes the new best only when its interval against the current
best lies above 0 (its advantage holds up when the panel's tasks are resampled); the first finite score starts
the record. The best is kept as ``RUN/best_theta.npz`` (reference layout) with ``RUN/best.json`` (its step,
figures, per-task scores and digest).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import jax
import numpy as np

from lopt_trainer.common.run_files import read_json, write_json
from lopt_trainer.evaluation import normalized as nz
from lopt_trainer.evaluation.panel import PanelSettings, evaluate_panel, paired_bootstrap, panel_tasks
from lopt_trainer.evaluation.yardstick import baselines_for
from lopt_trainer.meta.metrics import append_metrics
from lopt_trainer.theta.load import theta_digest
from lopt_trainer.theta.reference_io import load_reference_npz, save_reference_npz


START_THETA = "start_theta.npz"
"""``RUN/start_theta.npz``: θ before the first outer step (reference layout), kept until the panel scores it."""
HANDSET_SCORES = "panel/handset_scores.json"
"""``RUN/panel/handset_scores.json``: the hand-set θ's per-task scores with what they were made under
(``{"settings": {...}, "theta_digest": ..., "tasks": [task ids], "task_scores": {...}}``); read back instead of
evaluating again while the panel settings, its tasks and the hand-set θ are the same (a portable pretraining state
carries it from session to session)."""


class Panel:
    """The panel of one run (see the module docstring); ``resumed``: keep the best θ an earlier part of the run
    recorded (a fresh run ignores an old ``best.json``)."""

    def __init__(self, settings: PanelSettings, run_dir: Path, lopt, resumed: bool, held_specs=None,
                 source: str = "", log=None):
        self.settings = settings
        self.log = log or (lambda record: None)
        self.tasks = panel_tasks(settings, held_specs if settings.on == "source" else None)
        self.what = f"held-out tasks of {source}" if settings.on == "source" else ""
        self.base = None  # the AdamLR grid of a source panel, once computed
        self.task_ids = {t.task_id for t in self.tasks}
        self.run_dir = Path(run_dir)
        self.hierarchical = getattr(lopt, "name", "") == "hierarchical"
        self.handset = getattr(lopt, "init_handset", None)
        self.handset_scores = None
        best = self.run_dir / "best.json"
        self.best = json.loads(best.read_text()) if resumed and best.is_file() else None
        if self.best is not None and set(self.best.get("task_scores") or {}) != self.task_ids:
            # a best scored on another panel (its settings, the suite or the frozen set changed) cannot be compared
            # with this one: it is kept under another name, and the best is chosen afresh on this panel
            for name in ("best_theta.npz", "best.json"):
                if (self.run_dir / name).is_file():
                    os.replace(self.run_dir / name, self.run_dir / name.replace("best", "best_previous_panel", 1))
            print(f"note: {best} was scored on other panel tasks; it is kept as best_previous_panel.json (with "
                  "best_previous_panel_theta.npz) and the best θ is chosen afresh on this panel", file=sys.stderr)
            self.best = None

    def keep_start(self, state, progress: bool = False) -> None:
        """Before the first outer step: keep the start θ for the panel's step-0 point. The hierarchical optimizer's
        θ goes to ``RUN/start_theta.npz`` and is scored with the first panel evaluation, so that meta-training
        starts at once; another optimizer's θ is scored now."""
        if not self.hierarchical:
            self.evaluate(state, progress)
            return
        save_reference_npz(jax.device_get(state.theta), self.run_dir / START_THETA)
        if progress:
            print(f"panel: {len(self.tasks)} {self.what or 'held-out tasks'}; the start θ is kept and scored with the "
                  "first panel evaluation (the step-0 point every later θ is compared with)", file=sys.stderr)

    def score_start(self, progress: bool = False, stop=None) -> dict | None:
        """Score the kept start θ (``RUN/start_theta.npz``) as the step-0 record, once; None when there is none."""
        path = self.run_dir / START_THETA
        if not path.is_file():
            return None
        record = self.evaluate(SimpleNamespace(theta=load_reference_npz(path), step=0), progress, start=False,
                               stop=stop)
        path.unlink()
        return record

    def evaluate(self, state, progress: bool = False, start: bool = True, stop=None) -> dict:
        """Score ``state.theta`` (after ``state.step`` outer steps), after the kept start θ when it is still
        unscored (``start``); returns the metrics record (also appended to the run's metrics), and keeps it as the
        best when it beats the best beyond the noise (module docstring). ``stop``: an object whose
        ``interruptible()`` context lets a stop request end the scoring at once (never the bookkeeping after it:
        the record, the best θ and its record are written together or not at all)."""
        shield = stop.interruptible if stop is not None else contextlib.nullcontext
        if start and state.step > 0:
            self.score_start(progress, stop)
        t0 = time.perf_counter()
        with shield():
            figures = self._evaluate(state.theta, self.run_dir / "panel" / f"step_{state.step:06d}", progress)
        record = {"kind": "panel", "step": state.step, **figures}
        with shield():
            reference = self.reference_scores(progress, known=(state.theta, figures))
        if reference is not None:
            record["vs_handset"] = paired_bootstrap(figures.get("task_scores") or {}, reference)
        if self.best is not None:
            record["vs_best"] = paired_bootstrap(figures.get("task_scores") or {}, self.best.get("task_scores") or {})
        record["seconds"] = time.perf_counter() - t0
        append_metrics(self.run_dir, record)
        self.log(record)
        if is_new_best(record, self.best) and self.hierarchical:
            # θ first, then the record that names it: a crash between the two leaves the older record, which
            # a reader checks against the file's digest.
            save_reference_npz(jax.device_get(state.theta), self.run_dir / "best_theta.npz")
            self.best = dict(record, theta_digest=theta_digest(state.theta))
            write_json(self.run_dir / "best.json", self.best)
        return record

    def _evaluate(self, theta, out_dir: Path, progress: bool) -> dict:
        if self.settings.on == "source" and self.base is None:
            self.base = baselines_for(self.tasks, what=self.what, progress=progress)
        return evaluate_panel(theta, self.tasks, self.settings, out_dir, progress=progress, what=self.what,
                              base=self.base)

    def reference_scores(self, progress: bool = False, known=None) -> dict | None:
        """The per-task panel scores of the optimizer's hand-set θ (seed 0), evaluated once into
        ``RUN/panel/handset/`` (a resumed run reads them back), or taken from ``known`` = ``(θ, figures)`` when
        that θ is the hand-set one (a run that starts from it); None when the optimizer has no hand-set θ."""
        if self.handset is None:
            return None
        if self.handset_scores is None:
            theta = jax.jit(self.handset)(jax.random.PRNGKey(0))
            made_by = {"settings": json.loads(json.dumps(dataclasses.asdict(self.settings))),
                       "theta_digest": theta_digest(theta), "tasks": sorted(self.task_ids)}
            stored = read_json(self.run_dir / HANDSET_SCORES)
            if isinstance(stored, dict) and all(stored.get(k) == v for k, v in made_by.items()) \
                    and stored.get("task_scores"):
                self.handset_scores = stored["task_scores"]
                return self.handset_scores
            if known is not None and theta_digest(known[0]) == theta_digest(theta):
                figures = known[1]
            else:
                figures = self._evaluate(theta, self.run_dir / "panel" / "handset", progress)
            self.handset_scores = figures.get("task_scores") or {}
            write_json(self.run_dir / HANDSET_SCORES, {**made_by, "task_scores": self.handset_scores})
        return self.handset_scores


def end_summary(first: dict | None, last: dict | None, best: dict | None, families: dict) -> dict | None:
    """Whether θ improved over the run, from its panel records: the last and best θ against the start θ (paired
    over the panel's tasks, 95 % bootstrap intervals resampled within families, in score units: higher is
    better), the last θ against Global AdamLR when the panel measured it, and a one-line verdict.

    Args:
      first: the panel record of the start θ (step 0), or None.
      last: the panel record of the last θ, or None.
      best: the best θ's record (``RUN/best.json``), or None.
      families: ``{task_id: family}`` of the panel's tasks.

    Returns:
      ``{"start_step", "last_step", "start_score", "last_score", "last_vs_start", "best_step", "best_vs_start",
      "last_vs_global_adamlr", "global_adamlr_score", "verdict"}`` (absent keys: not measured), or None without
      both records.
    """
    if not first or not last:
        return None

    def diff(a: dict, b: dict) -> dict:
        a, b = a.get("task_scores") or {}, b.get("task_scores") or {}
        shared = sorted(set(a) & set(b))
        return nz.paired_difference([a[t] for t in shared], [b[t] for t in shared],
                                    [families.get(t, "") for t in shared])

    out = {"start_step": first["step"], "last_step": last["step"], "start_score": first.get("score"),
           "last_score": last.get("score"), "last_vs_start": diff(last, first)}
    if best is not None:
        out.update(best_step=best.get("step"), best_score=best.get("score"), best_vs_start=diff(best, first))
    if last.get("vs_global_adamlr"):
        out["last_vs_global_adamlr"] = last["vs_global_adamlr"]
        if last.get("global_adamlr_score") is not None:
            out["global_adamlr_score"] = last["global_adamlr_score"]
    out["verdict"] = verdict(out["last_vs_start"], last["step"] - first["step"])
    return out


def verdict(d: dict, steps: int) -> str:
    """One line on a paired score difference ``last − start`` (higher is better) and its interval."""
    ci = f"{d['mean']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]"
    where = f"(95%, paired over {d['tasks']} held-out tasks, after {steps} outer steps)"
    if not d["tasks"]:
        return "no verdict: the start and last θ share no panel task"
    if steps <= 0:
        return "no verdict: the run made no outer step"
    way = nz.direction(d)  # +1: the interval lies above 0 (scores: higher is better)
    if way > 0:
        return f"θ improved: last − start panel score {ci} {where}"
    if way < 0:
        return f"θ got worse: last − start panel score {ci} {where}"
    return f"no detectable change in θ: last − start panel score {ci} {where}, within the interval or ±{nz.TIE_FLOOR:g}"


def is_new_best(record: dict, best: dict | None) -> bool:
    """Whether the panel ``record`` replaces ``best``: when there is no best yet, when the best's score is not
    finite and this one is, or when ``record["vs_best"]`` (its paired interval against the best) lies above 0."""
    score = record.get("score")
    finite = score is not None and bool(np.isfinite(score))
    if best is None:
        return True
    best_score = best.get("score")
    if best_score is None or not np.isfinite(best_score):
        return finite
    interval = record.get("vs_best") or {}
    low = interval.get("low")
    return finite and low is not None and bool(np.isfinite(low)) and low > 0
