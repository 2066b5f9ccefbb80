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


def test_a_finished_arm_is_not_run_again(tmp_path, monkeypatch):
    run = tmp_path / "sign"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"stop_reason": "time"}))
    monkeypatch.setattr(objectives.subprocess, "run", lambda *a, **k: pytest.fail("ran a finished arm"))
    assert objectives.meta_train("sign", 0.75, tmp_path, str(objectives.RECIPE)) == run


def test_bad_arms_are_refused(capsys):
    with pytest.raises(SystemExit) as e:
        objectives.main(["--arms", "recipe,nope"])
    assert e.value.code == 2 and "--arms takes recipe, sign" in capsys.readouterr().err
