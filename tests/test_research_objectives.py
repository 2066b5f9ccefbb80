"""The objectives study: every arm is a valid change of the shipped recipe, and a finished arm is not run again."""

import json

import pytest

from lopt_trainer.meta.config import MetaTrainConfig
from research import objectives


@pytest.mark.parametrize("arm", list(objectives.ARMS))
def test_every_arm_is_a_valid_recipe(arm):
    recipe = json.loads(objectives.RECIPE.read_text())
    cfg = MetaTrainConfig.from_dict({**recipe, **objectives.ARMS[arm]})
    settings = cfg.estimator_settings()
    changed = {k for k in objectives.ARMS[arm]}
    assert all(getattr(cfg, k) == v for k, v in objectives.ARMS[arm].items()), changed
    if "loss_difference" in changed:
        assert settings.difference == "sign"
    if "train_parts" in changed:
        assert settings.parts == ("mlp",)


def test_every_arm_runs_the_same_inner_steps_per_outer_step():
    """Equal outer steps are equal compute only while no arm changes the estimators, slots or truncation."""
    shape = {a: tuple(getattr(objectives.arm_config(a, str(objectives.RECIPE)), f)
                      for f in ("truncation", "num_groups", "tasks_per_group", "sigma"))
             for a in objectives.ARMS}
    assert len(set(shape.values())) == 1, shape


def test_a_finished_arm_is_not_run_again(tmp_path, monkeypatch):
    run = tmp_path / "sign"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"stop_reason": "steps", "step": 450}))
    monkeypatch.setattr(objectives.subprocess, "run", lambda *a, **k: pytest.fail("ran a finished arm"))
    assert objectives.meta_train("sign", 450, tmp_path, str(objectives.RECIPE)) == run


def test_an_unfinished_arm_continues_to_its_steps(tmp_path, monkeypatch):
    run = tmp_path / "nres"
    run.mkdir()
    (run / "checkpoint.msgpack").write_bytes(b"")
    (run / "metrics.jsonl").write_text("".join(
        json.dumps({"kind": "step", "step": i, "inner_steps": 3200, "step_seconds": 4.0, "compile_seconds": 0.0})
        + "\n" for i in range(30)))
    calls = []
    monkeypatch.setattr(objectives.subprocess, "run", lambda cmd, **k: calls.append(cmd))
    objectives.meta_train("nres", 450, tmp_path, str(objectives.RECIPE))
    (cmd,) = calls
    assert cmd[cmd.index("--steps") + 1] == "450" and "--resume" in cmd
    assert cmd[cmd.index("--set", cmd.index("panel_every=0")) + 1] == 'estimator="nres"'


def test_bad_arms_are_refused(capsys):
    with pytest.raises(SystemExit) as e:
        objectives.main(["--arms", "recipe,nope"])
    assert e.value.code == 2 and "--arms takes recipe, sign" in capsys.readouterr().err
