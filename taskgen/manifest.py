"""The Arrow manifest: one row per task, flat columns to filter on, the full spec JSON, versioned metadata.

Written as an Arrow IPC file (default) or Parquet, atomically; the same specs give the same bytes. Opens unchanged
with pyarrow, pandas, polars and duckdb.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from taskgen.frozen import frozen_record
from taskgen.registry import Registry, default_registry
from families.errors import short_repr, short_text
from taskgen.spec import FAMILY_VERSION_LIMIT, SCHEMA_VERSION, SEED_LIMIT, SUITE_SPLITS, TaskSpec
from taskgen.specfile import atomic_write_bytes, read_file_bytes

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


FORMAT_SUFFIXES = {".arrow": "arrow", ".ipc": "arrow", ".feather": "arrow", ".parquet": "parquet", ".pq": "parquet"}
"""File name endings that say a manifest's format."""


def manifest_format(path, fmt: str | None = None) -> str:
    """The format to write ``path`` in: ``fmt`` if given, else the one its ending names (:data:`FORMAT_SUFFIXES`;
    another ending gets ``arrow``). A ``fmt`` that contradicts the ending (``x.parquet`` as ``arrow``) is a
    ``ValueError``: readers trust the name, and an Arrow file called ``.parquet`` fails in every one of them."""
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"unknown manifest format {short_repr(fmt)}; choose one of {list(FORMATS)}")
    suffix = Path(path).suffix.lower()
    named = FORMAT_SUFFIXES.get(suffix)
    if fmt is not None and named is not None and fmt != named:
        raise ValueError(f"{path}: the name ends in {suffix} ({named}) but the format asked for is {fmt}; "
                         f"name the file *.{'parquet' if fmt == 'parquet' else 'arrow'} or leave the format out")
    return fmt or named or "arrow"


def write_manifest(specs: Sequence[TaskSpec], path, fmt: str | None = None,
                   registry: Registry | None = None) -> pa.Table:
    """Atomically write the manifest of ``specs`` to ``path``; returns the table.

    ``fmt`` is ``"arrow"`` (an Arrow IPC file) or ``"parquet"``; by default the file's ending decides
    (:func:`manifest_format`: ``.parquet``/``.pq`` Parquet, anything else Arrow), and a ``fmt`` that contradicts
    the ending is refused. A wrong argument type is an :class:`taskgen.arguments.ArgumentTypeError`."""
    from taskgen.arguments import check_path, spec_list

    specs = spec_list("write_manifest", specs)
    check_path("write_manifest", "path", path)
    fmt = manifest_format(path, fmt)
    table = manifest_table(specs, registry)
    atomic_write_bytes(path, manifest_bytes(table, fmt))
    return table


class ManifestError(ValueError):
    """A manifest that cannot be used as it is: names the file and the column (or row) and the problem."""

    def __init__(self, path, message: str):
        self.path, self.reason = str(path), message
        super().__init__(f"{path}: {message}")


SPEC_COLUMNS = ("task_id", "family", "family_version", "seed", "split")
"""Columns that repeat a field of the row's own ``spec_json``."""
FAMILY_COLUMNS = ("variant", "dataset", "input_shape", "batch_size", "params", "flops_per_step")
"""Columns the row's family derives from its config (:meth:`Family.variant`, ``describe``, ``cost``)."""


def load_manifest(path, registry: Registry | None = None, check_families: bool = True) -> pa.Table:
    """Read a manifest (Arrow IPC file or Parquet, detected from the file's magic bytes) as a ``pyarrow.Table``
    with exactly :data:`SCHEMA`, or refuse it with :class:`ManifestError` naming the file (and the column and row).

    The file is read into memory (no memory map) and validated in full by pyarrow before any value is looked at
    (offsets, lengths, UTF-8 of every string), so a damaged file is an error, never a crash. A manifest written back
    by another tool is normalised: string variants (``large_string``, ``string_view``) and other integer or list
    widths are cast to the schema's types, extra columns dropped, missing metadata filled in. A missing or
    duplicated column, a column of another kind, nulls, values out of range (seeds in ``[0, 2**32)``, family
    versions in ``[0, 2**31)``, splits ``meta_train``/``meta_test``, non-negative costs), metadata that is not
    UTF-8 or names another manifest or spec schema version are refused.

    A manifest must not contradict itself: every row's ``spec_json`` is parsed and checked as a spec line, and
    the columns derived from it (:data:`SPEC_COLUMNS`, and with ``check_families`` :data:`FAMILY_COLUMNS`
    recomputed by the row's family) must equal the stored ones. This costs one pass over the file when it is
    loaded (about 0.3 s for 6000 rows), never per query, and once per file: a manifest whose exact bytes passed it
    before, with the same family versions, skips it (records by sha256 in ``$TASKGEN_MANIFEST_CHECKS`` or
    ``~/.cache/taskgen/manifest_checks``); the shipped default manifest skips it while its bytes and its families'
    versions are those recorded in ``default-v1.lock.json`` (it was checked when frozen). With
    ``check_families``, every (family, family_version) must be known to ``registry``, as for spec files.
    """
    return _read_manifest(path, registry, check_families)[0]


def _read_manifest(path, registry, check_families: bool = True, want_specs: bool = False):
    """``(table, specs)``: the checked table of :func:`load_manifest` and, when already parsed (or ``want_specs``),
    the row specs (checked against their families when ``check_families``); ``specs`` is None otherwise."""
    path = Path(path)
    data = read_file_bytes(path)
    table = decode_manifest(data, path)
    table = normalise_manifest(table, path)
    check_manifest_values(table, path)
    if check_families:
        check_manifest_families(table, path, registry)
    sha = hashlib.sha256(data).hexdigest() if check_families else None  # hashed once, for both records
    key = _check_key(sha, table, registry) if check_families else None
    checked = check_families and (_is_frozen_default(sha, registry) or _checked_before(key))
    if checked:
        specs = None
        if want_specs:
            from taskgen.specfile import parse_spec_lines

            specs = parse_spec_lines(table.column("spec_json").to_pylist(), path, registry, validate=False,
                                     what="row ")
        return table, specs
    specs = check_manifest_consistency(table, path, registry, check_families)
    if key is not None:
        _record_checked(key)
    return table, specs


CHECKS_ENV = "TASKGEN_MANIFEST_CHECKS"
"""Where the records of manifests checked in full are kept (default ``~/.cache/taskgen/manifest_checks``)."""


def _checks_dir() -> Path:
    import os

    return Path(os.environ.get(CHECKS_ENV) or Path.home() / ".cache" / "taskgen" / "manifest_checks")


def _check_key(sha: str, table: pa.Table, registry) -> tuple[Path, dict] | None:
    """The record file of a manifest's bytes (their sha256 ``sha``) and what it must hold (its families'
    versions), or None where no record applies (a registry other than the default one)."""
    if registry is not None and registry is not default_registry():
        return None
    families = sorted(set(table.column("family").to_pylist()))
    try:
        versions = {name: default_registry().get(name).version for name in families}
    except Exception:  # an unknown family: the full check names it
        return None
    return _checks_dir() / f"{sha}.json", {"family_versions": versions}


def _checked_before(key: tuple[Path, dict] | None) -> bool:
    """Whether the bytes of ``key`` (:func:`_check_key`) passed the full consistency check before, with the same
    family versions."""
    if key is None or not key[0].is_file():
        return False
    try:
        return json.loads(key[0].read_text()) == key[1]
    except (OSError, ValueError):
        return False


def _record_checked(key: tuple[Path, dict]) -> None:
    """Record that the bytes of ``key`` (:func:`_check_key`) passed the full check (best effort: an unwritable
    cache only costs the next load a check again)."""
    try:
        key[0].parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(key[0], json.dumps(key[1], sort_keys=True).encode())
    except OSError:
        pass


def decode_manifest(data: bytes, path="<manifest>") -> pa.Table:
    """The table in the manifest file bytes ``data`` (Arrow IPC file or Parquet, told by the magic bytes), fully
    validated by pyarrow (``Table.validate(full=True)``); :class:`ManifestError` naming ``path`` otherwise."""
    magic = bytes(data[:6])
    try:
        if magic == b"ARROW1":
            reader = pa.ipc.open_file(pa.BufferReader(data))
            batches = [reader.get_batch(i) for i in range(reader.num_record_batches)]
            for batch in batches:  # before anything reads a value: offsets, lengths, UTF-8, dictionaries
                batch.validate(full=True)
            table = pa.Table.from_batches(batches, schema=reader.schema)
        elif magic[:4] == b"PAR1":
            table = pq.ParquetFile(pa.BufferReader(data)).read()
        else:
            raise ManifestError(path, f"not an Arrow IPC or Parquet manifest (magic bytes {magic!r})")
        table.validate(full=True)
    except ManifestError:
        raise
    except (pa.ArrowException, OSError, ValueError, TypeError, IndexError, KeyError, OverflowError,
            UnicodeError) as e:
        raise ManifestError(path, f"damaged or unreadable manifest ({type(e).__name__}: "
                                  f"{short_text(e, 300)})") from None
    return table


def normalise_manifest(table: pa.Table, path="<table>") -> pa.Table:
    """``table`` cast to :data:`SCHEMA` (see :func:`load_manifest`); :class:`ManifestError` names a bad column."""
    meta = _checked_metadata(table.schema.metadata, path)
    names = table.column_names
    for name in SCHEMA.names:
        if names.count(name) > 1:
            raise ManifestError(path, f"column {name!r} appears {names.count(name)} times (which one is meant?)")
    for field in SCHEMA:
        if field.name not in names:
            raise ManifestError(path, f"column {field.name!r} is missing (a manifest has columns "
                                      f"{', '.join(SCHEMA.names)})")
        column = table.column(field.name)
        if not _castable(column.type, field.type):
            raise ManifestError(path, f"column {field.name!r} has type {short_text(column.type, 100)}, expected "
                                      f"{field.type}")
        if column.null_count or (pa.types.is_list(field.type) and _has_null_items(column)):
            raise ManifestError(path, f"column {field.name!r} has null values")
    if table.schema.equals(SCHEMA) and all(k in meta for k in _default_metadata()):
        return table
    columns = []
    for field in SCHEMA:
        try:
            columns.append(table.column(field.name).cast(field.type, safe=True))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise ManifestError(path, f"column {field.name!r} cannot be read as {field.type}: "
                                      f"{short_text(e, 300)}") from None
    return pa.Table.from_arrays(columns, schema=SCHEMA.with_metadata({**_default_metadata(), **meta}))


def _has_null_items(column) -> bool:
    import pyarrow.compute as pc

    try:
        return pc.list_flatten(column).null_count > 0
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return pc.list_flatten(column.cast(pa.large_list(column.type.value_type))).null_count > 0


_VERSION_KEYS = {"taskgen.manifest_version": lambda: str(MANIFEST_VERSION),
                 "taskgen.spec_schema_version": lambda: str(SCHEMA_VERSION)}


def _checked_metadata(metadata, path) -> dict:
    """The ``taskgen.*`` entries of a schema's metadata as ``str -> str``; :class:`ManifestError` for bytes that
    are not UTF-8 or a manifest/spec schema version this toolkit does not read."""
    out = {}
    for key, value in (metadata or {}).items():
        try:
            k, v = key.decode("utf-8"), value.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ManifestError(path, f"schema metadata {short_repr(bytes(key))} is not UTF-8 text "
                                      f"({e.reason} at byte {e.start})") from None
        if k.startswith("taskgen."):
            out[k] = v
    for key, expected in _VERSION_KEYS.items():
        if key in out and out[key] != expected():
            raise ManifestError(path, f"schema metadata {key} is {short_repr(out[key])}; this toolkit reads "
                                      f"{expected()!r}")
    return out


_RANGES = {"seed": (0, SEED_LIMIT, "[0, 2**32)"), "family_version": (0, FAMILY_VERSION_LIMIT, "[0, 2**31)"),
           "params": (0, None, ">= 0"), "flops_per_step": (0, None, ">= 0"), "batch_size": (1, None, ">= 1")}


def check_manifest_values(table: pa.Table, path="<table>") -> None:
    """Refuse (:class:`ManifestError` naming the column and the first bad row) values outside their column's
    range: seeds, family versions, costs, batch sizes, input-shape sizes, and splits other than
    ``meta_train``/``meta_test``. ``table`` has :data:`SCHEMA`."""
    import pyarrow.compute as pc

    from taskgen.arrow_values import int64_scalar, string_array

    for name, (lo, hi, text) in _RANGES.items():
        column = table.column(name)
        bad = pc.less(column, int64_scalar(lo))
        if hi is not None:
            bad = pc.or_(bad, pc.greater_equal(column, int64_scalar(hi)))
        _refuse_first(table, path, name, bad, f"outside the allowed range {text}")
    shape = table.column("input_shape")
    bad = pc.less(pc.list_flatten(shape), int64_scalar(0))
    if pc.any(bad).as_py():
        rows = pc.list_parent_indices(shape)
        row = pc.take(rows, pc.indices_nonzero(bad))[0].as_py()
        raise ManifestError(path, f"column 'input_shape' row {row + 1}: {short_repr(shape[row].as_py())} has a "
                                  "negative size")
    _refuse_first(table, path, "split", pc.invert(pc.is_in(table.column("split"),
                                                            value_set=string_array(SUITE_SPLITS))),
                  f"not one of {list(SUITE_SPLITS)}")


def _refuse_first(table, path, name, bad, what) -> None:
    import pyarrow.compute as pc

    if pc.any(bad).as_py():
        row = pc.indices_nonzero(bad)[0].as_py()
        raise ManifestError(path, f"column {name!r} row {row + 1}: {short_repr(table.column(name)[row].as_py())} "
                                  f"is {what}")


def check_manifest_consistency(table: pa.Table, path="<table>", registry: Registry | None = None,
                               check_families: bool = True) -> list[TaskSpec]:
    """Refuse a manifest that contradicts itself; returns the row specs.

    Every row's ``spec_json`` is read as a spec line (checked against its family with ``check_families``); the
    columns :data:`SPEC_COLUMNS` (and with ``check_families`` :data:`FAMILY_COLUMNS`, recomputed by the family)
    must equal what the spec gives. :class:`ManifestError` names the first disagreeing column and row."""
    from taskgen.specfile import SpecFileError

    try:
        specs = specs_from_manifest(table, registry, validate=check_families, path=path)
    except SpecFileError as e:  # a row's spec_json: the same words, as the manifest's error
        raise ManifestError(path, f"{e.line}: {e.reason}") from None
    if check_families:
        expected = manifest_table(specs, registry)
        names = SPEC_COLUMNS + FAMILY_COLUMNS
    else:
        from taskgen.arrow_values import column

        expected = pa.table({name: column([getattr(s, name) for s in specs], SCHEMA.field(name).type)
                             for name in SPEC_COLUMNS})
        names = SPEC_COLUMNS
    for name in names:
        stored, derived = table.column(name), expected.column(name)
        if stored.equals(derived):
            continue
        a, b = stored.to_pylist(), derived.to_pylist()
        row = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
        raise ManifestError(path, f"column {name!r} row {row + 1}: {short_repr(a[row])} contradicts the row's "
                                  f"spec_json, which gives {short_repr(b[row])}")
    return specs


def _is_frozen_default(sha: str, registry) -> bool:
    """Whether ``sha`` is the sha256 of the shipped default manifest's bytes as recorded (with its families'
    versions) in ``default-v1.lock.json``, and ``registry`` is the default one: then it was checked when frozen."""
    record = frozen_record()
    if record is None or (registry is not None and registry is not default_registry()):
        return False
    return record.get("manifest_sha256") == sha and _versions_match(record)


def _versions_match(record) -> bool:
    registry = default_registry()
    try:
        return all(registry.get(name).version == v for name, v in record.get("family_versions", {}).items())
    except Exception:  # an unknown or broken family: let the checked path say so
        return False


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
            raise SpecFileError(path, f"row {i}", f"task_id column says {short_repr(task_id)} but spec_json is "
                                                  f"{short_repr(spec.task_id)}")
    return specs


def filter_manifest(table: pa.Table, family: Sequence[str] = (), split: str | None = None,
                    max_params: int | None = None, max_flops: int | None = None,
                    dataset: Sequence[str] = (), variant: Sequence[str] = (), *,
                    min_params: int | None = None) -> pa.Table:
    """Rows of ``table`` matching every given filter (empty filters match everything); the cost bounds are
    inclusive."""
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
    if min_params is not None:
        masks.append(pc.greater_equal(table["params"], int64_scalar(min_params)))
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


def sample_manifest(table: pa.Table, n: int, seed: int = 0) -> pa.Table:
    """``n`` rows of ``table`` drawn without replacement with ``random.Random(seed)`` (whose stream Python
    guarantees: the same rows on every machine), kept in table order; all rows if there are at most ``n``."""
    import random

    if n >= table.num_rows:
        return table
    rows = sorted(random.Random(seed).sample(range(table.num_rows), n))
    return table.take(pa.array(rows, pa.int64()))


SORTABLE = tuple(f.name for f in SCHEMA if f.name not in ("input_shape", "spec_json"))
"""Manifest columns :func:`sort_manifest` sorts by."""


def sort_manifest(table: pa.Table, column: str) -> pa.Table:
    """``table`` sorted by ``column`` ascending, or descending when written ``-column``; ties keep table order. An
    unknown column is a ``ValueError`` listing the sortable ones (:data:`SORTABLE`)."""
    import pyarrow.compute as pc

    name, order = (column[1:], "descending") if column.startswith("-") else (column, "ascending")
    if name not in SORTABLE:
        raise ValueError(f"cannot sort by {short_repr(column)}; columns: {', '.join(SORTABLE)} "
                         f"(prefix - for descending)")
    position = pa.array(range(table.num_rows), pa.int64())  # the tie-breaker: a stable sort either way
    keyed = table.select([name]).append_column("__position", position)
    order_ = pc.sort_indices(keyed, sort_keys=[(name, order), ("__position", "ascending")])
    return table.take(order_)


def manifest_metadata(table: pa.Table) -> dict:
    """The manifest's schema-level metadata as a ``str -> str`` dict (bytes that are not UTF-8 are replaced)."""
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in (table.schema.metadata or {}).items()}


def row_summary(table: pa.Table) -> list[dict]:
    """Rows as dicts without the bulky ``spec_json`` column (for ``taskgen list --json``)."""
    return [{k: v for k, v in row.items() if k != "spec_json"} for row in table.to_pylist()]


def dumps_rows(rows) -> str:
    """Rows as indented JSON text."""
    return json.dumps(rows, indent=2, sort_keys=True)
