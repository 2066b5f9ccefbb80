"""The library and command line fit optax/pyarrow habits (issue 16, parts 3 and 5): one writer argument order,
task ids where specs go, the toolkit's own type errors, manifest formats by file name, and the small command-line
gaps (``list --sample/--seed/--min-params/--sort``, ``show`` text, ``families`` ranges, ``data path``)."""

import json
import random
import warnings

import pyarrow as pa
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import taskgen
from taskgen.arguments import ArgumentTypeError
from taskgen_cli import cli
from taskgen.manifest import manifest_format, sample_manifest, sort_manifest

SHOWN_ID = "quadratic-83941fda3522"


@pytest.fixture(scope="module")
def specs():
    return taskgen.generate_suite(["quadratic", "twod"], per_family=4, seed=5)


def _run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


# ---- one order: write_specs(specs, path) like write_manifest(specs, path) ------------------------------------------

def test_write_specs_takes_specs_then_path_and_the_old_order_warns(specs, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert taskgen.write_specs(specs, tmp_path / "new.jsonl") == 8
    with pytest.warns(DeprecationWarning, match=r"write_specs\(path, specs\) is deprecated: call "
                                                r"write_specs\(specs, path\)"):
        assert taskgen.write_specs(str(tmp_path / "old.jsonl"), specs) == 8
    assert (tmp_path / "old.jsonl").read_bytes() == (tmp_path / "new.jsonl").read_bytes()
    assert taskgen.read_specs(tmp_path / "new.jsonl") == specs


@pytest.mark.parametrize("call,message", [
    (lambda p, s: taskgen.write_specs(s, 3),
     "write_specs(): path must be a file path (str or os.PathLike), got int 3"),
    (lambda p, s: taskgen.write_specs([{"a": 1}], p),
     "write_specs(): specs[0] is dict {'a': 1}, not a TaskSpec (make one with TaskSpec.create, TaskSpec.from_dict "
     "or TaskSpec.from_json)"),
    (lambda p, s: taskgen.write_specs(s[0], p),
     "write_specs(): specs must be an iterable of TaskSpec, got TaskSpec"),
    (lambda p, s: taskgen.write_manifest(s, None),
     "write_manifest(): path must be a file path (str or os.PathLike), got NoneType None"),
    (lambda p, s: taskgen.build_task(7),
     "build_task(): spec must be a TaskSpec or a task id (str), got int 7"),
    (lambda p, s: taskgen.build_task(s[0], suite=p),
     "build_task(): suite is only used to look up a task id; a TaskSpec needs none"),
])
def test_wrong_types_are_the_toolkits_type_error_naming_the_argument(specs, tmp_path, call, message):
    with pytest.raises(ArgumentTypeError) as err:
        call(tmp_path / "x.jsonl", specs)
    assert isinstance(err.value, TypeError)
    assert str(err.value).startswith(message)
    assert not (tmp_path / "x.jsonl").exists()


def test_build_task_takes_a_task_id_in_the_default_suite_or_a_given_one(specs, tmp_path):
    task = taskgen.build_task(SHOWN_ID)
    assert task.spec.task_id == SHOWN_ID and task.spec == taskgen.resolve_spec(SHOWN_ID)
    taskgen.write_specs(specs, tmp_path / "s.jsonl")
    twod = next(s for s in specs if s.family == "twod")
    assert taskgen.build_task(twod.task_id[:9], suite=tmp_path / "s.jsonl").spec == twod
    with pytest.raises(KeyError, match="no task 'twod-000000000000'"):
        taskgen.build_task("twod-000000000000", suite=tmp_path / "s.jsonl")


# ---- manifest formats follow the file name ------------------------------------------------------------------------

@pytest.mark.parametrize("name,fmt,expected", [
    ("m.parquet", None, "parquet"), ("m.PQ", None, "parquet"), ("m.arrow", None, "arrow"), ("m.feather", None, "arrow"),
    ("m.bin", None, "arrow"), ("m.bin", "parquet", "parquet"), ("m.parquet", "parquet", "parquet"),
])
def test_manifest_format_from_the_name(name, fmt, expected):
    assert manifest_format(name, fmt) == expected


def test_a_format_contradicting_the_name_is_refused(specs, tmp_path):
    with pytest.raises(ValueError) as err:
        taskgen.write_manifest(specs, tmp_path / "x.parquet", "arrow")
    assert str(err.value) == (f"{tmp_path / 'x.parquet'}: the name ends in .parquet (parquet) but the format asked "
                              "for is arrow; name the file *.arrow or leave the format out")
    assert not (tmp_path / "x.parquet").exists()


def test_export_writes_what_the_name_says_and_has_json(specs, tmp_path):
    taskgen.write_specs(specs, tmp_path / "s.jsonl")
    res = _run("export", tmp_path / "s.jsonl", "-o", tmp_path / "m.parquet", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"output": str(tmp_path / "m.parquet"), "format": "parquet", "rows": 8}
    assert (tmp_path / "m.parquet").read_bytes()[:4] == b"PAR1"
    assert taskgen.load_manifest(tmp_path / "m.parquet").num_rows == 8
    res = _run("export", tmp_path / "s.jsonl", "-o", tmp_path / "n.parquet", "--format", "arrow")
    assert res.exit_code == 2 and "name the file *.arrow or leave the format out" in res.output
    assert not (tmp_path / "n.parquet").exists()
    res = _run("export", tmp_path / "s.jsonl", "-o", tmp_path / "m.arrow")
    assert res.exit_code == 0 and res.stdout == f"wrote 8 rows to {tmp_path / 'm.arrow'} (arrow)\n"
    assert (tmp_path / "m.arrow").read_bytes()[:6] == b"ARROW1"


# ---- list: --min-params, --sample N --seed S, --sort [-]COLUMN ---------------------------------------------------

def _ids(*args):
    res = _run("list", *args, "--json")
    assert res.exit_code == 0, res.output
    return [r["task_id"] for r in json.loads(res.stdout)], json.loads(res.stdout)


def test_list_sample_is_seeded_and_pinned():
    ids, _ = _ids("--family", "twod", "--sample", "3", "--seed", "1")
    assert ids == ["twod-0d9c5213d5ec", "twod-36efe096c7a9", "twod-ef0f9ae6a877"]  # random.Random(1): every machine
    assert _ids("--family", "twod", "--sample", "3", "--seed", "1")[0] == ids
    assert _ids("--family", "twod", "--sample", "3", "--seed", "2")[0] != ids
    assert _ids("--family", "twod", "--sample", "3")[0] == _ids("--family", "twod", "--sample", "3", "--seed", "0")[0]
    res = _run("list", "--seed", "3")
    assert res.exit_code == 2 and "--seed only seeds --sample; give --sample N too" in res.output


def test_list_min_params_and_sort():
    _, rows = _ids("--family", "mlp", "--min-params", "20000", "--max-params", "30000", "--sort", "-params")
    params = [r["params"] for r in rows]
    assert params and all(20000 <= p <= 30000 for p in params) and params == sorted(params, reverse=True)
    _, rows = _ids("--family", "mlp", "--min-params", "20000", "--max-params", "30000", "--sort", "params",
                   "--limit", "3")
    assert [r["params"] for r in rows] == sorted(params)[:3]
    res = _run("list", "--sort", "spec_json")
    assert res.exit_code == 2 and "cannot sort by 'spec_json'; columns: task_id, family" in res.output


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.integers(0, 5), max_size=30), descending=st.booleans())
def test_sort_is_stable_both_ways(values, descending):
    table = pa.table({"params": pa.array(values, pa.int64()), "task_id": [f"t{i}" for i in range(len(values))]})
    out = sort_manifest(table, "-params" if descending else "params")
    expected = sorted(range(len(values)), key=lambda i: -values[i] if descending else values[i])
    assert out["task_id"].to_pylist() == [f"t{i}" for i in expected]


@settings(max_examples=40, deadline=None)
@given(n_rows=st.integers(0, 40), n=st.integers(0, 50), seed=st.integers(0, 2**32 - 1))
def test_sample_keeps_table_order_and_follows_pythons_random(n_rows, n, seed):
    table = pa.table({"task_id": [f"t{i}" for i in range(n_rows)]})
    out = sample_manifest(table, n, seed)["task_id"].to_pylist()
    if n >= n_rows:
        assert out == table["task_id"].to_pylist()
    else:
        assert out == [f"t{i}" for i in sorted(random.Random(seed).sample(range(n_rows), n))]


# ---- show, families, data path -------------------------------------------------------------------------------------

def test_show_prints_text_and_json_only_with_json():
    res = _run("show", SHOWN_ID)
    assert res.exit_code == 0
    assert res.stdout.splitlines()[:4] == [
        f"task           {SHOWN_ID}", "family         quadratic v1  variant quadratic/normal",
        "seed           1169926100  split meta_train", "params         60  flops/step 25500"]
    assert not res.stdout.lstrip().startswith("{")
    res = _run("show", SHOWN_ID, "--json")
    out = json.loads(res.stdout)  # the whole of stdout is one JSON document
    assert (out["spec"]["task_id"], out["params"], out["flops_per_step"]) == (SHOWN_ID, 60, 25500)


def test_families_shows_ranges():
    res = _run("families")
    lines = res.stdout.splitlines()
    start = lines.index("quadratic v1")
    assert lines[start + 1] == "  dims         int in [2, 1000]"
    assert "  matrix.mean  float in [-10, 10] (when kind is normal)" in lines
    assert any(line.startswith("  data.batch_size") and line.endswith("int in [8, 128]") for line in lines)


def test_data_path_of_an_unknown_dataset_is_a_usage_error():
    res = _run("data", "path", "nosuch")
    assert res.exit_code == 2
    assert "Invalid value for NAME: unknown dataset 'nosuch'; known: bible_kjv, digits" in res.output
    res = _run("data", "path", "digits")
    assert res.exit_code == 0 and res.stdout.strip().endswith("digits")
