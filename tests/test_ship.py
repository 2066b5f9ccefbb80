"""Shipping only a θ that wins: the quality targets, and `taskgen lopt ship` refusing (writing nothing) or
copying the run's best θ."""

import json

import jax
import pytest
from click.testing import CliRunner

from lopt_trainer.errors import ShipRefusedError
from lopt_trainer.meta.ship import quality_shortfalls, ship


def _quality(global_frac=0.65, median=0.1, per_task_frac=0.3, diverged=0):
    return {"rows": [
        {"baseline": "global_adamlr", "group": "unseen", "frac_lopt_better": global_frac, "median_improvement": median},
        {"baseline": "global_adamlr", "group": "seen", "frac_lopt_better": 0.0, "median_improvement": -9.0},
        {"baseline": "per_task_adamlr@14", "group": "unseen", "frac_lopt_better": per_task_frac,
         "median_improvement": -1.0}],
        "lopt_divergence": {"diverged": diverged, "runs": 80}}


def test_quality_shortfalls_names_each_missed_target():
    assert quality_shortfalls(_quality()) == []
    assert quality_shortfalls(_quality(global_frac=0.6, per_task_frac=0.25, median=1e-6)) == []  # bounds met
    short = quality_shortfalls(_quality(global_frac=0.45, median=-0.24, per_task_frac=0.15, diverged=2))
    assert len(short) == 4
    assert "global_adamlr: 45% (target ≥ 60%)" in short[0]
    assert "per_task_adamlr@14: 15% (target ≥ 25%)" in short[1]
    assert "-0.240 (target > 0)" in short[2] and "diverged on unseen tasks: 2" in short[3]
    with pytest.raises(ValueError, match="per_task_adamlr@14"):
        quality_shortfalls({"rows": _quality()["rows"][:2]})
    broken = _quality()
    broken["rows"][0]["median_improvement"] = None
    with pytest.raises(ValueError, match="median_improvement"):
        quality_shortfalls(broken)
    assert quality_shortfalls({**_quality(diverged=3), "targets": {"unseen_diverged": {"measured": 0}}}) == []


@pytest.fixture
def run(tmp_path):
    from lopt_trainer.optimizer import hierarchical
    from lopt_trainer.theta.load import theta_digest
    from lopt_trainer.theta.reference_io import save_reference_npz

    run = tmp_path / "run"
    run.mkdir()
    theta = hierarchical.init_handset(jax.random.PRNGKey(0))
    save_reference_npz(theta, run / "best_theta.npz")
    (run / "best.json").write_text(json.dumps({"step": 3, "theta_digest": theta_digest(theta)}))
    (run / "config.json").write_text("{}")
    (run / "metrics.jsonl").write_text("")
    return run


def test_ship_refuses_a_losing_theta_and_writes_nothing(run, tmp_path):
    (tmp_path / "q.json").write_text(json.dumps(_quality(global_frac=0.45)))
    dest = tmp_path / "data"
    dest.mkdir()
    with pytest.raises(ShipRefusedError, match="45%"):
        ship(run, tmp_path / "q.json", dest)
    assert list(dest.iterdir()) == []
    result = CliRunner().invoke(_cli(), ["lopt", "ship", str(run), "--quality", str(tmp_path / "q.json")])
    assert result.exit_code == 1 and "not shipped" in result.output


def test_ship_copies_a_winning_theta_only_when_it_is_the_theta_measured(run, tmp_path):
    (tmp_path / "q.json").write_text(json.dumps({**_quality(), "theta": "random"}))  # another θ was measured
    with pytest.raises(ShipRefusedError, match="not the panel-best"):
        ship(run, tmp_path / "q.json", tmp_path)
    (tmp_path / "q.json").write_text(json.dumps({**_quality(), "theta": str(run / "best_theta.npz")}))
    dest = tmp_path / "data"
    dest.mkdir()
    path = ship(run, tmp_path / "q.json", dest)
    assert path.read_bytes() == (run / "best_theta.npz").read_bytes()


def _cli():
    from taskgen.cli import cli

    return cli
