"""The yardstick's AdamLR baselines: computed once per task set, committed as a compact table, loaded everywhere.

Each frozen task set (:mod:`~.task_sets`) has one table ``lopt_trainer/data/yardstick/baselines_<set>.arrow``:
one row per task × AdamLR trial (the 14-point grid of :func:`lopt_trainer.inner.baselines.trial_grid`) × seed,
with the run's summaries in the task's normalised-loss units (``Task.normalizer``)::

    task_id: string, trial: int64, seed: int64, lr: float64,
    init: float64         test-split loss at initialisation (step 0)
    final: float64        test-split loss after ``steps`` steps (NaN: diverged)
    curve_mean: float64   mean test-split loss over the curve (trapezoid over the evaluation points; NaN: diverged)
    select_final: float64 inner-valid loss after ``steps`` steps (chooses per-task AdamLR; NaN: diverged)

The schema metadata records the set's sha256, the evaluation settings (:data:`YARDSTICK_SETTINGS`, as its
``run_key``), :data:`BASELINE_VERSION` and the machine that computed it. :func:`load_baselines` refuses a table
whose set digest, settings or version differ from this code's, so a stale table is never used silently: bump
:data:`BASELINE_VERSION` whenever the inner loop, the AdamLR grid or a family's normalizer changes its numbers.

:func:`compute_baselines` runs the grid task by task into a work folder (one resumable record file per task,
:mod:`~.records`) and :func:`write_baselines` packs it; :func:`verify_baselines` re-runs a sample on this machine
and reports how far it lands from the committed numbers.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa

from lopt_trainer.common.machine import machine
from lopt_trainer.common.progress import progress_bar
from lopt_trainer.evaluation.backends import LocalBackend
from lopt_trainer.evaluation import normalized as nz
from lopt_trainer.evaluation import task_sets
from lopt_trainer.evaluation.records import load_records, save_records
from lopt_trainer.evaluation.scoring import auc
from lopt_trainer.evaluation.settings import EvalSettings, RunUnit
from taskgen.jax_cache import enable_compilation_cache
from taskgen.specfile import atomic_write_bytes

__all__ = ["BASELINE_VERSION", "YARDSTICK_SETTINGS", "VERIFY_TOLERANCE", "BaselineTable", "BaselineTableError", "run_summaries",
           "compute_baselines", "source_baselines", "write_baselines", "load_baselines", "verify_baselines", "table_path"]

BASELINE_VERSION = 1
"""Version of the code whose numbers the committed tables hold (bump when they would change)."""
YARDSTICK_SETTINGS = EvalSettings(steps=1000, seeds=3, baselines=("adamlr",), adamlr_trials=14)
"""How every yardstick run is made: 1000 steps, seeds 0–2, the 14-point AdamLR grid, curves every 50 steps."""
OPTIMIZER = "adamlr"
VERIFY_TOLERANCE = 1e-3
"""How far a recomputed ``L*`` may move, as a fraction of ``L0 − L*`` (normalized-loss units), before the committed
table no longer holds on a machine: a shift of every θ's ``n`` by this much changes no verdict that an interval of
the yardstick resolves."""
FORMAT = "lopt-yardstick-baselines"
COLUMNS = ("task_id", "trial", "seed", "lr", "init", "final", "curve_mean", "select_final")


class BaselineTableError(ValueError):
    """A committed baseline table that is missing, unreadable, or made for other tasks, settings or code."""


def table_path(set_name: str, data_dir=None) -> Path:
    """Where the committed table of ``set_name`` lives."""
    return Path(data_dir or task_sets.DATA_DIR) / f"baselines_{set_name}.arrow"


def run_summaries(record: dict) -> dict:
    """``{"init", "final", "curve_mean", "select_final"}`` of one run record
    (:func:`lopt_trainer.evaluation.compute.compute_unit`); a diverged run's last three are NaN."""
    rep = np.asarray([np.nan if v is None else v for v in record["report_curve"]], np.float64)
    sel = np.asarray([np.nan if v is None else v for v in record["select_curve"]], np.float64)
    bad = bool(record["diverged"]) or not np.all(np.isfinite(rep)) or not np.isfinite(sel[-1])
    return {"init": float(rep[0]),
            "final": np.nan if bad else float(rep[-1]),
            "curve_mean": np.nan if bad else auc(record["steps"], rep, np.nan),
            "select_final": np.nan if bad else float(sel[-1])}


@dataclasses.dataclass(frozen=True)
class BaselineTable:
    """A set's AdamLR grid results as arrays aligned with the set's task order.

    Attributes:
      set_name: ``valid`` or ``test``.
      task_ids: ``[tasks]`` task ids, in the set's order.
      lrs: ``[trials]`` the grid's learning rates.
      init: ``[tasks, seeds]`` loss at initialisation (the same for every trial of a seed).
      final: ``[tasks, trials, seeds]`` final test loss (NaN: diverged).
      curve_mean: ``[tasks, trials, seeds]`` mean test loss over the curve (NaN: diverged).
      select_final: ``[tasks, trials, seeds]`` final inner-valid loss (NaN: diverged).
      meta: the table's metadata (settings, version, set digest, machine).
    """

    set_name: str
    task_ids: tuple
    lrs: np.ndarray
    init: np.ndarray
    final: np.ndarray
    curve_mean: np.ndarray
    select_final: np.ndarray
    meta: dict


def _settings_key() -> str:
    return YARDSTICK_SETTINGS.run_key(OPTIMIZER)


def _grid():
    return YARDSTICK_SETTINGS.trial_hparams(OPTIMIZER)


def compute_baselines(set_name: str, work_dir, *, tasks=None, progress: bool = True, data_dir=None,
                      desc: str | None = None) -> dict:
    """Run the AdamLR grid on every task of ``set_name`` (or the given ``tasks``) not yet in ``work_dir``.

    Args:
      set_name: ``valid`` or ``test``.
      work_dir: the resumable work folder (``work_dir/runs/<task>.adamlr.json``, one per finished task).
      tasks: optional subset of the set's :class:`~.tasks.EvalTask` (None: all).
      progress: show a progress bar (sparse lines when stderr is not a terminal).
      data_dir: where the task sets live (the package's by default).
      desc: the progress bar's label (default: ``AdamLR baselines (<set_name>)``).

    Returns:
      ``{task_id: {(trial, seed): record}}`` for the tasks asked for.
    """
    enable_compilation_cache()
    tasks = tasks if tasks is not None else task_sets.task_set_tasks(set_name, data_dir)
    key, grid, seeds = _settings_key(), _grid(), YARDSTICK_SETTINGS.seed_list()
    out, todo = {}, []
    for t in tasks:
        have = load_records(work_dir, t.task_id, OPTIMIZER, key, grid)
        out[t.task_id] = have
        missing = [(i, s) for i in range(len(grid)) for s in seeds if (i, s) not in have]
        if missing:
            todo.append(RunUnit(t.task_id, t.spec.to_json(), OPTIMIZER, tuple(sorted({i for i, _ in missing})),
                                tuple(sorted({s for _, s in missing}))))
    bar = progress_bar(total=len(todo), desc=desc or f"AdamLR baselines ({set_name})", unit="task",
                       enabled=progress and bool(todo))
    try:
        for unit, recs, _ in LocalBackend().run([(u, YARDSTICK_SETTINGS, None) for u in todo]):
            have = out[unit.task_id]
            for r in recs:
                have[(r["trial"], r["seed"])] = r
            save_records(work_dir, unit.task_id, OPTIMIZER, key, have, [])
            bar.update(1)
    finally:
        bar.close()
    return out


def _to_table(set_name: str, tasks, records: dict, set_sha: str, machine: dict) -> pa.Table:
    grid = _grid()
    rows = {c: [] for c in COLUMNS}
    for t in tasks:
        have = records[t.task_id]
        for trial, hp in enumerate(grid):
            for seed in YARDSTICK_SETTINGS.seed_list():
                rec = have.get((trial, seed))
                if rec is None:
                    raise BaselineTableError(f"baselines of {set_name}: task {t.task_id} lacks trial {trial} seed "
                                             f"{seed}; compute them first")
                s = run_summaries(rec)
                for c, v in zip(COLUMNS, (t.task_id, trial, seed, float(hp["learning_rate"]), s["init"],
                                          s["final"], s["curve_mean"], s["select_final"])):
                    rows[c].append(v)
    meta = {"format": FORMAT, "baseline_version": str(BASELINE_VERSION), "set": set_name, "set_sha256": set_sha,
            "run_key": _settings_key(), "settings": json.dumps(YARDSTICK_SETTINGS.to_dict(), sort_keys=True),
            "machine": json.dumps(machine, sort_keys=True)}
    schema = pa.schema([pa.field("task_id", pa.string()), pa.field("trial", pa.int64()),
                        pa.field("seed", pa.int64())] + [pa.field(c, pa.float64()) for c in COLUMNS[3:]],
                       metadata=meta)
    return pa.Table.from_pydict(rows, schema=schema)


def write_baselines(set_name: str, work_dir, *, data_dir=None) -> Path:
    """Pack the finished grid runs of ``work_dir`` into the set's committed table (atomic); returns its path.

    Raises:
      BaselineTableError: a task, trial or seed of the set has no run in ``work_dir``.
    """
    data_dir = Path(data_dir or task_sets.DATA_DIR)
    tasks = task_sets.task_set_tasks(set_name, data_dir)
    key, grid = _settings_key(), _grid()
    records = {t.task_id: load_records(work_dir, t.task_id, OPTIMIZER, key, grid) for t in tasks}
    sha = task_sets.read_index(data_dir)["sets"][set_name]["sha256"]
    table = _to_table(set_name, tasks, records, sha, machine())
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression="zstd")) as writer:
        writer.write_table(table)
    path = table_path(set_name, data_dir)
    atomic_write_bytes(path, sink.getvalue().to_pybytes())
    return path


def _from_table(set_name: str, table: pa.Table, task_ids: list, where: str) -> BaselineTable:
    cols = table.to_pydict()
    index = {tid: i for i, tid in enumerate(task_ids)}
    n_t, n_s = len(grid := _grid()), YARDSTICK_SETTINGS.seeds
    arrays = {c: np.full((len(task_ids), n_t, n_s), np.nan) for c in COLUMNS[4:]}
    seen = np.zeros((len(task_ids), n_t, n_s), bool)
    init = np.full((len(task_ids), n_t, n_s), np.nan)
    for r, (tid, trial, seed) in enumerate(zip(cols["task_id"], cols["trial"], cols["seed"])):
        if tid not in index or not (0 <= trial < n_t and 0 <= seed < n_s):
            continue
        i = index[tid]
        seen[i, trial, seed] = True
        init[i, trial, seed] = cols["init"][r]
        for c in arrays:
            arrays[c][i, trial, seed] = cols[c][r]
    if not seen.all():
        i = int(np.argwhere(~seen)[0][0])
        raise BaselineTableError(f"{where}: no baseline rows for task {task_ids[i]} of set {set_name!r} (the table "
                                 "is incomplete; recompute it)")
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    return BaselineTable(set_name, tuple(task_ids), np.asarray([g["learning_rate"] for g in grid], np.float64),
                         init[:, 0, :], arrays["final"], arrays["curve_mean"], arrays["select_final"], meta)


def load_baselines(set_name: str, *, data_dir=None) -> BaselineTable:
    """The committed baselines of ``set_name``, aligned with its task order.

    Raises:
      BaselineTableError: the table is missing or unreadable, or was made for another set digest, other
        settings or another :data:`BASELINE_VERSION`, or lacks a task.
    """
    data_dir = Path(data_dir or task_sets.DATA_DIR)
    path = table_path(set_name, data_dir)
    tasks = task_sets.load_task_set(set_name, data_dir)
    try:
        with pa.memory_map(str(path)) as src:
            table = pa.ipc.open_file(src).read_all()
    except (OSError, pa.ArrowException) as exc:
        raise BaselineTableError(f"{path}: the AdamLR baselines of set {set_name!r} cannot be read ({exc}); "
                                 f"compute them with `taskgen lopt yardstick baselines --on {set_name}`") from None
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    want = {"format": FORMAT, "baseline_version": str(BASELINE_VERSION), "run_key": _settings_key(),
            "set_sha256": task_sets.read_index(data_dir)["sets"][set_name]["sha256"]}
    for k, v in want.items():
        if meta.get(k) != v:
            raise BaselineTableError(f"{path}: {k} is {meta.get(k)!r}, this code needs {v!r}; recompute the table "
                                     f"with `taskgen lopt yardstick baselines --on {set_name}`")
    missing = [c for c in COLUMNS if c not in table.column_names]
    if missing:
        raise BaselineTableError(f"{path}: missing columns {missing}")
    return _from_table(set_name, table, [s.task_id for s in tasks], str(path))


def source_baselines(tasks, label: str, work_dir, *, progress: bool = True, desc: str | None = None) -> BaselineTable:
    """The AdamLR grid of any task list, computed once into ``work_dir`` (resumable) and returned as a table.

    Args:
      tasks: the :class:`~.tasks.EvalTask` list (e.g. a run's own held-out tasks).
      label: the list's content address (:func:`~.task_sets.source_label`), its name in the table.
      work_dir: the cache folder of the grid's runs (one record file per task).
      progress: show a progress bar while runs are missing.
      desc: the progress bar's label.

    Returns:
      The :class:`BaselineTable`, aligned with ``tasks``.
    """
    records = compute_baselines(label, work_dir, tasks=tasks, progress=progress, desc=desc)
    table = _to_table(label, tasks, records, label, machine())
    return _from_table(label, table, [t.task_id for t in tasks], str(work_dir))


def verify_baselines(set_name: str, work_dir, *, n_tasks: int = 5, seed: int = 0, task_ids=None,
                     progress: bool = True, data_dir=None) -> dict:
    """Re-run the grid on ``n_tasks`` tasks of ``set_name`` (one per family first, drawn with ``seed``; or the
    tasks ``task_ids``) on this machine and compare with the committed table.

    Returns:
      ``{"tasks": [...], "max_abs_diff": {column: value}, "per_task": [{task_id, max_abs_diff_final}],
      "committed_machine": {...}, "this_machine": {...}}``; differences are in normalised-loss units over runs
      that did not diverge in either.
    """
    data_dir = Path(data_dir or task_sets.DATA_DIR)
    committed = load_baselines(set_name, data_dir=data_dir)
    tasks = task_sets.task_set_tasks(set_name, data_dir)
    rng = np.random.default_rng(seed)
    by_family: dict = {}
    for i in rng.permutation(len(tasks)):
        by_family.setdefault(tasks[i].spec.family, []).append(tasks[i])
    order = [fam_tasks[k] for k in range(max(map(len, by_family.values())))
             for fam_tasks in by_family.values() if k < len(fam_tasks)]
    chosen = order[:max(1, int(n_tasks))]
    if task_ids is not None:
        by_id = {t.task_id: t for t in tasks}
        unknown = [t for t in task_ids if t not in by_id]
        if unknown:
            raise BaselineTableError(f"tasks {unknown} are not in set {set_name!r}")
        chosen = [by_id[t] for t in task_ids]
    fresh = compute_baselines(set_name, work_dir, tasks=chosen, progress=progress, data_dir=data_dir)
    index = {tid: i for i, tid in enumerate(committed.task_ids)}
    diffs = {c: [] for c in ("init", "final", "curve_mean", "select_final")}
    per_task = []
    n_t, seeds = len(_grid()), YARDSTICK_SETTINGS.seeds
    for t in chosen:
        i = index[t.task_id]
        worst = 0.0
        now = {c: np.full((n_t, seeds), np.nan) for c in ("final", "select_final")}
        init_now = np.full(seeds, np.nan)
        for (trial, s), rec in fresh[t.task_id].items():
            new = run_summaries(rec)
            now["final"][trial, s], now["select_final"][trial, s] = new["final"], new["select_final"]
            init_now[s] = new["init"]
            old = {"init": committed.init[i, s], "final": committed.final[i, trial, s],
                   "curve_mean": committed.curve_mean[i, trial, s],
                   "select_final": committed.select_final[i, trial, s]}
            for c in diffs:
                if np.isfinite(new[c]) and np.isfinite(old[c]):
                    diffs[c].append(abs(new[c] - old[c]))
            if np.isfinite(new["final"]) and np.isfinite(old["final"]):
                worst = max(worst, abs(new["final"] - old["final"]))
        best_old, best_new = (float(nz.best_grid_loss(f[None])[0]) for f in (committed.final[i], now["final"]))
        gap = max(float(committed.init[i].mean()) - best_old, 1e-9)
        per_task.append({"task_id": t.task_id, "family": t.spec.family, "max_abs_diff_final": worst,
                         "best_loss": best_old, "best_loss_now": best_new,
                         "best_loss_diff_normalized": abs(best_new - best_old) / gap,
                         "per_task_trial": int(nz.best_trials(committed.select_final[i][None])[0]),
                         "per_task_trial_now": int(nz.best_trials(now["select_final"][None])[0])})
    return {"set": set_name, "tasks": [t.task_id for t in chosen],
            "max_best_loss_diff_normalized": max(r["best_loss_diff_normalized"] for r in per_task),
            "per_task_choice_changed": sum(r["per_task_trial"] != r["per_task_trial_now"] for r in per_task),
            "max_abs_diff": {c: (max(v) if v else 0.0) for c, v in diffs.items()}, "per_task": per_task,
            "committed_machine": json.loads(committed.meta.get("machine", "{}")), "this_machine": machine(),
            "python": sys.version.split()[0]}
