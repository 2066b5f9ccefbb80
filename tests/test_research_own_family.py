"""The own-family study: its table is the run's end summary in normalized-loss terms, and a finished run is read
back, not run again."""

import json

import pytest

from research import own_family


def _summary(run, **panel):
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({
        "step": 900, "step_seconds": 1800.0, "compile_seconds": 40.0, "panel_seconds": 300.0, "stop_reason": "time",
        "panel": {"start_score": -0.20, "last_score": -0.12, "verdict": "θ improved: …", **panel}}))


def test_scores_become_normalized_losses_with_flipped_intervals(tmp_path):
    run = tmp_path / "mlp" / "run"
    _summary(run, last_vs_start={"mean": 0.08, "low": 0.03, "high": 0.12, "tasks": 44},
             last_vs_global_adamlr={"mean": -0.01, "low": -0.05, "high": 0.02, "tasks": 44})
    row = own_family.result_row("mlp", run)
    assert row["start_n"] == pytest.approx(0.20) and row["last_n"] == pytest.approx(0.12)
    assert row["last_minus_start_n"] == {"mean": -0.08, "low": -0.12, "high": -0.03, "tasks": 44}
    assert row["last_minus_global_adamlr_n"] == {"mean": 0.01, "low": -0.02, "high": 0.05, "tasks": 44}
    assert row["tasks"] == 44 and row["outer_steps"] == 900


def test_a_finished_run_is_not_run_again(tmp_path, monkeypatch):
    _summary(tmp_path / "mlp" / "run", last_vs_start={"mean": 0.0, "low": 0.0, "high": 0.0, "tasks": 1})
    monkeypatch.setattr(own_family.subprocess, "run", lambda *a, **k: pytest.fail("ran a finished run"))
    assert own_family.meta_train("mlp", tmp_path / "mlp", 0.5, 48, 7) == tmp_path / "mlp" / "run"


def test_the_template_family_is_found_through_the_plugin_setting():
    env = own_family.family_env("softmax_regression")
    assert env["TASKGEN_PLUGINS"] == "my_families.register"
    assert str(own_family.TEMPLATE) in env["PYTHONPATH"].split(own_family.os.pathsep)
    assert own_family.family_env("mlp") == dict(own_family.os.environ)  # a built-in family needs nothing added


def test_the_arms_are_the_objectives_studys():
    assert own_family.ARMS["final_sign"] == own_family.OBJECTIVE_ARMS["final_sign"]
    assert own_family.ARMS["recipe"] == {}


def test_bad_arguments_are_refused(capsys):
    with pytest.raises(SystemExit) as e:
        own_family.main(["--families", "mlp,nope"])
    assert e.value.code == 2 and "--families takes mlp" in capsys.readouterr().err


def _panel(run, folder, values):
    path = run / "panel" / folder / "yardstick.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"per_task": [{"task_id": t, "family": "mlp", "theta": f, "theta_curve": c}
                                             for t, (f, c) in values.items()]}))


def test_the_curve_difference_pairs_the_start_and_last_panels(tmp_path):
    run = tmp_path / "run"
    _panel(run, "handset", {"a": (0.2, 0.5), "b": (0.1, 0.3), "c": (0.0, 0.2)})  # the start θ was the hand-set θ
    _panel(run, "step_000040", {"a": (0.1, 0.3), "b": (0.1, 0.2), "c": (0.3, 0.4), "d": (9.0, 9.0)})
    d = own_family.curve_difference(run, 40)
    assert d["tasks"] == 3 and d["mean"] == pytest.approx((-0.2 - 0.1 + 0.2) / 3)
    assert d["low"] <= d["mean"] <= d["high"]
    assert (d["final_better_on"], d["final_worse_on"]) == (1, 1)  # b is a tie
    assert own_family.curve_difference(run, 80) is None  # no panel at that step
