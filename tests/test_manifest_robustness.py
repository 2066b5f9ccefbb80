"""Manifests read back (issue 17, G): validated in full before any value is read, consistent with their own
spec_json, refused in one line naming the file, the column and the row; and a seeded fuzz of manifests and spec
files beside tests/test_specfile_robustness.py (the large run: research/tools/fuzz_files.py)."""

import json
import subprocess
import sys

import pyarrow as pa
import pytest
from click.testing import CliRunner

from taskgen.api import default_manifest_path
from taskgen_cli import cli
from taskgen.manifest import SCHEMA, ManifestError, load_manifest, manifest_bytes, manifest_table
from tests import fuzz_cases
from tests.fuzz_cases import BAD_OUTCOMES, base_bytes, base_table, run_cases, tally

REPO = fuzz_cases.REPO


def _ipc(table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def _write(tmp_path, table_or_bytes, name="m.arrow"):
    path = tmp_path / name
    path.write_bytes(table_or_bytes if isinstance(table_or_bytes, bytes) else _ipc(table_or_bytes))
    return path


def _refused(path, **kw) -> str:
    with pytest.raises(ManifestError) as err:
        load_manifest(path, **kw)
    text = str(err.value)
    assert text.startswith(f"{path}: ") and "\n" not in text and len(text) < 600, text
    return text[len(f"{path}: "):]


def _set(table, name, row, value, type_=None):
    values = table.column(name).to_pylist()
    values[row] = value
    field = table.schema.field(name)
    return table.set_column(table.schema.get_field_index(name), field, pa.array(values, type_ or field.type))


# ---- damaged files: validated in full first (they used to end in SIGSEGV) ----------------------------------------

FLIPS = {  # byte flips of base_bytes("arrow") that killed load_manifest with SIGSEGV before the fix
    "offsets out of bounds": [(9, 158), (422, 121), (2454, 208)],
    "non-monotonic offsets": [(2375, 146), (3461, 247), (8333, 223), (11115, 239)],
}


@pytest.mark.parametrize("name", sorted(FLIPS))
def test_flipped_bytes_are_an_error_not_a_crash(tmp_path, name):
    data = bytearray(base_bytes("arrow"))
    for at, value in FLIPS[name]:
        data[at] = value
    path = _write(tmp_path, bytes(data))
    code = ("import sys\nfrom taskgen.manifest import ManifestError, load_manifest\n"
            "try:\n    load_manifest(sys.argv[1]).to_pylist()\nexcept ManifestError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code, str(path)], cwd=REPO, capture_output=True, text=True,
                         timeout=120)  # in a child: a regression must fail this test, not kill pytest
    assert out.returncode == 0, out.stderr[-500:]
    assert out.stdout.startswith(f"{path}: damaged or unreadable manifest (ArrowInvalid: In column 1: Invalid: "
                                 "Offset invariant failure")


def test_cli_names_the_damaged_file(tmp_path):
    data = bytearray(base_bytes("arrow"))
    for at, value in FLIPS["offsets out of bounds"]:
        data[at] = value
    path = _write(tmp_path, bytes(data))
    for args in (["list", "--manifest", path], ["show", "quadratic-", "--manifest", path]):
        res = CliRunner().invoke(cli, [str(a) for a in args])
        assert res.exit_code == 1 and res.output.startswith(f"Error: {path}: damaged or unreadable manifest")


def test_truncated_and_foreign_files(tmp_path):
    data = base_bytes("arrow")
    assert _refused(_write(tmp_path, data[:100])).startswith("damaged or unreadable manifest (")
    assert _refused(_write(tmp_path, b"PAR1" + b"\0" * 40, "m.parquet")).startswith("damaged or unreadable")
    assert _refused(_write(tmp_path, b"{}\n")) == "not an Arrow IPC or Parquet manifest (magic bytes b'{}\\n')"


def test_duplicate_column_is_refused(tmp_path):
    table = base_table()
    assert _refused(_write(tmp_path, table.append_column("params", table.column("params")))) == \
        "column 'params' appears 2 times (which one is meant?)"


def test_invalid_utf8_is_refused(tmp_path):
    table = base_table()
    meta = dict(table.schema.metadata)
    meta[b"taskgen.x\xff"] = b"1"
    assert _refused(_write(tmp_path, table.replace_schema_metadata(meta))) == \
        "schema metadata b'taskgen.x\\xff' is not UTF-8 text (invalid start byte at byte 9)"
    values = [v.encode() for v in table.column("variant").to_pylist()]
    values[2] = b"\xff" + values[2]
    import array

    offsets = array.array("i", [0])
    for v in values:
        offsets.append(offsets[-1] + len(v))
    bad = pa.Array.from_buffers(pa.string(), len(values), [None, pa.py_buffer(offsets.tobytes()),
                                                           pa.py_buffer(b"".join(values))])
    text = _refused(_write(tmp_path, table.set_column(table.schema.get_field_index("variant"), "variant", bad)))
    assert text.startswith("damaged or unreadable manifest (ArrowInvalid: ") and "UTF8" in text


@pytest.mark.parametrize("key,value,expected", [
    (b"taskgen.manifest_version", b"2", "schema metadata taskgen.manifest_version is '2'; this toolkit reads '1'"),
    (b"taskgen.manifest_version", b"1.0", "schema metadata taskgen.manifest_version is '1.0'; this toolkit reads '1'"),
    (b"taskgen.spec_schema_version", b"3", "schema metadata taskgen.spec_schema_version is '3'; this toolkit reads "
                                           "'1'"),
])
def test_unknown_versions_are_refused(tmp_path, key, value, expected):
    table = base_table()
    assert _refused(_write(tmp_path, table.replace_schema_metadata({**table.schema.metadata, key: value}))) == expected


def test_nulls_are_refused_even_in_a_non_nullable_schema(tmp_path):
    table = base_table()
    values = table.column("params").to_pylist()
    values[4] = None
    nullable = table.set_column(table.schema.get_field_index("params"), pa.field("params", pa.int64()),
                                pa.array(values, pa.int64()))
    assert _refused(_write(tmp_path, nullable)) == "column 'params' has null values"
    shapes = table.column("input_shape").to_pylist()
    shapes[5] = [None, 3]
    items = table.set_column(table.schema.get_field_index("input_shape"), "input_shape",
                             pa.array(shapes, pa.list_(pa.int32())))
    assert _refused(_write(tmp_path, items)) == "column 'input_shape' has null values"


# ---- values out of range, and a manifest that contradicts itself --------------------------------------------------

@pytest.mark.parametrize("name,value,expected", [
    ("seed", 2**32, "column 'seed' row 3: 4294967296 is outside the allowed range [0, 2**32)"),
    ("seed", -1, "column 'seed' row 3: -1 is outside the allowed range [0, 2**32)"),
    ("family_version", -1, "column 'family_version' row 3: -1 is outside the allowed range [0, 2**31)"),
    ("params", -1, "column 'params' row 3: -1 is outside the allowed range >= 0"),
    ("flops_per_step", -(2**40), "column 'flops_per_step' row 3: -1099511627776 is outside the allowed range >= 0"),
    ("batch_size", 0, "column 'batch_size' row 3: 0 is outside the allowed range >= 1"),
    ("split", "meta_val", "column 'split' row 3: 'meta_val' is not one of ['meta_train', 'meta_test']"),
    ("input_shape", [8, -1], "column 'input_shape' row 3: [8, -1] has a negative size"),
])
def test_values_out_of_range_are_refused_naming_column_and_row(tmp_path, name, value, expected):
    assert _refused(_write(tmp_path, _set(base_table(), name, 2, value))) == expected


def _contradiction(table, name, row):
    old = table.column(name)[row].as_py()
    new = {"task_id": lambda: old[:-1] + ("0" if old[-1] != "0" else "1"), "family": lambda: "twod",
           "seed": lambda: old + 1, "split": lambda: "meta_test" if old == "meta_train" else "meta_train",
           "variant": lambda: "twod/rosenbrock", "dataset": lambda: "mnist", "input_shape": lambda: [1, 2, 3],
           "batch_size": lambda: old + 1, "params": lambda: old + 1, "flops_per_step": lambda: old + 1}[name]()
    return old, new


def test_task_id_contradicting_its_spec_json_is_refused(tmp_path):
    table = base_table()
    stale = _set(table, "task_id", 0, "quadratic-83941fda3520")
    assert _refused(_write(tmp_path, stale)) == ("row 1: task_id column says 'quadratic-83941fda3520' but spec_json "
                                                 "is 'quadratic-83941fda3522'")


@pytest.mark.parametrize("name", ["family", "seed", "split", "variant", "dataset", "input_shape",
                                  "batch_size", "params", "flops_per_step"])
def test_a_column_contradicting_its_spec_json_is_refused(tmp_path, name):
    from families.errors import short_repr

    table = base_table()
    row = 0  # a quadratic row (dataset "", input_shape [60]) of the base manifest
    old, new = _contradiction(table, name, row)
    text = _refused(_write(tmp_path, _set(table, name, row, new)))
    assert text == f"column {name!r} row 1: {short_repr(new)} contradicts the row's spec_json, which gives " \
                   f"{short_repr(old)}"


def test_family_version_contradiction_is_refused(tmp_path):
    text = _refused(_write(tmp_path, _set(base_table(), "family_version", 0, 2)))
    assert text == "column 'family_version': family_version: 2 but this toolkit has quadratic version 1"


def test_spec_json_of_another_row_or_stale_is_refused(tmp_path):
    table = base_table()
    lines = table.column("spec_json").to_pylist()
    swapped = _set(_set(table, "spec_json", 0, lines[1]), "spec_json", 1, lines[0])
    assert _refused(_write(tmp_path, swapped)).startswith("row 1: task_id column says 'quadratic-")
    data = json.loads(lines[0])
    data["config"]["dims"] += 1
    edited = _set(table, "spec_json", 0, json.dumps(data))
    assert _refused(_write(tmp_path, edited)).startswith("row 1: task_id: stored id 'quadratic-")


def test_without_family_checks_the_spec_columns_are_still_checked(tmp_path):
    path = _write(tmp_path, _set(base_table(), "seed", 2, base_table().column("seed")[2].as_py() + 1))
    assert _refused(path, check_families=False).startswith("column 'seed' row 3: ")
    # the family-derived columns need the family: not checked without it
    load_manifest(_write(tmp_path, _set(base_table(), "params", 2, 7)), check_families=False)


def test_list_filters_never_see_a_contradictory_manifest(tmp_path):
    table = base_table()
    path = _write(tmp_path, _set(table, "params", 0, 1))  # a small-looking row: would pass --max-params 5
    res = CliRunner().invoke(cli, ["list", "--manifest", str(path), "--max-params", "5"])
    assert res.exit_code == 1 and res.output == (f"Error: {path}: column 'params' row 1: 1 contradicts the row's "
                                                 "spec_json, which gives 60\n")


def test_faithful_rewrites_still_load(tmp_path):
    table = base_table()
    parquet = _write(tmp_path, base_bytes("parquet"), "m.parquet")
    assert load_manifest(parquet).equals(table)
    widened = pa.table({n: (c.cast(pa.large_string()) if pa.types.is_string(c.type) else c)
                        for n, c in zip(table.column_names, table.columns)})
    assert load_manifest(_write(tmp_path, widened)).equals(table)
    assert load_manifest(_write(tmp_path, pa.concat_tables([table.slice(0, 3), table.slice(3)]))).equals(table)


# ---- the shipped default manifest keeps its fast path -------------------------------------------------------------

def test_default_manifest_is_checked_once_when_frozen_not_at_every_load(monkeypatch, tmp_path):
    import taskgen.manifest as manifest_mod

    calls = []
    real = manifest_mod.check_manifest_consistency
    monkeypatch.setattr(manifest_mod, "check_manifest_consistency", lambda *a, **k: calls.append(1) or real(*a, **k))
    table = load_manifest(default_manifest_path())
    assert table.num_rows == 6000 and calls == []
    copy = _write(tmp_path, default_manifest_path().read_bytes())  # the same bytes elsewhere: the same record
    load_manifest(copy)
    assert calls == []
    load_manifest(_write(tmp_path, manifest_bytes(table.slice(0, 50))))  # other bytes: checked
    assert calls == [1]


def test_load_specs_of_a_manifest_parses_each_row_once(monkeypatch, tmp_path):
    import taskgen
    import taskgen.specfile as specfile

    path = _write(tmp_path, base_bytes("arrow"))
    calls = []
    real = specfile.parse_spec_lines
    monkeypatch.setattr(specfile, "parse_spec_lines", lambda *a, **k: calls.append(1) or real(*a, **k))
    specs = taskgen.load_specs(path)
    assert [s.task_id for s in specs] == base_table().column("task_id").to_pylist() and calls == [1]


def test_manifest_schema_is_what_the_writer_writes():
    assert manifest_table(list(fuzz_cases.base_specs())).schema.equals(SCHEMA)


# ---- seeded fuzzing in CI (a few hundred cases; the large run is research/tools/fuzz_files.py) --------------------

@pytest.mark.parametrize("what,n", [("manifests", 300), ("specs", 300)])
def test_fuzzed_files_are_read_or_refused_never_crash_nor_accept_invalid(what, n):
    results = run_cases(what, n, seed=17)
    counts = tally(results)
    bad = [r for r in results if r["outcome"] in BAD_OUTCOMES or r["outcome"] == "refused-valid"]
    assert counts["cases"] == n and not bad, bad[:5]
    assert counts["outcomes"].get("refused", 0) > n // 2


def test_a_user_manifest_is_checked_in_full_once_per_bytes_and_family_versions(tmp_path, monkeypatch):
    import taskgen
    from taskgen import manifest as mf

    specs = taskgen.generate_suite(["quadratic"], per_family=6, seed=3)
    path = tmp_path / "m.arrow"
    taskgen.write_manifest(specs, path)
    calls = []
    real = mf.check_manifest_consistency
    monkeypatch.setattr(mf, "check_manifest_consistency", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = mf.load_manifest(path)
    again = mf.load_manifest(path)
    assert len(calls) == 1 and first.equals(again)  # the second load trusts the record of the first
    assert [s.task_id for s in taskgen.load_specs(path)] == [s.task_id for s in specs] and len(calls) == 1
    taskgen.write_manifest(specs[:5], path)  # other bytes: checked again
    mf.load_manifest(path)
    assert len(calls) == 2
    for record in (tmp_path / "manifest_checks").glob("*.json"):  # made under another family version
        record.write_text('{"family_versions": {"quadratic": 999}}')
    taskgen.write_manifest(specs, path)
    mf.load_manifest(path)
    mf.load_manifest(path)
    assert len(calls) == 3
