"""The step-size benchmark: its windows, a tiny end-to-end run on a real task, and clean errors."""

import json

import numpy as np
import pytest

import research.common
from research import step_size as B

TASK = "quadratic-83941fda3522"


def test_windows_average_over_seeds_and_steps():
    values = np.arange(200, dtype=np.float64).reshape(2, 100)  # seed 1 is seed 0 + 100
    got = B.windowed(values, [10, 50, 100])
    # step 10 averages 0-based indices 0..34 (±25 around index 9, clipped at 0): mean index 17, +50 over seeds
    assert got["10"] == pytest.approx(17.0 + 50.0)
    assert got["50"] == pytest.approx(np.arange(24, 75).mean() + 50.0)  # interior: indices 24..74
    assert got["100"] == pytest.approx(np.arange(74, 100).mean() + 50.0)


def test_labels():
    assert B.theta_label("handset") == "handset"
    assert B.theta_label("runs/theta_step300/pretrained_theta.npz") == "theta_step300"
    assert B.theta_label("runs/branch/theta_step299.npz") == "theta_step299"
    labels = B.theta_labels(["handset", "runs/theta_step300/pretrained_theta.npz",
                             "research/branches/late/theta_step300.npz", "runs/theta_last/theta.npz"])
    assert labels == {"handset": "handset", "runs/theta_step300/pretrained_theta.npz":
                      "theta_step300/pretrained_theta.npz", "research/branches/late/theta_step300.npz":
                      "late/theta_step300.npz", "runs/theta_last/theta.npz": "theta_last"}


def test_a_tiny_run_is_deterministic_and_tells_two_thetas_apart(tmp_path, monkeypatch):
    monkeypatch.setattr(research.common, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr(B, "RESULTS_DIR", tmp_path)
    argv = ["--task", TASK, "--theta", "handset", "--theta", "random", "--steps", "60", "--seeds", "2", "--name", "s"]
    assert B.main(argv) == 0
    first = (tmp_path / "s.json").read_text()
    saved = json.loads(first)
    assert [(r["task"], r["theta"]) for r in saved["rows"]] == [(TASK, "handset"), (TASK, "random")]
    hand, rand = saved["rows"]
    assert set(hand) >= {"step/‖p‖ @10", "step/‖p‖ @60", "loss @10", "loss @60"}
    assert all(np.isfinite(v) and v > 0 for k, v in hand.items() if k.startswith("step/"))
    assert hand["loss @60"] < hand["loss @10"]  # the hand-set rule trains the quadratic
    assert hand["step/‖p‖ @10"] != rand["step/‖p‖ @10"]
    assert (tmp_path / "s.png").stat().st_size > 0
    assert B.main(argv) == 0
    assert json.loads((tmp_path / "s.json").read_text())["rows"] == saved["rows"]


@pytest.mark.parametrize("argv", [["--theta", "no/such/theta.npz"], ["--task", "nosuchfamily-000"],
                                  ["--steps", "10"], ["--name", "../escape"]])
def test_bad_input_is_a_clean_usage_error_that_writes_nothing(tmp_path, monkeypatch, argv):
    monkeypatch.setattr(research.common, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr(B, "RESULTS_DIR", tmp_path)
    with pytest.raises(SystemExit) as exc:
        B.main(["--task", TASK, *argv])
    assert exc.value.code == 2 and list(tmp_path.iterdir()) == []
