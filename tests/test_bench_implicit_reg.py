"""The implicit-regularisation benchmark: its start draws, its per-θ figures, and a tiny end-to-end run."""

import json

import pytest

import research.common
from research import implicit_reg_finding as B


def test_starts_are_a_deterministic_draw_in_the_box():
    a, b = B.draw_starts(8, 3), B.draw_starts(8, 3)
    assert a == b and a != B.draw_starts(8, 4)
    assert all(-5.0 <= v <= 5.0 for p in a for v in p) and len(a) == 8


def test_compare_pairs_the_norms_by_start():
    runs = lambda norms, loss: [{"final_norm": n, "final_loss": loss, "finite": True} for n in norms]  # noqa: E731
    result = {"adam": {"runs": runs([2.0, 3.0, 1.0], 1e-6)}, "lopt": {"runs": runs([1.0, 4.0, 0.5], 0.1)},
              "mean_projection_norm": 2.0}
    got = B.compare(result)
    assert got["frac_lopt_smaller"] == pytest.approx(2 / 3) and got["frac_lopt_larger"] == pytest.approx(1 / 3)
    assert got["mean_abs_norm_diff"] == pytest.approx((1.0 + 1.0 + 0.5) / 3)
    assert (got["adam_norm"], got["lopt_norm"]) == (pytest.approx(2.0), pytest.approx(5.5 / 3))
    assert (got["adam_loss"], got["lopt_loss"], got["lopt_finite"]) == (pytest.approx(1e-6), pytest.approx(0.1), True)


def test_a_tiny_run_writes_its_table_and_figure(tmp_path, monkeypatch):
    monkeypatch.setattr(research.common, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr(B, "RESULTS_DIR", tmp_path)
    assert B.main(["--theta", "handset", "--starts", "2", "--steps", "5"]) == 0
    saved = json.loads((tmp_path / "implicit_reg.json").read_text())
    assert [r["theta"] for r in saved["rows"]] == ["handset"] and len(saved["settings"]["starts"]) == 2
    assert len(saved["per_start"]["handset"]["lopt"]) == 2 and (tmp_path / "implicit_reg.png").stat().st_size > 0
    with pytest.raises(SystemExit):
        B.main(["--theta", str(tmp_path / "missing.npz")])


def test_short_labels():
    assert B._short("handset") == "handset" and B._short("runs/candidate/pretrained_theta.npz") == "candidate"
    assert B._short("runs/m") == "m"
