"""The taskgen command line: sample → export → list/show/build, help everywhere, exit codes, no partial files."""

import json

import pytest
from click.testing import CliRunner

from taskgen_cli import cli
from taskgen.manifest import load_manifest
from taskgen.specfile import read_specs


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    out = d / "suite.jsonl"
    res = CliRunner().invoke(cli, ["sample", "--families", "quadratic,twod", "--per-family", "15", "--seed", "3",
                                   "-o", str(out)])
    assert res.exit_code == 0, res.output
    return out


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.mark.parametrize("cmd", [[], ["families"], ["sample"], ["export"], ["list"], ["show"], ["build"]])
def test_help_everywhere(cmd):
    res = run(*cmd, "--help")
    assert res.exit_code == 0 and "Usage:" in res.output


def test_sample_is_deterministic(suite, tmp_path):
    again = tmp_path / "again.jsonl"
    assert run("sample", "--families", "quadratic,twod", "--per-family", "15", "--seed", "3", "-o", again).exit_code == 0
    assert again.read_bytes() == suite.read_bytes()
    assert len(read_specs(suite)) == 30


def test_sample_json_summary(tmp_path):
    res = run("sample", "--families", "twod", "--per-family", "4", "-o", tmp_path / "s.jsonl", "--json")
    assert res.exit_code == 0
    assert json.loads(res.output)["specs"] == 4


def test_export_list_show(suite, tmp_path):
    manifest = tmp_path / "m.arrow"
    assert run("export", suite, "-o", manifest).exit_code == 0
    assert load_manifest(manifest).num_rows == 30
    res = run("list", "--suite", manifest, "--family", "twod", "--json")
    rows = json.loads(res.output)
    assert res.exit_code == 0 and len(rows) == 15 and {r["family"] for r in rows} == {"twod"}
    res = run("list", "--suite", suite, "--max-params", "2", "--json")
    assert all(r["params"] <= 2 for r in json.loads(res.output))
    task_id = rows[0]["task_id"]
    res = run("show", task_id, "--suite", manifest, "--json")
    assert res.exit_code == 0 and json.loads(res.output)["spec"]["task_id"] == task_id


def test_build_prints_falling_loss(suite):
    spec = next(s for s in read_specs(suite) if s.family == "quadratic")
    res = run("build", spec.task_id, "--suite", suite, "--steps", "100", "--lr", "0.01", "--json")
    assert res.exit_code == 0, res.output
    loss = json.loads(res.output)["loss"]
    assert len(loss) == 100 and loss[-1] < loss[0]


def test_errors_exit_nonzero_with_clear_messages(suite, tmp_path):
    res = run("show", "quadratic-000000000000", "--suite", suite)
    assert res.exit_code == 1 and "no task" in res.output
    res = run("sample", "--families", "nope", "--per-family", "1", "-o", tmp_path / "x.jsonl")
    assert res.exit_code == 1 and "known families" in res.output and not (tmp_path / "x.jsonl").exists()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(suite.read_text().splitlines()[0] + "\n{oops\n")
    res = run("export", bad, "-o", tmp_path / "m.arrow")
    assert res.exit_code == 1 and "bad.jsonl:2" in res.output and not (tmp_path / "m.arrow").exists()
    assert run("sample", "--per-family", "-1", "-o", tmp_path / "y.jsonl").exit_code == 2


def test_families_lists_config_spaces():
    res = run("families", "--json")
    rows = {r["name"]: r for r in json.loads(res.output)}
    assert res.exit_code == 0 and rows["quadratic"]["config_space"]["type"] == "object"
