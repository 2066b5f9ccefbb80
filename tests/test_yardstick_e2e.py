"""The yardstick end to end on a two-task set of real twod tasks: baselines computed and packed, θ run, cached
and scored, and ``taskgen lopt eval --on`` in text and JSON with ``--against`` and ``--out``."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from lopt_trainer.evaluation import baseline_table as bt
from lopt_trainer.evaluation import task_sets as ts
from lopt_trainer.evaluation import yardstick
from lopt_trainer.theta.load import load_theta
from tests.yardstick_helpers import tiny_yardstick


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A data folder whose 'valid' and 'test' sets are two twod tasks each, with computed baselines."""
    root = tmp_path_factory.mktemp("yardstick")
    return root, tiny_yardstick(root)


def test_baselines_are_real_and_best_rate_improves_on_init(tiny):
    _, data = tiny
    base = bt.load_baselines("valid", data_dir=data)
    best = np.nanmin(base.final.mean(axis=2), axis=1)
    assert np.all(best < base.init.mean(axis=1))  # the tuned grid trains
    assert np.all(np.isfinite(base.final[:, 0]))  # 1e-7 never diverges


def test_theta_runs_are_cached_and_deterministic(tiny, tmp_path):
    _, data = tiny
    theta = load_theta("handset")
    a = yardstick.run_theta(theta, "valid", cache=tmp_path, progress=False, data_dir=data)
    assert a.wall_s > 0  # ran now
    b = yardstick.run_theta(theta, "valid", cache=tmp_path, progress=False, data_dir=data)
    assert b.wall_s == 0.0  # read back from the cache
    np.testing.assert_array_equal(a.final, b.final)
    c = yardstick.run_theta(theta, "valid", cache=tmp_path / "other", progress=False, data_dir=data)
    np.testing.assert_array_equal(a.final, c.final)  # recomputed: the same numbers
    assert (tmp_path / "valid" / a.theta_digest / "runs").is_dir()


def test_evaluate_handset_beats_random(tiny, tmp_path):
    _, data = tiny
    hs, hs_scores, _ = yardstick.evaluate(load_theta("handset"), "test", cache=tmp_path, progress=False, data_dir=data)
    rnd, rnd_scores, _ = yardstick.evaluate(load_theta("random"), "test", cache=tmp_path, progress=False,
                                         data_dir=data)
    assert hs["tasks"] == 2 and hs["seeds"] == 3 and hs["steps"] == 1000
    assert hs["rows"]["per_task_adamlr@14"]["final"]["mean"]["value"] >= -1e-12  # no rate beats the best
    assert hs["rows"]["theta"]["final"]["mean"]["value"] < rnd["rows"]["theta"]["final"]["mean"]["value"]
    comp = yardstick.compare(hs_scores, rnd_scores)
    assert comp["final"]["difference"]["mean"] < 0 and comp["final"]["tasks"] == 2


def _cli(args, data, cache, monkeypatch):
    from taskgen_cli import cli

    monkeypatch.setattr(ts, "DATA_DIR", data)
    monkeypatch.setenv(yardstick.CACHE_ENV, str(cache))
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def test_cli_text_json_against_and_out(tiny, tmp_path, monkeypatch):
    _, data = tiny
    out = tmp_path / "out"
    res = _cli(["lopt", "eval", "--theta", "handset", "--on", "test", "--against", "random", "--out", str(out),
                "--no-progress"], data, tmp_path / "cache", monkeypatch)
    assert res.exit_code == 0, res.output
    text = res.output
    assert "θ handset on the test set: 2 tasks × 3 seeds" in text
    assert "Global AdamLR" in text and "per-task AdamLR@14" in text and "legend:" in text
    assert "handset − random: mean Δn" in text
    assert any(f"handset is {v} random on this set" in text
               for v in ("better than", "worse than", "not distinguishable from"))
    for name in ("yardstick.json", "per_task.csv", "strip.png", "command.json"):
        assert (out / name).is_file(), name
    res = _cli(["lopt", "eval", "--theta", "handset", "--on", "test", "--against", "random", "--json",
                "--no-progress"], data, tmp_path / "cache", monkeypatch)
    assert res.exit_code == 0, res.output
    payload = json.loads(res.output)
    assert payload["set"] == "test" and payload["summary"]["tasks"] == 2
    assert payload["comparisons"][0]["b"] == "random" and len(payload["per_task"]) == 2
    assert payload == json.loads((out / "yardstick.json").read_text())  # the file holds what --json prints
    import csv

    with open(out / "per_task.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [r["task_id"] for r in table] == [r["task_id"] for r in payload["per_task"]]
    assert [float(r["theta"]) for r in table] == [r["theta"] for r in payload["per_task"]]


def test_cli_refuses_task_options_with_on(tiny, tmp_path, monkeypatch):
    _, data = tiny
    res = _cli(["lopt", "eval", "--on", "valid", "--seeds", "5"], data, tmp_path, monkeypatch)
    assert res.exit_code == 2 and "--seeds do not apply with --on" in res.output
    res = _cli(["lopt", "eval", "--against", "handset", "--out", str(tmp_path / "x")], data, tmp_path, monkeypatch)
    assert res.exit_code == 2 and "--against needs --on" in res.output
    res = _cli(["lopt", "eval", "--theta", "handset"], data, tmp_path, monkeypatch)
    assert res.exit_code == 2 and "--out" in res.output


def test_missing_baselines_is_one_clear_error(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("valid.jsonl", "sets.json"):
        (data / name).write_bytes((ts.DATA_DIR / name).read_bytes())
    from taskgen_cli import cli

    monkeypatch.setattr(ts, "DATA_DIR", data)
    res = CliRunner().invoke(cli, ["lopt", "eval", "--on", "valid"])
    assert res.exit_code == 1
    assert "baselines of set 'valid' cannot be read" in res.output and "Traceback" not in res.output
    assert "taskgen lopt yardstick baselines --on valid" in res.output


def test_verify_and_sets_commands_text_and_json(tiny, tmp_path, monkeypatch):
    _, data = tiny
    res = _cli(["lopt", "yardstick", "verify", "--on", "valid", "--tasks", "1", "--no-progress"], data, tmp_path,
               monkeypatch)
    assert res.exit_code == 0, res.output
    assert "1 tasks of valid re-run here" in res.output and "verdict: L* within" in res.output
    assert "per-task AdamLR's choice changed on 0 task(s)" in res.output
    res = _cli(["lopt", "yardstick", "verify", "--on", "valid", "--tasks", "2", "--json", "--no-progress"], data,
               tmp_path, monkeypatch)
    out = json.loads(res.output)
    assert len(out["tasks"]) == 2 and out["max_best_loss_diff_normalized"] <= bt.VERIFY_TOLERANCE
    assert out["committed_machine"]["cpu"] == out["this_machine"]["cpu"]
    res = _cli(["lopt", "yardstick", "sets", "--json"], data, tmp_path, monkeypatch)
    assert set(json.loads(res.output)["sets"]) == {"valid", "test"}


def test_sets_command_on_the_package_sets():
    from taskgen_cli import cli

    res = CliRunner().invoke(cli, ["lopt", "yardstick", "sets"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].startswith("valid: 120 tasks") and lines[1].startswith("test: 240 tasks")
    assert "char_lm 10" in lines[0] and "word_lm 20" in lines[1]


def test_report_shows_the_yardstick(tiny, tmp_path, monkeypatch):
    from research.report import write_report

    _, data = tiny
    out = tmp_path / "claim"
    res = _cli(["lopt", "eval", "--theta", "handset", "--on", "test", "--against", "random", "--out", str(out),
                "--no-progress"], data, tmp_path / "cache", monkeypatch)
    assert res.exit_code == 0, res.output
    page = write_report(out).read_text()
    payload = json.loads((out / "yardstick.json").read_text())
    mean = payload["summary"]["rows"]["theta"]["final"]["mean"]
    assert "The yardstick: normalized loss on a frozen task set" in page
    assert f"{mean['value']:+.3f} [{mean['low']:+.3f}, {mean['high']:+.3f}]" in page
    assert "handset − random" in page and "data:image/png;base64" in page and "per-task AdamLR@14" in page
    assert "θ handset on 2 test tasks: mean normalized loss" in page  # the summary row


def test_the_run_panel_can_be_the_valid_set(tiny, tmp_path, monkeypatch):
    _, data = tiny
    res = _cli(["lopt", "panel", "--theta", "handset", "--out", str(tmp_path / "p"), "--json", "--no-progress",
                "--set", 'on="valid"'], data, tmp_path / "cache", monkeypatch)
    assert res.exit_code == 0, res.output
    figures = json.loads(res.output.strip().splitlines()[-1])
    summary, scores, _ = yardstick.evaluate(load_theta("handset"), "valid", cache=tmp_path / "cache",
                                            progress=False, data_dir=data)
    assert figures["tasks"] == 2 and figures["score"] == pytest.approx(-summary["rows"]["theta"]["final"]["mean"]
                                                                         ["value"])
    assert set(figures["task_scores"]) == set(scores.task_ids)
    assert (tmp_path / "p" / "yardstick.json").is_file()
    from lopt_trainer.evaluation.panel import PanelSettings

    with pytest.raises(ValueError, match="panel on must be 'valid'"):
        PanelSettings(on="test")  # the test set never chooses θ


def test_runs_round_trip_as_plain_data_and_score_the_same(tiny, tmp_path):
    _, data = tiny
    runs = yardstick.run_theta(load_theta("random"), "test", cache=tmp_path, progress=False, data_dir=data)
    again = yardstick.runs_from_dict(json.loads(json.dumps(yardstick.runs_to_dict(runs))))
    np.testing.assert_array_equal(again.final, runs.final)
    np.testing.assert_array_equal(again.diverged, runs.diverged)
    a, _ = yardstick.score_runs(runs, data_dir=data)
    b, _ = yardstick.score_runs(again, data_dir=data)
    assert a == b
    with pytest.raises(ValueError, match="not a yardstick runs file"):
        yardstick.runs_from_dict({"format": "other"})
