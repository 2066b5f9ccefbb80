"""The Arrow manifest: one row per task, flat columns to filter on, the full spec JSON, versioned metadata.

Written as an Arrow IPC file (default) or Parquet, atomically; the same specs give the same bytes. Opens unchanged
with pyarrow, pandas, polars and duckdb.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from taskgen.registry import Registry, default_registry
from taskgen.spec import SCHEMA_VERSION, TaskSpec
from taskgen.specfile import atomic_write_bytes

MANIFEST_VERSION = 1

SCHEMA = pa.schema([
    pa.field("task_id", pa.string(), nullable=False),
    pa.field("family", pa.string(), nullable=False),
    pa.field("family_version", pa.int32(), nullable=False),
    pa.field("seed", pa.int64(), nullable=False),
    pa.field("split", pa.string(), nullable=False),
    pa.field("variant", pa.string(), nullable=False),
    pa.field("dataset", pa.string(), nullable=False),
    pa.field("input_shape", pa.list_(pa.int32()), nullable=False),
    pa.field("batch_size", pa.int32(), nullable=False),
    pa.field("params", pa.int64(), nullable=False),
    pa.field("flops_per_step", pa.int64(), nullable=False),
    pa.field("spec_json", pa.string(), nullable=False),
])
FORMATS = ("arrow", "parquet")


def _toolkit_version() -> str:
    from taskgen import __version__

    return __version__


def manifest_table(specs: Sequence[TaskSpec], registry: Registry | None = None) -> pa.Table:
    """Build the manifest table for ``specs`` (one row each, in order) with schema-level metadata."""
    registry = registry or default_registry()
    cols = {f.name: [] for f in SCHEMA}
    for spec in specs:
        family = registry.get(spec.family)
        cost = family.cost(spec.config)
        desc = family.describe(spec.config)
        row = {"task_id": spec.task_id, "family": spec.family, "family_version": spec.family_version,
               "seed": spec.seed, "split": spec.split, "variant": family.variant(spec.config),
               "dataset": desc.get("dataset", ""), "input_shape": list(desc.get("input_shape", [])),
               "batch_size": int(desc.get("batch_size", 1)), "params": int(cost.params),
               "flops_per_step": int(cost.flops_per_step), "spec_json": spec.to_json()}
        for k, v in row.items():
            cols[k].append(v)
    metadata = {"taskgen.toolkit_version": _toolkit_version(), "taskgen.spec_schema_version": str(SCHEMA_VERSION),
                "taskgen.manifest_version": str(MANIFEST_VERSION)}
    return pa.table(cols, schema=SCHEMA.with_metadata(metadata))


def manifest_bytes(table: pa.Table, fmt: str = "arrow") -> bytes:
    """Serialise a manifest table as an Arrow IPC file (``arrow``) or Parquet (``parquet``)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown manifest format {fmt!r}; choose one of {list(FORMATS)}")
    sink = pa.BufferOutputStream()
    if fmt == "arrow":
        with pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
    else:
        pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def write_manifest(specs: Sequence[TaskSpec], path, fmt: str = "arrow", registry: Registry | None = None) -> pa.Table:
    """Atomically write the manifest of ``specs`` to ``path``; returns the table."""
    table = manifest_table(specs, registry)
    atomic_write_bytes(path, manifest_bytes(table, fmt))
    return table


def load_manifest(path) -> pa.Table:
    """Read a manifest (Arrow IPC file or Parquet, detected from the file's magic bytes) as a ``pyarrow.Table``."""
    path = Path(path)
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic == b"ARROW1":
        with pa.memory_map(str(path)) as source:
            return pa.ipc.open_file(source).read_all()
    if magic[:4] == b"PAR1":
        return pq.read_table(path)
    raise ValueError(f"{path}: not an Arrow IPC or Parquet manifest (magic bytes {magic!r})")


def specs_from_manifest(table: pa.Table) -> list[TaskSpec]:
    """The specs stored in a manifest's ``spec_json`` column (task ids checked against content)."""
    return [TaskSpec.from_json(s) for s in table.column("spec_json").to_pylist()]


def filter_manifest(table: pa.Table, family: Sequence[str] = (), split: str | None = None,
                    max_params: int | None = None, max_flops: int | None = None,
                    dataset: Sequence[str] = (), variant: Sequence[str] = ()) -> pa.Table:
    """Rows of ``table`` matching every given filter (empty filters match everything)."""
    import pyarrow.compute as pc

    mask = pa.array([True] * table.num_rows)
    if family:
        mask = pc.and_(mask, pc.is_in(table["family"], pa.array(list(family))))
    if dataset:
        mask = pc.and_(mask, pc.is_in(table["dataset"], pa.array(list(dataset))))
    if variant:
        mask = pc.and_(mask, pc.is_in(table["variant"], pa.array(list(variant))))
    if split:
        mask = pc.and_(mask, pc.equal(table["split"], split))
    if max_params is not None:
        mask = pc.and_(mask, pc.less_equal(table["params"], max_params))
    if max_flops is not None:
        mask = pc.and_(mask, pc.less_equal(table["flops_per_step"], max_flops))
    return table.filter(mask)


def manifest_metadata(table: pa.Table) -> dict:
    """The manifest's schema-level metadata as a ``str -> str`` dict."""
    return {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}


def row_summary(table: pa.Table) -> list[dict]:
    """Rows as dicts without the bulky ``spec_json`` column (for ``taskgen list --json``)."""
    return [{k: v for k, v in row.items() if k != "spec_json"} for row in table.to_pylist()]


def dumps_rows(rows) -> str:
    """Rows as indented JSON text."""
    return json.dumps(rows, indent=2, sort_keys=True)
