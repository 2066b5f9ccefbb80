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
    from taskgen.arrow_values import column

    try:
        arrays = [column(cols[f.name], f.type) for f in SCHEMA]
    except OverflowError as e:
        raise ValueError(f"a manifest value does not fit its column: {e}") from None
    return pa.Table.from_arrays(arrays, schema=SCHEMA.with_metadata(_default_metadata()))


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


class ManifestError(ValueError):
    """A manifest that cannot be used as it is: names the file and the column (or row) and the problem."""

    def __init__(self, path, message: str):
        self.path, self.reason = str(path), message
        super().__init__(f"{path}: {message}")


def load_manifest(path, registry: Registry | None = None, check_families: bool = True) -> pa.Table:
    """Read a manifest (Arrow IPC file or Parquet, detected from the file's magic bytes) as a ``pyarrow.Table``
    with exactly :data:`SCHEMA`.

    A manifest written back by another tool is normalised: string variants (``large_string``, ``string_view``)
    and other integer or list widths are cast to the schema's types, extra columns dropped, missing metadata
    filled in. A missing column, a column of another kind, nulls or values out of range are refused with
    :class:`ManifestError` naming the column. With ``check_families``, every (family, family_version) must be
    known to ``registry``, as for spec files.
    """
    path = Path(path)
    with open(path, "rb") as f:
        magic = f.read(6)
    try:
        if magic == b"ARROW1":
            with pa.memory_map(str(path)) as source:
                table = pa.ipc.open_file(source).read_all()
        elif magic[:4] == b"PAR1":
            table = pq.read_table(path)
        else:
            raise ManifestError(path, f"not an Arrow IPC or Parquet manifest (magic bytes {magic!r})")
    except (pa.ArrowException, OSError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ManifestError(path, f"damaged or unreadable manifest: {e}") from None
    table = normalise_manifest(table, path)
    if check_families:
        check_manifest_families(table, path, registry)
    return table


def normalise_manifest(table: pa.Table, path="<table>") -> pa.Table:
    """``table`` cast to :data:`SCHEMA` (see :func:`load_manifest`); :class:`ManifestError` names a bad column."""
    metadata = table.schema.metadata or {}
    if table.schema.equals(SCHEMA) and all(k in metadata for k in _default_metadata()):
        return table
    columns = []
    for field in SCHEMA:
        if field.name not in table.column_names:
            raise ManifestError(path, f"column {field.name!r} is missing (a manifest has columns "
                                      f"{', '.join(SCHEMA.names)})")
        column = table.column(field.name)
        if not _castable(column.type, field.type):
            raise ManifestError(path, f"column {field.name!r} has type {column.type}, expected {field.type}")
        if column.null_count:
            raise ManifestError(path, f"column {field.name!r} has {column.null_count} null values")
        try:
            columns.append(column.cast(field.type, safe=True))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise ManifestError(path, f"column {field.name!r} cannot be read as {field.type}: {e}") from None
    meta = {**_default_metadata(), **{k.decode(): v.decode() for k, v in metadata.items()
                                      if k.decode().startswith("taskgen.")}}
    return pa.Table.from_arrays(columns, schema=SCHEMA.with_metadata(meta))


def _castable(found: pa.DataType, expected: pa.DataType) -> bool:
    t = pa.types
    if t.is_string(expected):
        return t.is_string(found) or t.is_large_string(found) or getattr(t, "is_string_view", lambda _: False)(found)
    if t.is_integer(expected):
        return t.is_integer(found)
    if t.is_list(expected):
        is_view = getattr(t, "is_list_view", lambda _: False)(found) or \
            getattr(t, "is_large_list_view", lambda _: False)(found)
        listish = t.is_list(found) or t.is_large_list(found) or t.is_fixed_size_list(found) or is_view
        return listish and _castable(found.value_type, expected.value_type)
    return found.equals(expected)


def _default_metadata() -> dict:
    return {"taskgen.toolkit_version": _toolkit_version(), "taskgen.spec_schema_version": str(SCHEMA_VERSION),
            "taskgen.manifest_version": str(MANIFEST_VERSION)}


def check_manifest_families(table: pa.Table, path="<table>", registry: Registry | None = None) -> None:
    """Refuse (:class:`ManifestError`) a manifest naming a family, or family version, that ``registry`` lacks."""
    from taskgen.specfile import _FamilyChecker
    from families.errors import ConfigError

    checker = _FamilyChecker(registry or default_registry())
    import pyarrow.compute as pc

    from taskgen.arrow_values import string_scalar

    families, versions = table.column("family"), table.column("family_version")
    pairs = []  # (family, version) present; pc.unique per family (group_by would import pyarrow's dataset layer)
    for family in pc.unique(families).to_pylist():
        same = pc.equal(families, string_scalar(family))
        pairs += [(family, v) for v in pc.unique(pc.filter(versions, same)).to_pylist()]
    for family, version in pairs:
        try:
            checker.family(family, version)
        except ConfigError as e:
            raise ManifestError(path, f"column {e.field!r}: {e}") from None


def specs_from_manifest(table: pa.Table, registry: Registry | None = None, validate: bool = False,
                        path="<manifest>") -> list[TaskSpec]:
    """The specs stored in a manifest's ``spec_json`` column, each checked against its ``task_id`` (and, with
    ``validate``, against its family as spec files are); errors name ``path`` and the row (1-based)."""
    from taskgen.specfile import SpecFileError, parse_spec_lines

    specs = parse_spec_lines(table.column("spec_json").to_pylist(), path, registry, validate, what="row ")
    if len(specs) != table.num_rows:
        raise ManifestError(path, "column 'spec_json' has empty rows")
    for i, (spec, task_id) in enumerate(zip(specs, table.column("task_id").to_pylist()), start=1):
        if spec.task_id != task_id:
            raise SpecFileError(path, f"row {i}", f"task_id column says {task_id!r} but spec_json is {spec.task_id!r}")
    return specs


def filter_manifest(table: pa.Table, family: Sequence[str] = (), split: str | None = None,
                    max_params: int | None = None, max_flops: int | None = None,
                    dataset: Sequence[str] = (), variant: Sequence[str] = ()) -> pa.Table:
    """Rows of ``table`` matching every given filter (empty filters match everything)."""
    import pyarrow.compute as pc

    from taskgen.arrow_values import int64_scalar, string_array, string_scalar

    masks = []
    if family:
        masks.append(pc.is_in(table["family"], value_set=string_array(family)))
    if dataset:
        masks.append(pc.is_in(table["dataset"], value_set=string_array(dataset)))
    if variant:
        masks.append(pc.is_in(table["variant"], value_set=string_array(variant)))
    if split:
        masks.append(pc.equal(table["split"], string_scalar(split)))
    if max_params is not None:
        masks.append(pc.less_equal(table["params"], int64_scalar(max_params)))
    if max_flops is not None:
        masks.append(pc.less_equal(table["flops_per_step"], int64_scalar(max_flops)))
    if not masks:
        return table
    mask = masks[0]
    for m in masks[1:]:
        mask = pc.and_(mask, m)
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
