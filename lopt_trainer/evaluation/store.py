"""Per-unit result files of an evaluation, and resume.

Every finished unit is written atomically to ``OUT/runs/<task_id>.<optimizer>.json``::

    {"format": "lopt-eval-runs", "version": 1, "run_key": "...", "records": [...], "timing": [...]}

``run_key`` (:meth:`EvalSettings.run_key`) holds the loop settings (and θ's digest for ``lopt``): a file whose
key differs is ignored and recomputed. Within a file, records are keyed by ``(trial, seed)`` and a record whose
stored hyperparameters differ from the planned trial's is dropped, so changing the Adam8p seed or the grid size
reruns exactly what changed. :func:`plan_missing` turns what is missing into units (the rectangle of missing
trials × missing seeds of each task × optimizer).
"""

from __future__ import annotations

from pathlib import Path

from lopt_trainer.evaluation.io import read_json, write_json
from lopt_trainer.evaluation.runs import LOPT, RunUnit

FORMAT, VERSION = "lopt-eval-runs", 1
RUNS_DIR = "runs"


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text)


def unit_path(out_dir, task_id: str, optimizer: str) -> Path:
    """Where the records of ``task_id`` × ``optimizer`` live."""
    return Path(out_dir) / RUNS_DIR / f"{_safe(task_id)}.{_safe(optimizer)}.json"


def load_records(out_dir, task_id: str, optimizer: str, run_key: str, planned_hparams: list) -> dict:
    """``{(trial, seed): record}`` of the stored runs that are still valid (see the module docstring)."""
    data = read_json(unit_path(out_dir, task_id, optimizer))
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("run_key") != run_key:
        return {}
    out = {}
    for r in data.get("records", []):
        t = int(r["trial"])
        if t >= len(planned_hparams) or r.get("hparams") != _jsonish(planned_hparams[t]):
            continue
        out[(t, int(r["seed"]))] = r
    return out


def _jsonish(hp):
    from lopt_trainer.evaluation.io import clean_json

    return clean_json(hp)


def save_records(out_dir, task_id: str, optimizer: str, run_key: str, records: dict, timing: list) -> Path:
    """Atomically write ``records`` (``{(trial, seed): record}``, written sorted by key) and ``timing``."""
    payload = {"format": FORMAT, "version": VERSION, "run_key": run_key, "task_id": task_id,
               "optimizer": optimizer, "records": [records[k] for k in sorted(records)], "timing": timing}
    return write_json(unit_path(out_dir, task_id, optimizer), payload, indent=None)


def load_timing(out_dir, task_id: str, optimizer: str) -> list:
    """The timing entries stored with a unit file (``[]`` if none)."""
    data = read_json(unit_path(out_dir, task_id, optimizer)) or {}
    return list(data.get("timing", []))


def plan_missing(task_id: str, spec_json: str, optimizer: str, n_trials: int, seeds: list, have: dict):
    """The :class:`RunUnit` that computes every missing ``(trial, seed)`` (None when nothing is missing)."""
    trials = range(1 if optimizer == LOPT else n_trials)
    missing = [(t, s) for t in trials for s in seeds if (t, s) not in have]
    if not missing:
        return None
    mt = tuple(sorted({t for t, _ in missing}))
    ms = tuple(sorted({s for _, s in missing}))
    return RunUnit(task_id, spec_json, optimizer, mt, ms)
