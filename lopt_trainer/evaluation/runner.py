"""One evaluation end to end: choose tasks, run (or reuse) every training run, write the table, summary, plots.

:func:`evaluate_theta` loads θ and chooses the tasks (:mod:`~.tasks`); :func:`run_evaluation` plans the missing
runs from the stored records (:mod:`~.records`: the output folder, then the baseline cache), computes them as
units (:mod:`~.compute`) in process or on Ray (:mod:`~.backends`), storing each as soon as it finishes, and
:func:`finalize` turns the records into the results table and summary (:mod:`~.scoring`) and the box plots
(:mod:`~.plots`).

Output folder ``OUT``::

    OUT/eval.json            settings, θ path and digest, the task list (with groups), files written
    OUT/runs/*.json          one file per task × optimizer (records keyed by trial and seed; resume reads them)
    OUT/results.arrow        one row per task × optimizer row × seed (lopt_trainer.evaluation.scoring)
    OUT/eval_summary.json    per baseline and group: improvement summaries, fraction of tasks won, speedup
    OUT/boxplot_final.png, OUT/boxplot_auc.png
    OUT/timing.json          wall and compile seconds per unit (kept apart so results stay byte-identical)

Without ``resume`` an ``OUT`` that already holds runs is refused (so nothing is mixed by accident); with it,
runs already stored for the same settings (and θ) are not redone; with ``overwrite`` the evaluation's own files
(:data:`EVAL_FILES`) are removed first. ``OUT`` is locked while the evaluation runs
(:mod:`lopt_trainer.common.folder_lock`), so a second process writing there is refused.
"""

from __future__ import annotations

import sys
from pathlib import Path

from lopt_trainer.common.progress import progress_bar

from lopt_trainer.common.folder_lock import folder_lock
from lopt_trainer.common.run_files import COMMAND_FILE, remove_files, write_json
from lopt_trainer.common.task_pool import load_pool
from lopt_trainer.evaluation.backends import make_backend
from lopt_trainer.evaluation.plots import improvement_boxplot
from lopt_trainer.evaluation.records import (RUNS_DIR, add_to_baseline_cache, cached_baselines, load_records,
                                             load_timing, read_baseline_cache, save_records)
from lopt_trainer.evaluation.scoring import build_rows, row_names, rows_to_table, summarize_table, table_bytes
from lopt_trainer.evaluation.settings import LOPT, EvalSettings, RunUnit
from lopt_trainer.evaluation.tasks import EvalTask, select_tasks
from lopt_trainer.errors import RunExistsError
from lopt_trainer.theta.load import load_theta, theta_digest
from taskgen.jax_cache import enable_compilation_cache
from taskgen.specfile import atomic_write_bytes

EVAL_FILE = "eval.json"
RESULTS_FILE = "results.arrow"
SUMMARY_FILE = "eval_summary.json"
TIMING_FILE = "timing.json"


PLOT_FILES = ("boxplot_final.png", "boxplot_auc.png")
EVAL_FILES = (EVAL_FILE, RUNS_DIR, RESULTS_FILE, SUMMARY_FILE, TIMING_FILE, *PLOT_FILES, COMMAND_FILE)
"""An evaluation folder's own files (what ``overwrite`` removes)."""


class EvaluationExists(RunExistsError):
    """The output folder already holds runs and neither ``resume`` nor ``overwrite`` was asked for."""


def evaluate_theta(theta_path, out_dir, *, suite=None, manifest=None, n_tasks: int = 100, task_seed: int = 0,
                   max_params: int | None = 20_000, max_flops: int | None = 5_000_000, filters=None,
                   settings: EvalSettings | None = None, workers: int = 0, resume: bool = False,
                   overwrite: bool = False, progress: bool = True) -> dict:
    """Load θ from ``theta_path`` (any name :func:`~lopt_trainer.theta.load.load_theta` takes), choose the task
    set and run the evaluation.

    Returns the summary (also in ``out_dir/eval_summary.json``).
    """
    theta = load_theta(theta_path)
    tasks = select_tasks(load_pool(suite, manifest), n_tasks, task_seed, max_params=max_params,
                         max_flops=max_flops, filters=filters)
    if not tasks:
        raise ValueError("no task passes the filters")
    return run_evaluation(theta, tasks, out_dir, settings or EvalSettings(), workers=workers, resume=resume,
                          overwrite=overwrite, theta_path=theta_path, progress=progress)


def run_evaluation(theta, tasks: list[EvalTask], out_dir, settings: EvalSettings = EvalSettings(), *,
                   workers: int = 0, address: str | None = None, resume: bool = False, overwrite: bool = False,
                   theta_path=None, progress: bool = True, backend=None, baselines_from=None) -> dict:
    """Evaluate θ on ``tasks`` against the baselines into ``out_dir``; returns the summary dict.

    ``workers`` > 0 runs the units as Ray tasks (local cluster unless ``address``); ``backend`` overrides
    (an object with ``run(items, tasks)`` and ``close()``). Baseline runs are read from and added to the
    baseline cache (:mod:`lopt_trainer.evaluation.records`; ``baselines_from``: its path, default
    :func:`~lopt_trainer.evaluation.records.baseline_cache_path`, or ``False`` for none). See the module
    docstring for the files, ``resume`` and ``overwrite``.
    """
    out_dir = Path(out_dir)
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other: reuse the runs or start again")
    with folder_lock(out_dir, "evaluation folder"):
        runs_dir = out_dir / RUNS_DIR
        if overwrite:
            remove_files(out_dir, EVAL_FILES)
        elif not resume and runs_dir.exists() and any(runs_dir.iterdir()):
            raise EvaluationExists(f"{out_dir} already holds an evaluation ({RUNS_DIR}/); reuse its runs with "
                                   "--resume (resume=True) or start it again with --overwrite (overwrite=True)")
        runs_dir.mkdir(parents=True, exist_ok=True)
        return _evaluate(theta, tasks, out_dir, settings, workers, address, resume, theta_path, progress, backend,
                         baselines_from)


def _evaluate(theta, tasks, out_dir: Path, settings: EvalSettings, workers, address, resume: bool, theta_path,
              progress: bool, backend, baselines_from) -> dict:
    """The body of :func:`run_evaluation` once the folder is claimed."""
    enable_compilation_cache()
    digest = theta_digest(theta)
    write_json(out_dir / EVAL_FILE, {
        "settings": settings.to_dict(), "theta_path": None if theta_path is None else str(theta_path),
        "theta_digest": digest,
        "tasks": [{"task_id": t.task_id, "group": t.group, "variant": t.variant, "family": t.spec.family}
                  for t in tasks]})
    cache_path = None if baselines_from is False else baselines_from
    cache = {} if baselines_from is False else read_baseline_cache(cache_path)
    records, units, from_cache = plan(tasks, settings, out_dir, digest, cache)
    for tid, opt in from_cache:  # baselines taken from the cache are stored with the evaluation
        save_records(out_dir, tid, opt, settings.run_key(opt, digest), records[(tid, opt)], [])
    timing = {}
    if units:
        own = backend is None
        backend = backend or make_backend(workers, address)
        bar = None
        if progress:
            bar = progress_bar(len(units), "eval runs", unit="unit")
        try:
            items = [(u, settings, theta if u.optimizer == LOPT else None) for u in units]
            for unit, recs, tm in backend.run(items):
                key = (unit.task_id, unit.optimizer)
                have = records.setdefault(key, {})
                for r in recs:
                    have[(r["trial"], r["seed"])] = r
                old = load_timing(out_dir, *key) if resume else []
                save_records(out_dir, unit.task_id, unit.optimizer, settings.run_key(unit.optimizer, digest),
                             have, old + [dict(tm, trials=list(unit.trials), seeds=list(unit.seeds))])
                timing[f"{unit.task_id}.{unit.optimizer}"] = tm
                if unit.optimizer != LOPT and baselines_from is not False:  # cached as soon as computed
                    run_key = settings.run_key(unit.optimizer, digest)
                    add_to_baseline_cache([(unit.task_id, unit.optimizer, run_key, r) for r in recs], cache_path)
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
            if own:
                backend.close()
    return finalize(tasks, records, settings, out_dir, timing, units_run=len(units))


def plan(tasks: list[EvalTask], settings: EvalSettings, out_dir, digest: str,
         cache: dict | None = None) -> tuple[dict, list, list]:
    """``(stored records {(task_id, optimizer): {(trial, seed): record}}, missing units, the (task_id, optimizer)
    keys whose records the baseline cache completed)``.

    Records come from ``out_dir`` first, then, for baselines, from ``cache`` (a
    :func:`~.records.read_baseline_cache` dict)."""
    records, units, from_cache = {}, [], []
    seeds = settings.seed_list()
    for t in tasks:
        for opt in (LOPT, *settings.baselines):
            hps = settings.trial_hparams(opt)
            key = settings.run_key(opt, digest)
            have = load_records(out_dir, t.task_id, opt, key, hps)
            if opt != LOPT and cache:
                stored, have = have, {**cached_baselines(cache, t.task_id, opt, key, hps), **have}
                if len(have) > len(stored):
                    from_cache.append((t.task_id, opt))
            records[(t.task_id, opt)] = have
            unit = plan_missing(t.task_id, t.spec.to_json(), opt, len(hps), seeds, have)
            if unit is not None:
                units.append(unit)
    return records, units, from_cache


def plan_missing(task_id: str, spec_json: str, optimizer: str, n_trials: int, seeds: list, have: dict):
    """The :class:`RunUnit` that computes every missing ``(trial, seed)`` (None when nothing is missing): the
    rectangle of missing trials × missing seeds of one task × optimizer."""
    trials = range(1 if optimizer == LOPT else n_trials)
    missing = [(t, s) for t in trials for s in seeds if (t, s) not in have]
    if not missing:
        return None
    mt = tuple(sorted({t for t, _ in missing}))
    ms = tuple(sorted({s for _, s in missing}))
    return RunUnit(task_id, spec_json, optimizer, mt, ms)


def finalize(tasks, records, settings: EvalSettings, out_dir, timing: dict | None = None,
             units_run: int = 0) -> dict:
    """Write ``results.arrow``, ``eval_summary.json``, the box plots and ``timing.json``; return the summary."""
    out_dir = Path(out_dir)
    names = row_names(settings)
    table = rows_to_table(build_rows(tasks, records, settings))
    atomic_write_bytes(out_dir / RESULTS_FILE, table_bytes(table))
    summary = summarize_table(table, names)
    summary.update({"settings": settings.to_dict(), "n_tasks": {g: sum(t.group == g for t in tasks)
                                                              for g in ("seen", "unseen")},
                    "units_run": units_run})
    plots = []
    for measure, fname in zip(("improvement_final", "improvement_auc"), PLOT_FILES):
        if improvement_boxplot(table, names, measure, out_dir / fname) is not None:
            plots.append(fname)
    summary["plots"] = plots
    write_json(out_dir / SUMMARY_FILE, summary)
    if timing:
        write_json(out_dir / TIMING_FILE, timing)
    return summary
