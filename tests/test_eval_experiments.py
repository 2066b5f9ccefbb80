"""The two extra experiments on a few steps: implicit regularisation and self-training (tiny settings)."""

import json

import jax
import numpy as np

from lopt_trainer.optimizer import hierarchical
from lopt_trainer.experiments.implicit_reg import run_implicit_reg


def test_implicit_reg_finite_trajectories(tmp_path):
    theta = hierarchical.init(jax.random.PRNGKey(0))
    starts = ((4.0, -2.0), (-3.0, 3.0))
    r = run_implicit_reg(theta, tmp_path, starts=starts, steps=6, adam_lr=0.1, valid_every=2)
    for name in ("adam", "lopt"):
        paths = np.asarray(r[name]["trajectories"])
        assert paths.shape == (2, 7, 2)
        assert np.all(np.isfinite(paths))
        assert np.allclose(paths[:, 0], np.asarray(starts))
        assert all(run["finite"] and np.isfinite(run["final_norm"]) for run in r[name]["runs"])
    adam = np.asarray(r["adam"]["trajectories"])
    # Adam's updates on (x - y)^2 are opposite and equal: x + y stays put, it only moves towards the line
    assert np.allclose(adam.sum(axis=2), adam[:, :1].sum(axis=2), atol=1e-5)
    assert np.all(np.abs(adam[:, -1, 0] - adam[:, -1, 1]) < np.abs(adam[:, 0, 0] - adam[:, 0, 1]))
    assert (tmp_path / "implicit_reg.png").stat().st_size > 0
    saved = json.loads((tmp_path / "implicit_reg.json").read_text())
    assert saved["lopt"]["mean_final_norm"] == r["lopt"]["mean_final_norm"]


def test_self_training_three_curves(tmp_path):
    from lopt_trainer.theta.reference_io import save_reference_npz
    from lopt_trainer.experiments.self_training import run_self_training
    from tests.meta_helpers import small_quadratic_specs

    theta_path = tmp_path / "theta.npz"
    save_reference_npz(hierarchical.init(jax.random.PRNGKey(1)), theta_path)
    overrides = {"lopt": "tests.meta_helpers:tiny_lopt", "truncation": 4, "tasks_per_group": 2,
                 "horizon_min": 8, "horizon_max": 16, "filters": {"split": ["meta_train"]}, "max_params": None,
                 "compilation_cache": ""}
    s = run_self_training(theta_path, tmp_path / "st", steps=3, overrides={**overrides, "panel_every": 0},
                          specs=small_quadratic_specs(4, dims=3), progress=False)
    assert [r["name"] for r in s["runs"]] == ["lopt_outer", "adam_lr3e-04", "adam_lr1e-03"]
    assert all(r["steps"] == 3 and np.isfinite(r["final_meta_loss"]) for r in s["runs"])
    assert "pooled" not in s and not any("panel" in r for r in s["runs"])  # no panel: meta-loss only
    assert (tmp_path / "st" / "self_training.png").exists()
    cfg = json.loads((tmp_path / "st" / "seed_0" / "lopt_outer" / "config.json").read_text())
    assert cfg["outer_opt"].startswith("lopt:")


def test_self_training_judges_the_fresh_theta_on_a_panel_over_seeds(tmp_path):
    from lopt_trainer.experiments.self_training import run_self_training
    from lopt_trainer.theta.reference_io import save_reference_npz
    from tests.meta_helpers import small_quadratic_specs

    theta_path = tmp_path / "theta.npz"
    save_reference_npz(hierarchical.init_handset(jax.random.PRNGKey(1)), theta_path)
    specs = small_quadratic_specs(8, dims=3)
    overrides = {"truncation": 4, "tasks_per_group": 2, "horizon_min": 8, "horizon_max": 16, "max_params": None,
                 "filters": {"split": ["meta_train"]}, "compilation_cache": "", "panel_every": 2,
                 "theta_init": "handset",
                 "panel": {"families": ["quadratic"], "per_family": 2, "steps": 20, "seeds": 1, "max_params": 100}}
    s = run_self_training(theta_path, tmp_path / "st", steps=2, overrides=overrides, seeds=(3, 4), specs=specs,
                          progress=False, adam_lrs=(1e-3, 3e-2))
    assert [(r["seed"], r["name"]) for r in s["runs"]] == [
        (seed, name) for seed in (3, 4) for name in ("lopt_outer", "adam_lr1e-03", "adam_lr3e-02")]
    for r in s["runs"]:
        assert [p["step"] for p in r["panel"]] == [0, 2]
        assert r["gain"]["tasks"] == 2 and r["gain"]["low"] <= r["gain"]["mean"] <= r["gain"]["high"]
        assert r["budget_step"] in (None, 2)
    starts = {r["panel"][0]["score"] for r in s["runs"] if r["seed"] == 3}
    assert len(starts) == 1  # the three runs of a seed start from one fresh θ
    assert [x["seed"] for x in s["seeds"]] == [3, 4]
    for x in s["seeds"]:
        best = max((r for r in s["runs"] if r["seed"] == x["seed"] and r["outer"] == "adam"),
                   key=lambda r: r["panel"][-1]["score"])
        assert x["best_adam"] == best["name"] and x["best_adam_score"] == best["panel"][-1]["score"]
    assert s["pooled"]["tasks"] == 4 and s["pooled"]["seeds"] == 2
    saved = json.loads((tmp_path / "st" / "self_training.json").read_text())
    assert saved["pooled"] == s["pooled"]
    assert (tmp_path / "st" / "self_training.png").stat().st_size > 0
