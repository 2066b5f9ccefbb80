"""Suite generation and the Arrow manifest: determinism, round trips, filters, bad files."""

import json

import pandas as pd
import pyarrow as pa
import pytest

from taskgen.manifest import (filter_manifest, load_manifest, manifest_metadata, specs_from_manifest,
                              write_manifest)
from taskgen.registry import Registry
from taskgen.specfile import SpecFileError, read_specs, write_specs
from taskgen.suite import generate_suite
from tests.toy_family import ToyFamily


@pytest.fixture
def registry():
    reg = Registry(builtins={}, use_entry_points=False)
    reg.register(ToyFamily)
    return reg


def _suite(registry, **kw):
    return generate_suite(["toy"], per_family=kw.pop("n", 200), seed=kw.pop("seed", 7), registry=registry,
                          held_out_variants=kw.pop("held", ()), **kw)


def test_suite_is_deterministic_and_seed_dependent(registry, tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_specs(_suite(registry), a)
    write_specs(_suite(registry), b)
    assert a.read_bytes() == b.read_bytes()
    write_specs(_suite(registry, seed=8), b)
    assert a.read_bytes() != b.read_bytes()


def test_split_fraction_and_held_out_variants(registry):
    specs = _suite(registry, n=400, holdout_fraction=0.25)
    frac = sum(s.split == "meta_test" for s in specs) / len(specs)
    assert 0.18 < frac < 0.32
    specs = _suite(registry, n=100, holdout_fraction=0.0, held=("toy/a",))
    assert all((s.split == "meta_test") == (s.config["kind"] == "a") for s in specs)
    assert {s.split for s in specs} == {"meta_train", "meta_test"}


def test_suite_manifest_specs_round_trip(registry, tmp_path):
    specs = _suite(registry)
    write_specs(specs, tmp_path / "s.jsonl")
    assert read_specs(tmp_path / "s.jsonl", registry=registry) == specs
    for fmt in ("arrow", "parquet"):
        path = tmp_path / f"m.{fmt}"
        write_manifest(specs, path, fmt, registry=registry)
        table = load_manifest(path, registry)  # a manifest's families are checked on load, as a spec file's
        assert specs_from_manifest(table, registry) == specs
        assert table.column("task_id").to_pylist() == [s.task_id for s in specs]
        assert manifest_metadata(table)["taskgen.spec_schema_version"] == "1"


def test_manifest_bytes_are_deterministic(registry, tmp_path):
    for fmt in ("arrow", "parquet"):
        write_manifest(_suite(registry), tmp_path / f"1.{fmt}", fmt, registry=registry)
        write_manifest(_suite(registry), tmp_path / f"2.{fmt}", fmt, registry=registry)
        assert (tmp_path / f"1.{fmt}").read_bytes() == (tmp_path / f"2.{fmt}").read_bytes()


def test_manifest_opens_with_pandas_and_ipc_reader(registry, tmp_path):
    specs = _suite(registry, n=50)
    write_manifest(specs, tmp_path / "m.arrow", registry=registry)
    with pa.OSFile(str(tmp_path / "m.arrow"), "rb") as f:
        table = pa.ipc.open_file(f).read_all()
    df = table.to_pandas()
    assert list(df["task_id"]) == [s.task_id for s in specs]
    assert (df["params"] == [s.config["dims"] for s in specs]).all()
    write_manifest(specs, tmp_path / "m.parquet", "parquet", registry=registry)
    assert len(pd.read_parquet(tmp_path / "m.parquet")) == 50


def test_filters(registry):
    from taskgen.manifest import manifest_table

    table = manifest_table(_suite(registry, n=100), registry=registry)
    small = filter_manifest(table, max_params=8)
    assert small.num_rows and all(p <= 8 for p in small["params"].to_pylist())
    test = filter_manifest(table, split="meta_test")
    assert set(test["split"].to_pylist()) == {"meta_test"}
    assert filter_manifest(table, family=["nope"]).num_rows == 0


def _lines(registry, n=3):
    return [s.to_json() for s in _suite(registry, n=n)]


def test_malformed_line_names_file_and_line(registry, tmp_path):
    lines = _lines(registry)
    lines[1] = lines[1][:-5]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SpecFileError, match=r"bad\.jsonl:2: not valid JSON"):
        read_specs(path, registry=registry)


def test_invalid_config_names_field_and_range(registry, tmp_path):
    lines = _lines(registry)
    data = json.loads(lines[2])
    data["config"]["dims"] = 1000
    data.pop("task_id")
    lines[2] = json.dumps(data)
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SpecFileError, match=r":3: dims: 1000 is outside the allowed range \[1, 64\]"):
        read_specs(path, registry=registry)


def test_edited_spec_with_stale_id_is_refused(registry, tmp_path):
    data = json.loads(_lines(registry, 1)[0])
    data["config"]["dims"] = 2
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(data) + "\n")
    with pytest.raises(SpecFileError, match="does not match the content"):
        read_specs(path, registry=registry)


def test_unknown_family_lists_known(registry, tmp_path):
    data = json.loads(_lines(registry, 1)[0])
    data["family"] = "nope"
    data.pop("task_id")
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(data) + "\n")
    with pytest.raises(SpecFileError, match="known families: toy"):
        read_specs(path, registry=registry)


def test_failed_write_leaves_nothing_partial(registry, tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text("old\n")
    specs = _suite(registry, n=5)
    with pytest.raises(ValueError, match="duplicate"):
        write_specs(specs + specs[:1], path)
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]
