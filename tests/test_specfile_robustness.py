"""Spec files and manifests read back whatever they are given: the toolkit's own error naming file and line
(or column), never a crash or a silent acceptance (issue 11, kinds D and F)."""

import json

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from families.base import Cost, Family
from families.errors import ConfigError
from families.space import Struct
from taskgen.api import default_manifest_path, default_suite_path
from taskgen.manifest import ManifestError, load_manifest, manifest_bytes, specs_from_manifest
from taskgen.registry import Registry
from taskgen.spec import SEED_LIMIT, TaskSpec
from taskgen.specfile import SpecFileError, read_specs, write_specs

LINES = default_suite_path().read_bytes().split(b"\n")[:-1]
Q = LINES[0].decode()  # a real quadratic spec line


def _read_line(tmp_path, line, name="s.jsonl"):
    path = tmp_path / name
    path.write_bytes(line if isinstance(line, bytes) else line.encode("utf-8", "surrogatepass"))
    return path, read_specs(path)


def _replace(line: str, old: str, new: str) -> str:
    assert old in line
    return line.replace(old, new, 1)


def _noid(line: str) -> str:
    """The line without its (optional) task_id, so that the family's validation is reached."""
    data = json.loads(line)
    del data["task_id"]
    return json.dumps(data)


@pytest.mark.parametrize("make,expected", [
    (lambda: "[" * 5000 + "]" * 5000, "nested too deeply"),
    (lambda: _replace(Q, '"dims":60', '"dims":' + "9" * 5000), "4300 digits"),
    (lambda: _noid(_replace(Q, '"kind":"normal"', '"kind":["normal"]')), "matrix.kind: ['normal'] is not one of"),
    (lambda: _noid(_replace(Q, '"kind":"normal"', '"kind":{"a":1}')), "matrix.kind"),
    (lambda: _replace(Q, '"seed":1169926100', '"seed":9223372036854775808'), "seed: 9223372036854775808 is too large"),
    (lambda: _replace(Q, '"seed":1169926100', f'"seed":{SEED_LIMIT}'), "allowed range [0, 2**32)"),
    (lambda: _replace(Q, '"dims":60', '"dims":60,"dims":61'), "dims: duplicate key"),
    (lambda: _replace(Q, '"loss_scale":0.473423', '"loss_scale":1e999'), "out of the range of a float"),
    (lambda: _replace(Q, '"output":"log"', '"output":"\\ud800"'), "unpaired surrogate"),
])
def test_malformed_line_is_a_toolkit_error_naming_file_and_line(tmp_path, make, expected):
    with pytest.raises(SpecFileError) as err:
        _read_line(tmp_path, (Q + "\n" + make() + "\n"))
    assert str(err.value).startswith(f"{tmp_path / 's.jsonl'}:2: ") and expected in str(err.value)


def test_non_utf8_byte_names_its_line(tmp_path):
    data = LINES[0] + b"\n" + LINES[1] + b"\n" + LINES[2].replace(b"quadratic", b"quadr\xfftic", 1) + b"\n"
    with pytest.raises(SpecFileError, match=r"s\.jsonl:3: not UTF-8 text"):
        _read_line(tmp_path, data)


@pytest.mark.parametrize("data", [b"", b"\n\n  \n"])
def test_empty_file_is_refused(tmp_path, data):
    with pytest.raises(SpecFileError, match=r"s\.jsonl:1: no spec lines: the file is empty"):
        _read_line(tmp_path, data)


def test_seed_range_is_what_prng_keys_hold():
    TaskSpec.create("fam", 1, SEED_LIMIT - 1, {})
    with pytest.raises(ConfigError, match="seed"):
        TaskSpec.create("fam", 1, SEED_LIMIT, {})


class LabelFamily(Family):
    """A user family with a free-form string field (any Unicode), for the round-trip property."""

    name = "labels"
    version = 1

    def config_space(self):
        return Struct({})

    def validate(self, config):
        if set(config) != {"label"} or not isinstance(config["label"], str):
            raise ConfigError("label", "must be a string")

    def sample(self, rng):
        return {"label": "x"}

    def cost(self, config):
        return Cost(1, 1)

    def build(self, spec):
        raise NotImplementedError


def _label_registry():
    reg = Registry(builtins={}, use_entry_points=False)
    reg.register(LabelFamily)
    return reg


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",))), min_size=1, max_size=5, unique=True))
@settings(max_examples=150, deadline=None)
def test_whatever_write_specs_writes_read_specs_reads(tmp_path_factory, labels):
    # U+2028, U+2029, U+0085, \r, \x0b, \x0c … inside strings are content, not line ends.
    path = tmp_path_factory.mktemp("rt") / "s.jsonl"
    specs = [TaskSpec.create("labels", 1, i, {"label": s}) for i, s in enumerate(labels)]
    write_specs(specs, path)
    assert read_specs(path, registry=_label_registry()) == specs


def test_line_separators_in_strings_round_trip(tmp_path):
    specs = [TaskSpec.create("labels", 1, 0, {"label": "a\u2028b\u2029c\u0085d\re\x0bf\x0c"})]
    write_specs(specs, tmp_path / "s.jsonl")
    assert read_specs(tmp_path / "s.jsonl", registry=_label_registry()) == specs


# ---- spec values: one rule for integers, total config checks, short messages (issue 17, G) ----------------------

M = next(x.decode() for x in LINES if b'"family":"mlp"' in x and b'"image_size":28' in x)  # a real mlp line
BIG = "1" + "0" * 400  # an integer too large for a float


@pytest.mark.parametrize("make,expected", [
    (lambda: _noid(_replace(Q, '"loss_scale":0.473423', f'"loss_scale":{BIG}')),
     "loss_scale: <an integer of 1329 bits> is outside the allowed range [1e-05, 1000.0]"),
    (lambda: _noid(_replace(Q, '"loss_scale":0.473423', f'"loss_scale":-{BIG}')),
     "loss_scale: <an integer of 1329 bits> is outside the allowed range [1e-05, 1000.0]"),
    (lambda: _noid(_replace(M, '"image_size":28', '"image_size":28.0')),
     "data.image_size: 28.0 is not one of [8, 14, 16, 28] (it is a JSON float; write 28)"),
    (lambda: _noid(_replace(M, '"batch_size":31', '"batch_size":31.0')), "data.batch_size: expected an integer in "),
    (lambda: _noid(_replace(M, '"layers":[110,', '"layers":[110.0,')),
     "layers[0]: expected an integer in [16, 128], got float 110.0"),
    (lambda: _noid(_replace(M, '"center_data":true', '"center_data":1')), "data.center_data: expected true or "
                                                                          "false, got 1"),
    (lambda: _replace(Q, '"schema_version":1', '"schema_version":1.0'),
     "schema_version: 1.0 is not supported (this toolkit reads the integer 1)"),
    (lambda: _replace(Q, '"schema_version":1', '"schema_version":true'), "schema_version: True is not supported"),
    (lambda: _replace(Q, '"family_version":1', '"family_version":1.0'), "family_version: must be a non-negative "
                                                                        "integer, got 1.0"),
    (lambda: _replace(Q, '"seed":1169926100', '"seed":1169926100.0'), "seed: must be a non-negative integer"),
])
def test_integer_fields_take_json_integers_and_float_fields_any_size(tmp_path, make, expected):
    with pytest.raises(SpecFileError) as err:
        _read_line(tmp_path, Q + "\n" + make() + "\n")
    assert str(err.value).startswith(f"{tmp_path / 's.jsonl'}:2: ") and expected in str(err.value), str(err.value)


@pytest.mark.parametrize("make", [
    lambda: _noid(_replace(Q, '"output":"log"', '"output":"' + "x" * 4_000_000 + '"')),
    lambda: _noid(_replace(Q, '"output":"log"', '"output":[' + "1," * 500_000 + '1]')),
    lambda: _noid(_replace(Q, '"output":"log"', '"output":"log","' + "k" * 100_000 + '":1')),
    lambda: _replace(Q, '"family":"quadratic"', '"family":"' + "f" * 1_000_000 + '"'),
    lambda: _replace(Q, '"task_id":"quadratic-83941fda3522"', '"task_id":"' + "t" * 1_000_000 + '"'),
])
def test_long_values_are_echoed_cut(tmp_path, make):
    with pytest.raises(SpecFileError) as err:
        _read_line(tmp_path, Q + "\n" + make() + "\n")
    assert len(str(err.value)) < 600, len(str(err.value))


def test_short_repr_is_exact_and_total():
    from families.errors import short_repr

    assert short_repr("abc") == "'abc'" and short_repr(10**400) == "<an integer of 1329 bits>"
    assert short_repr("x" * 100, 10) == "'xxxxxxxxx... (100 characters)"
    assert short_repr(list(range(10**6)), 20) == "[0, 1, 2, 3, 4, 5, 6..."
    assert short_repr({"a": 1}) == "{'a': 1}" and short_repr([1, [2, {"b": None}]]) == "[1, [2, {'b': None}]]"
    assert short_repr(2**63) == "9223372036854775808" and short_repr(1.5) == "1.5" and short_repr(True) == "True"

    class Unprintable:
        def __repr__(self):
            raise RuntimeError("no")

    assert short_repr(Unprintable()) == "<Unprintable>"


@pytest.mark.parametrize("command", [["export", "{f}", "-o", "{d}/m.arrow"], ["list", "--suite", "{f}"],
                                     ["show", "quadratic-", "--suite", "{f}"]])
def test_huge_integer_in_a_float_field_is_one_error_line_in_every_command(tmp_path, command):
    from click.testing import CliRunner

    from taskgen_cli import cli

    path = tmp_path / "s.jsonl"
    path.write_text(Q + "\n" + _noid(_replace(Q, '"loss_scale":0.473423', f'"loss_scale":{BIG}')) + "\n")
    res = CliRunner().invoke(cli, [a.format(f=path, d=tmp_path) for a in command])
    assert res.exit_code == 1 and res.output == (f"Error: {path}:2: loss_scale: <an integer of 1329 bits> is outside "
                                                 "the allowed range [1e-05, 1000.0]\n")


def test_config_checks_are_total_over_json_values():
    """Every schema kind checks any JSON value: a ConfigError or nothing, never another exception."""
    from hypothesis import given as given_
    from hypothesis import settings as settings_

    from families.space import Bool, Choice, Float, Int, ListOf, Struct, Tagged

    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.integers(min_value=10**300, max_value=10**400)
        | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=5),
        lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=3), kids, max_size=4),
        max_leaves=12)
    schemas = [Int(0, 10), Float(-1.0, 1.0), Choice((8, 14)), Choice(("a", "b")), Choice((True,)), Bool(),
               ListOf(Int(0, 3), 0, 2), Struct({"a": Float(0.0, 1.0)}, frozenset({"a"})),
               Tagged("kind", {"x": Struct({"n": Int(1, 2)})})]

    @given_(json_values)
    @settings_(max_examples=300, deadline=None)
    def check(value):
        for schema in schemas:
            try:
                schema.check(value, "f")
            except ConfigError as e:
                assert len(str(e)) < 400

    check()


# ---- manifests -------------------------------------------------------------------------------------------------

def _write_table(path, table):
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as w:
        w.write_table(table)
    path.write_bytes(sink.getvalue().to_pybytes())
    return path


def test_foreign_manifest_with_string_views_is_normalised(tmp_path):
    table = load_manifest(default_manifest_path())
    foreign = pa.table({name: (col.cast(pa.string_view()) if pa.types.is_string(col.type) else col)
                        for name, col in zip(table.column_names, table.columns)})  # as polars writes it
    assert foreign.schema.field("task_id").type == pa.string_view()
    back = load_manifest(_write_table(tmp_path / "polars.arrow", foreign))
    assert back.schema.equals(table.schema) and back.equals(table)
    assert manifest_bytes(back) == default_manifest_path().read_bytes()


@pytest.mark.parametrize("change,expected", [
    (lambda t: t.drop_columns(["params"]), "column 'params' is missing"),
    (lambda t: t.set_column(t.schema.get_field_index("seed"), "seed", t.column("seed").cast(pa.float64())),
     "column 'seed' has type double, expected int64"),
    (lambda t: t.set_column(t.schema.get_field_index("family"), "family",
                            pa.array(["nope"] * t.num_rows)), "column 'family': family: unknown family 'nope'"),
    (lambda t: t.set_column(t.schema.get_field_index("family_version"), "family_version",
                            pa.array([7] * t.num_rows, pa.int32())), "quadratic version 1"),
])
def test_bad_manifest_is_refused_naming_the_column(tmp_path, change, expected):
    table = load_manifest(default_manifest_path()).slice(0, 20)
    path = _write_table(tmp_path / "m.arrow", change(table))
    with pytest.raises(ManifestError) as err:
        load_manifest(path)
    assert str(err.value).startswith(f"{path}: ") and expected in str(err.value)


def test_manifest_rows_are_checked_like_spec_lines(tmp_path):
    table = load_manifest(default_manifest_path()).slice(0, 3)
    bad = table.column("spec_json").to_pylist()
    bad[1] = bad[1].replace('"dims":', '"dims":1000000,"x":', 1)
    t = table.set_column(table.schema.get_field_index("spec_json"), "spec_json", pa.array(bad))
    with pytest.raises(SpecFileError, match=r"m\.arrow: row 2: "):
        specs_from_manifest(t, path=tmp_path / "m.arrow")


# ---- fuzzing ---------------------------------------------------------------------------------------------------

def fuzz(tmp_path, n: int, seed: int = 0) -> dict:
    """Read ``n`` mutated spec files (:func:`tests.fuzz_cases.spec_case`: byte flips, truncation, wrong types, huge
    numbers, unknown family, id mismatch, deep nesting, huge literals, …); count outcomes by (mutation kind,
    accepted|error). A crash, an error that does not name the file and line, an over-long message or an accepted
    invalid spec fails."""
    from tests import fuzz_cases

    counts = {}
    for i in range(n):
        kind, outcome, detail = fuzz_cases.run_spec_case(seed, i, tmp_path / "fuzz.jsonl")
        assert outcome in ("refused", "accepted"), (kind, outcome, detail)
        key = (kind, "error" if outcome == "refused" else "accepted")
        counts[key] = counts.get(key, 0) + 1
    return counts


def test_fuzzed_spec_files_give_a_spec_or_a_named_error(tmp_path):
    counts = fuzz(tmp_path, 200)
    assert sum(counts.values()) == 200
    assert counts.get(("id-mismatch", "accepted"), 0) == 0 and counts.get(("deep", "accepted"), 0) == 0


if __name__ == "__main__":  # the long run reported in the issue note: python -m tests.test_specfile_robustness
    import sys
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        result = fuzz(Path(d), int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
    for k in sorted(result):
        print(f"{k[0]:<16} {k[1]:<9} {result[k]}")
    print("total", sum(result.values()))
