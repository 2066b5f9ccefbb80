"""Baseline runs computed once and reused: an Arrow table keyed by task, optimizer, settings, trial and seed.

A baseline's curves on a task depend only on the task spec, the baseline's trial hyperparameters and the loop
settings (:meth:`EvalSettings.run_key`), never on θ. So every evaluation that needs them — ``taskgen lopt eval``,
``make quality`` and the quality panel of a meta-training run — reads them from one table and adds what it had
to compute. One row per run record::

    task_id: string, optimizer: string, run_key: string, trial: int64, seed: int64, hparams: string (JSON),
    record: string (the record's JSON, :func:`lopt_trainer.evaluation.runs.compute_unit`)

The table lives at ``$TASKGEN_BASELINE_CACHE`` or ``~/.cache/taskgen/baselines.arrow``; it is rewritten
atomically (Arrow IPC file), so an interrupted writer leaves the previous table. A table that cannot be read is
ignored with a warning (the baselines are recomputed), never trusted.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

COLUMNS = ("task_id", "optimizer", "run_key", "trial", "seed", "hparams", "record")


def default_path() -> Path:
    """``$TASKGEN_BASELINE_CACHE`` or ``~/.cache/taskgen/baselines.arrow``."""
    env = os.environ.get("TASKGEN_BASELINE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "taskgen" / "baselines.arrow"


def _schema():
    import pyarrow as pa

    return pa.schema([pa.field("task_id", pa.string()), pa.field("optimizer", pa.string()),
                      pa.field("run_key", pa.string()), pa.field("trial", pa.int64()), pa.field("seed", pa.int64()),
                      pa.field("hparams", pa.string()), pa.field("record", pa.string())])


def _hp_json(hp) -> str:
    from lopt_trainer.evaluation.io import clean_json

    return json.dumps(clean_json(hp), sort_keys=True)


def read(path=None) -> dict:
    """``{(task_id, optimizer, run_key): {(trial, seed): (hparams_json, record)}}`` of the table at ``path``
    (empty when there is none, or with a warning when it is unreadable)."""
    import pyarrow as pa

    path = Path(path) if path is not None else default_path()
    if not path.is_file():
        return {}
    try:
        with pa.memory_map(str(path)) as src:
            table = pa.ipc.open_file(src).read_all()
        missing = [c for c in COLUMNS if c not in table.column_names]
        if missing:
            raise ValueError(f"missing columns {missing}")
        cols = table.select(list(COLUMNS)).to_pydict()
    except (OSError, ValueError, pa.ArrowException) as exc:
        warnings.warn(f"baseline cache {path} is unreadable ({exc}); its baselines will be recomputed",
                      stacklevel=2)
        return {}
    out: dict = {}
    for tid, opt, key, trial, seed, hp, rec in zip(*(cols[c] for c in COLUMNS)):
        out.setdefault((tid, opt, key), {})[(int(trial), int(seed))] = (hp, json.loads(rec))
    return out


def lookup(cache: dict, task_id: str, optimizer: str, run_key: str, planned_hparams: list) -> dict:
    """``{(trial, seed): record}`` cached for one task × baseline × settings whose trial hyperparameters equal
    the planned ones (``planned_hparams[trial]``)."""
    have = cache.get((task_id, optimizer, run_key), {})
    out = {}
    for (trial, seed), (hp, rec) in have.items():
        if trial < len(planned_hparams) and hp == _hp_json(planned_hparams[trial]):
            out[(trial, seed)] = rec
    return out


def add(records: list[tuple[str, str, str, dict]], path=None) -> Path:
    """Merge ``[(task_id, optimizer, run_key, record), ...]`` into the table at ``path`` (atomic rewrite; a
    record replaces one with the same task, optimizer, settings, trial and seed). Returns the path."""
    import pyarrow as pa

    from taskgen.specfile import atomic_write_bytes

    path = Path(path) if path is not None else default_path()
    merged = read(path)
    for tid, opt, key, rec in records:
        merged.setdefault((tid, opt, key), {})[(int(rec["trial"]), int(rec["seed"]))] = (
            _hp_json(rec.get("hparams")), rec)
    rows = {c: [] for c in COLUMNS}
    for (tid, opt, key) in sorted(merged):
        for (trial, seed), (hp, rec) in sorted(merged[(tid, opt, key)].items()):
            for c, v in zip(COLUMNS, (tid, opt, key, trial, seed, hp, json.dumps(rec, sort_keys=True))):
                rows[c].append(v)
    table = pa.Table.from_pydict(rows, schema=_schema())
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, sink.getvalue().to_pybytes())
    return path
