"""The two extra experiments on a few steps: implicit regularisation and self-training (tiny settings)."""

import json

import jax
import numpy as np
import pytest

from lopt_trainer.optimizer import hierarchical
from research.implicit_reg import run_implicit_reg


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
    from research.self_training import run_self_training
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
    from research.self_training import run_self_training
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
    starts = {r["panel"][0]["score"] for r in s["runs"] if r["seed"] == 3}
    assert len(starts) == 1  # the three runs of a seed start from one fresh θ
    assert [(x["seed"], x["step"]) for x in s["seeds"]] == [(3, 2), (4, 2)]
    assert s["pooled"]["tasks"] == 2 and s["pooled"]["seeds"] == 2
    saved = json.loads((tmp_path / "st" / "self_training.json").read_text())
    assert saved["pooled"] == s["pooled"]
    assert (tmp_path / "st" / "self_training.png").stat().st_size > 0


def _panel_run(d, scores_by_step):
    from lopt_trainer.meta.metrics import append_metrics

    d.mkdir(parents=True)
    append_metrics(d, {"kind": "step", "step": 0, "meta_loss": 1.0})
    for step, scores in scores_by_step.items():
        score = float(np.mean(list(scores.values()))) if scores else None
        append_metrics(d, {"kind": "panel", "step": step, "score": score, "task_scores": scores})


def test_run_summary_gain_and_a_budget_step_that_must_hold_at_every_later_look(tmp_path):
    from research.self_training import run_summary

    tasks = [f"t{i}" for i in range(6)]
    flat = dict.fromkeys(tasks, 0.0)
    up = {t: 1.0 + 0.1 * i for i, t in enumerate(tasks)}
    _panel_run(tmp_path / "a", {0: flat, 10: up, 20: flat, 30: up, 40: up})  # a lucky look at 10, then held from 30
    r = run_summary(tmp_path / "a", "adam", 1e-3)
    assert [p["step"] for p in r["panel"]] == [0, 10, 20, 30, 40] and r["budget_step"] == 30
    assert r["gain"]["mean"] == pytest.approx(1.25) and r["gain"]["low"] > 0
    _panel_run(tmp_path / "b", {0: flat, 10: up, 20: flat})
    assert run_summary(tmp_path / "b", "adam", 1e-3)["budget_step"] is None
    _panel_run(tmp_path / "c", {0: flat})  # nothing after step 0: no gain to report
    assert "gain" not in run_summary(tmp_path / "c", "adam", 1e-3)
    _panel_run(tmp_path / "d", {0: {}})  # a NaN score comes back from JSON as None: read as NaN
    assert np.isnan(run_summary(tmp_path / "d", "lopt", None)["panel"][0]["score"])


def test_compare_outer_picks_the_best_adam_at_the_last_common_step_and_pools_over_tasks(tmp_path):
    from research.self_training import compare_outer, run_summary

    zero, low, high = {"t0": 0.0, "t1": 0.0}, {"t0": -2.0, "t1": -2.0}, {"t0": 1.0, "t1": 0.5}
    runs = []
    for seed, lopt_last in ((0, high), (1, low)):
        for name, outer, lr, by_step in (("lopt", "lopt", None, {0: low, 2: lopt_last, 4: lopt_last}),
                                         ("adam_a", "adam", 1e-3, {0: low, 2: zero}),  # score exactly 0.0
                                         ("adam_b", "adam", 3e-3, {0: low, 2: low, 4: high})):
            _panel_run(tmp_path / f"{seed}{name}", by_step)
            runs.append({**run_summary(tmp_path / f"{seed}{name}", outer, lr), "seed": seed})
    _panel_run(tmp_path / "only0", {0: low})
    runs.append({**run_summary(tmp_path / "only0", "lopt", None), "seed": 2})  # seed 2: nothing after step 0
    got = compare_outer(runs)
    assert [(x["seed"], x["step"], x["best_adam"], x["best_adam_score"]) for x in got["seeds"]] == [
        (0, 2, "adam_lr1e-03", 0.0), (1, 2, "adam_lr1e-03", 0.0)]  # step 4 is not common; 0.0 beats -2.0
    assert got["seeds"][0]["lopt_vs_best_adam"]["mean"] == pytest.approx(0.75)
    assert got["seeds"][1]["lopt_vs_best_adam"]["mean"] == pytest.approx(-2.0)
    pooled = got["pooled"]
    assert pooled["tasks"] == 2 and pooled["seeds"] == 2 and pooled["seeds_won"] == 1
    assert pooled["mean"] == pytest.approx((0.75 - 2.0) / 2)
    assert compare_outer([r for r in runs if r["seed"] == 2]) == {}


def test_two_level_bootstrap_widens_with_the_spread_between_seeds():
    from lopt_trainer.evaluation.panel import paired_bootstrap
    from research.self_training import two_level_bootstrap

    flat = two_level_bootstrap(np.full((3, 5), 0.2))
    assert (flat["mean"], flat["low"], flat["high"], flat["tasks"]) == (pytest.approx(0.2), pytest.approx(0.2),
                                                                         pytest.approx(0.2), 5)
    rng = np.random.default_rng(0)
    split = np.stack([rng.normal(-0.3, 0.1, 16), rng.normal(0.1, 0.1, 16), rng.normal(0.25, 0.1, 16)])
    two = two_level_bootstrap(split)
    one = paired_bootstrap({str(t): v for t, v in enumerate(split.mean(axis=0))}, {str(t): 0.0 for t in range(16)})
    assert two["mean"] == pytest.approx(one["mean"])
    assert two["high"] - two["low"] > 2 * (one["high"] - one["low"])  # the seeds disagree: the interval says so
    assert np.isnan(two_level_bootstrap(np.zeros((0, 0)))["mean"])
