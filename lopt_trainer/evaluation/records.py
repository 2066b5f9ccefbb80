"""Where run records live: the JSON files of an evaluation folder (per-unit records, resume) and the baseline cache.

**Per-unit files, and resume.** Every finished unit is written atomically to
``OUT/runs/<task_id>.<optimizer>.json``::

    {"format": "lopt-eval-runs", "version": 1, "run_key": "...", "records": [...], "timing": [...]}

``run_key`` (:meth:`EvalSettings.run_key`) holds the loop settings (and θ's digest for ``lopt``): a file whose
key differs is ignored and recomputed. Within a file, records are keyed by ``(trial, seed)`` and a record whose
stored hyperparameters differ from the planned trial's is dropped, so changing the Adam8p seed or the grid size
reruns exactly what changed (the runner's ``plan`` turns what is missing into units).

**The baseline cache: baseline runs computed once and reused**, an Arrow table keyed by task, optimizer,
settings, trial and seed. A baseline's curves on a task depend only on the task spec, the baseline's trial
hyperparameters and the loop settings (:meth:`EvalSettings.run_key`), never on θ. So every evaluation that needs
them — ``taskgen lopt eval``, ``make quality`` and the quality panel of a meta-training run — reads them from one
table and adds what it had to compute. One row per run record::

    task_id: string, optimizer: string, run_key: string, trial: int64, seed: int64, hparams: string (JSON),
    record: string (the record's JSON, :func:`lopt_trainer.evaluation.compute.compute_unit`)

The table lives at ``$TASKGEN_BASELINE_CACHE`` or ``~/.cache/taskgen/baselines.arrow``; it is rewritten
atomically (Arrow IPC file), so an interrupted writer leaves the previous table. The cache only saves time: a
table that cannot be read is ignored with a warning (the baselines are recomputed), never trusted, and a cache
that cannot be written (read-only, full, no permission) costs one warning per path, naming
``TASKGEN_BASELINE_CACHE``, and the evaluation goes on without it.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from pathlib import Path

import pyarrow as pa

from lopt_trainer.common.run_files import clean_json, read_json, write_json
from taskgen.specfile import atomic_write_bytes

RUNS_DIR = "runs"
RUNS_FORMAT, RUNS_VERSION = "lopt-eval-runs", 1
CACHE_COLUMNS = ("task_id", "optimizer", "run_key", "trial", "seed", "hparams", "record")
CACHE_ENV = "TASKGEN_BASELINE_CACHE"
"""The setting that places the baseline cache."""
_warned_unwritable: set[str] = set()


# ------------------------------------------------------------------------------------ per-unit files, resume


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text)


def unit_path(out_dir, task_id: str, optimizer: str) -> Path:
    """Where the records of ``task_id`` × ``optimizer`` live."""
    return Path(out_dir) / RUNS_DIR / f"{_safe(task_id)}.{_safe(optimizer)}.json"


def load_records(out_dir, task_id: str, optimizer: str, run_key: str, planned_hparams: list) -> dict:
    """``{(trial, seed): record}`` of the stored runs that are still valid (see the module docstring)."""
    data = read_json(unit_path(out_dir, task_id, optimizer))
    if not isinstance(data, dict) or data.get("format") != RUNS_FORMAT or data.get("run_key") != run_key:
        return {}
    out = {}
    for r in data.get("records", []):
        t = int(r["trial"])
        if t >= len(planned_hparams) or r.get("hparams") != clean_json(planned_hparams[t]):
            continue
        out[(t, int(r["seed"]))] = r
    return out


def save_records(out_dir, task_id: str, optimizer: str, run_key: str, records: dict, timing: list) -> Path:
    """Atomically write ``records`` (``{(trial, seed): record}``, written sorted by key) and ``timing``."""
    payload = {"format": RUNS_FORMAT, "version": RUNS_VERSION, "run_key": run_key, "task_id": task_id,
               "optimizer": optimizer, "records": [records[k] for k in sorted(records)], "timing": timing}
    return write_json(unit_path(out_dir, task_id, optimizer), payload, indent=None)


def load_timing(out_dir, task_id: str, optimizer: str) -> list:
    """The timing entries stored with a unit file (``[]`` if none)."""
    data = read_json(unit_path(out_dir, task_id, optimizer)) or {}
    return list(data.get("timing", []))


# ------------------------------------------------------------------------------------ the baseline cache


def baseline_cache_path() -> Path:
    """``$TASKGEN_BASELINE_CACHE`` or ``~/.cache/taskgen/baselines.arrow``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "taskgen" / "baselines.arrow"


def _cache_schema():
    return pa.schema([pa.field("task_id", pa.string()), pa.field("optimizer", pa.string()),
                      pa.field("run_key", pa.string()), pa.field("trial", pa.int64()), pa.field("seed", pa.int64()),
                      pa.field("hparams", pa.string()), pa.field("record", pa.string())])


def _hp_json(hp) -> str:
    return json.dumps(clean_json(hp), sort_keys=True)


def read_baseline_cache(path=None) -> dict:
    """``{(task_id, optimizer, run_key): {(trial, seed): (hparams_json, record)}}`` of the table at ``path``
    (empty when there is none, or with a warning when it is unreadable)."""
    path = Path(path) if path is not None else baseline_cache_path()
    if not path.is_file():
        return {}
    try:
        with pa.memory_map(str(path)) as src:
            table = pa.ipc.open_file(src).read_all()
        missing = [c for c in CACHE_COLUMNS if c not in table.column_names]
        if missing:
            raise ValueError(f"missing columns {missing}")
        cols = table.select(list(CACHE_COLUMNS)).to_pydict()
        out: dict = {}
        for tid, opt, key, trial, seed, hp, rec in zip(*(cols[c] for c in CACHE_COLUMNS)):
            out.setdefault((tid, opt, key), {})[(int(trial), int(seed))] = (hp, json.loads(rec))
    except (OSError, ValueError, TypeError, pa.ArrowException) as exc:  # JSONDecodeError is a ValueError
        warnings.warn(f"baseline cache {path} is unreadable ({exc}); its baselines will be recomputed (set "
                      f"{CACHE_ENV} to use another file)", RuntimeWarning, stacklevel=2)
        return {}
    return out


def cached_baselines(cache: dict, task_id: str, optimizer: str, run_key: str, planned_hparams: list) -> dict:
    """``{(trial, seed): record}`` cached for one task × baseline × settings whose trial hyperparameters equal
    the planned ones (``planned_hparams[trial]``)."""
    have = cache.get((task_id, optimizer, run_key), {})
    out = {}
    for (trial, seed), (hp, rec) in have.items():
        if trial < len(planned_hparams) and hp == _hp_json(planned_hparams[trial]):
            out[(trial, seed)] = rec
    return out


def add_to_baseline_cache(records: list[tuple[str, str, str, dict]], path=None) -> Path | None:
    """Merge ``[(task_id, optimizer, run_key, record), ...]`` into the table at ``path`` (atomic rewrite; a
    record replaces one with the same task, optimizer, settings, trial and seed) under an exclusive lock on
    ``<path>.lock``. Returns the path, or None when the cache cannot be written (an ``OSError``: read-only, full,
    no permission), which warns once per path and is otherwise ignored: the cache is optional."""
    path = Path(path) if path is not None else baseline_cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(path):  # evaluations running side by side (a run's panel, make quality) merge, not overwrite
            return _merge_into_cache(records, path)
    except OSError as exc:
        if str(path) not in _warned_unwritable:
            _warned_unwritable.add(str(path))
            where = f" at {exc.filename}" if exc.filename and str(exc.filename) != str(path) else ""
            warnings.warn(f"baseline cache {path} cannot be written ({exc.strerror or exc}{where}); going on "
                          f"without caching baselines (set {CACHE_ENV} to a writable file path)", RuntimeWarning,
                          stacklevel=2)
        return None


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive advisory lock on ``<path>.lock`` for the block (POSIX ``flock``; none where unavailable)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with open(path.with_name(path.name + ".lock"), "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _merge_into_cache(records, path: Path) -> Path:
    merged = read_baseline_cache(path)
    for tid, opt, key, rec in records:
        merged.setdefault((tid, opt, key), {})[(int(rec["trial"]), int(rec["seed"]))] = (
            _hp_json(rec.get("hparams")), rec)
    rows = {c: [] for c in CACHE_COLUMNS}
    for (tid, opt, key) in sorted(merged):
        for (trial, seed), (hp, rec) in sorted(merged[(tid, opt, key)].items()):
            for c, v in zip(CACHE_COLUMNS, (tid, opt, key, trial, seed, hp, json.dumps(rec, sort_keys=True))):
                rows[c].append(v)
    table = pa.Table.from_pydict(rows, schema=_cache_schema())
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    atomic_write_bytes(path, sink.getvalue().to_pybytes())
    return path
