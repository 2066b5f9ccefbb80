"""Shipping only a θ that wins: the quality targets, and `taskgen lopt ship` refusing (writing nothing) or
copying the run's best θ."""

import json

import jax
import pytest
from click.testing import CliRunner

from lopt_trainer.errors import ShipRefusedError
from lopt_trainer.meta.ship import quality_shortfalls, ship


SETTINGS = {"steps": 1000, "seeds": 2}
UNSEEN = [f"t{i}" for i in range(5)]


def _tasks(finals, group="unseen"):
    return {t: {"group": group, "family": "mlp", "final": f, "score": -f, "diverged": 0} for t, f in finals.items()}


def _quality(global_frac=0.65, median=0.1, per_task_frac=0.3, diverged=0, finals=None, theta=None):
    return {"theta": theta, "settings": SETTINGS,
            "lopt_tasks": {**_tasks(finals or dict.fromkeys(UNSEEN, 0.5)), **_tasks({"s0": 9.0}, "seen")},
            "rows": [
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


def _handset(finals=None):
    from lopt_trainer.theta.load import load_theta, theta_digest

    return {**_quality(global_frac=0.4, median=-0.3, per_task_frac=0.1, theta="handset",
                       finals=finals or dict.fromkeys(UNSEEN, 1.0)), "theta_digest": theta_digest(load_theta("handset"))}


def test_ahead_of_the_handset_theta_is_counted_task_by_task_on_unseen_tasks():
    handset = _handset({"t0": 1.0, "t1": 1.0, "t2": 1.0, "t3": 1.0, "t4": 1.0})
    ahead3 = _quality(finals={"t0": 0.5, "t1": 0.5, "t2": 0.5, "t3": 1.0, "t4": 2.0})  # 3 ahead, a tie, 1 behind
    assert quality_shortfalls(ahead3, handset) == []  # 3/5 = 60%: the bound is met
    ahead2 = _quality(finals={"t0": 0.5, "t1": 0.5, "t2": 1.0 - 1e-6, "t3": 1.0, "t4": 2.0})  # 1e-6: a tie
    assert quality_shortfalls(ahead2, handset) == ["unseen tasks ahead of the hand-set θ: 40% of 5 (target ≥ 60%)"]
    # the seen task (far behind) does not count; several shortfalls are all named
    assert len(quality_shortfalls(_quality(global_frac=0.1, finals=dict.fromkeys(UNSEEN, 3.0)), handset)) == 2


@pytest.mark.parametrize("mutate, message", [
    (lambda q, h: h.update(theta="handset", theta_digest="0" * 64), "not the hand-set θ"),
    (lambda q, h: h.pop("theta_digest"), "not the hand-set θ"),
    (lambda q, h: h.pop("lopt_tasks"), "hand-set result has no per-task"),
    (lambda q, h: q.update(settings={"steps": 300, "seeds": 2}), "different settings"),
    (lambda q, h: h["lopt_tasks"].pop("t4"), "different unseen tasks"),
])
def test_a_handset_result_that_cannot_be_compared_is_refused_by_name(mutate, message):
    quality, handset = _quality(), _handset()
    mutate(quality, handset)
    with pytest.raises(ValueError, match=message):
        quality_shortfalls(quality, handset)


def test_ship_refuses_a_losing_theta_and_writes_nothing(run, tmp_path):
    (tmp_path / "h.json").write_text(json.dumps(_handset()))
    (tmp_path / "q.json").write_text(json.dumps(_quality(global_frac=0.45)))
    dest = tmp_path / "data"
    dest.mkdir()
    with pytest.raises(ShipRefusedError, match="45%"):
        ship(run, tmp_path / "q.json", tmp_path / "h.json", dest)
    (tmp_path / "q.json").write_text(json.dumps(_quality(finals=dict.fromkeys(UNSEEN, 1.5))))
    with pytest.raises(ShipRefusedError, match="ahead of the hand-set θ: 0% of 5"):
        ship(run, tmp_path / "q.json", tmp_path / "h.json", dest)
    (tmp_path / "h.json").write_text(json.dumps({**_handset(), "settings": {"steps": 1}}))
    with pytest.raises(ShipRefusedError, match="different settings"):
        ship(run, tmp_path / "q.json", tmp_path / "h.json", dest)
    assert list(dest.iterdir()) == []
    result = CliRunner().invoke(_cli(), ["lopt", "ship", str(run), "--quality", str(tmp_path / "q.json"),
                                         "--handset", str(tmp_path / "h.json")])
    assert result.exit_code == 2 and "--confirm" in result.output  # a second draw is required
    result = CliRunner().invoke(_cli(), ["lopt", "ship", str(run), "--quality", str(tmp_path / "q.json"),
                                         "--handset", str(tmp_path / "h.json"), "--confirm", str(tmp_path / "q.json"),
                                         str(tmp_path / "h.json")])
    assert result.exit_code == 1 and "not shipped" in result.output and "Traceback" not in result.output


def test_ship_copies_a_winning_theta_only_when_it_is_the_theta_measured(run, tmp_path):
    (tmp_path / "h.json").write_text(json.dumps(_handset()))
    (tmp_path / "q.json").write_text(json.dumps(_quality(theta="random")))  # another θ was measured
    with pytest.raises(ShipRefusedError, match="not the panel-best"):
        ship(run, tmp_path / "q.json", tmp_path / "h.json", tmp_path)
    (tmp_path / "q.json").write_text(json.dumps(_quality(theta=str(run / "best_theta.npz"))))
    dest = tmp_path / "data"
    dest.mkdir()
    path = ship(run, tmp_path / "q.json", tmp_path / "h.json", dest)
    assert path.read_bytes() == (run / "best_theta.npz").read_bytes()


def _cli():
    from taskgen.cli import cli

    return cli


def test_ship_trusts_the_digest_the_benchmark_recorded_not_the_file_today(run, tmp_path):
    # the candidate file was replaced after it was measured: the result names the file, but its digest is the old θ's
    (tmp_path / "h.json").write_text(json.dumps(_handset()))
    stale = {**_quality(theta=str(run / "best_theta.npz")), "theta_digest": "0" * 64}
    (tmp_path / "q.json").write_text(json.dumps(stale))
    with pytest.raises(ShipRefusedError, match="not the panel-best"):
        ship(run, tmp_path / "q.json", tmp_path / "h.json", tmp_path)
    best = json.loads((run / "best.json").read_text())["theta_digest"]
    (tmp_path / "q.json").write_text(json.dumps({**stale, "theta": "/elsewhere/gone.npz", "theta_digest": best}))
    dest = tmp_path / "data"
    dest.mkdir()
    assert ship(run, tmp_path / "q.json", tmp_path / "h.json", dest).is_file()  # no need to reread the file


def _mixture(tmp_path):
    """A θ file (the midpoint of the hand-set and a random θ) and a provenance JSON for it."""
    from lopt_trainer.theta.interpolate import interpolate_theta
    from lopt_trainer.theta.load import load_theta, theta_digest
    from lopt_trainer.theta.reference_io import save_reference_npz

    theta = interpolate_theta(load_theta("handset"), load_theta("random"), 0.5)
    save_reference_npz(theta, tmp_path / "mix.npz")
    provenance = {"theta": "0.5·handset + 0.5·random", "config": {"filters": {"split": ["meta_train"]}},
                  "steps_run": 0, "interpolation": {"alpha": 0.5}}
    (tmp_path / "prov.json").write_text(json.dumps(provenance))
    return tmp_path / "mix.npz", tmp_path / "prov.json", theta_digest(theta), provenance


def test_ship_file_copies_a_winning_theta_file_with_its_provenance_as_the_recipe(tmp_path):
    from lopt_trainer.meta.ship import ship_file
    from lopt_trainer.theta.shipped import RECIPE_FILE

    mix, prov, digest, provenance = _mixture(tmp_path)
    (tmp_path / "h.json").write_text(json.dumps(_handset()))
    (tmp_path / "q.json").write_text(json.dumps({**_quality(theta=str(mix)), "theta_digest": digest}))
    dest = tmp_path / "data"
    dest.mkdir()
    path = ship_file(mix, tmp_path / "q.json", tmp_path / "h.json", prov, dest)
    assert path.read_bytes() == mix.read_bytes()
    recipe = json.loads((dest / RECIPE_FILE).read_text())
    assert {k: recipe[k] for k in provenance} == provenance and recipe["theta_digest"] == digest
    assert recipe["shipped_on"]["quality"] == "q.json"


@pytest.mark.parametrize("case, message", [
    ("loses", "45%"), ("other_theta", "not .*mix.npz"), ("no_config", "field 'config' must be a dict"),
    ("bad_steps", "field 'steps_run' must be a int >= 0"), ("not_json", "not a readable JSON"),
])
def test_ship_file_refuses_and_writes_nothing(tmp_path, case, message):
    from lopt_trainer.meta.ship import ship_file

    mix, prov, digest, provenance = _mixture(tmp_path)
    (tmp_path / "h.json").write_text(json.dumps(_handset()))
    quality = {**_quality(theta=str(mix)), "theta_digest": digest}
    if case == "loses":
        quality["rows"][0]["frac_lopt_better"] = 0.45
    elif case == "other_theta":
        quality["theta_digest"] = "f" * 16
    elif case == "no_config":
        prov.write_text(json.dumps({k: v for k, v in provenance.items() if k != "config"}))
    elif case == "bad_steps":
        prov.write_text(json.dumps({**provenance, "steps_run": -1}))
    else:
        prov.write_text("{not json")
    (tmp_path / "q.json").write_text(json.dumps(quality))
    dest = tmp_path / "data"
    dest.mkdir()
    with pytest.raises(ShipRefusedError, match=message):
        ship_file(mix, tmp_path / "q.json", tmp_path / "h.json", prov, dest)
    assert list(dest.iterdir()) == []


def test_the_ship_command_needs_provenance_for_a_file_and_refuses_it_for_a_run(run, tmp_path):
    mix, prov, digest, _ = _mixture(tmp_path)
    (tmp_path / "h.json").write_text(json.dumps(_handset()))
    (tmp_path / "q.json").write_text(json.dumps({**_quality(theta=str(mix)), "theta_digest": digest}))
    common = ["--quality", str(tmp_path / "q.json"), "--handset", str(tmp_path / "h.json"),
              "--confirm", str(tmp_path / "q.json"), str(tmp_path / "h.json")]
    res = CliRunner().invoke(_cli(), ["lopt", "ship", str(mix), *common])
    assert res.exit_code == 2 and "--provenance" in res.output
    res = CliRunner().invoke(_cli(), ["lopt", "ship", str(run), *common, "--provenance", str(prov)])
    assert res.exit_code == 2 and "carries its own recipe" in res.output
    (tmp_path / "q.json").write_text(json.dumps({**_quality(theta=str(mix), global_frac=0.3),
                                                 "theta_digest": digest}))
    res = CliRunner().invoke(_cli(), ["lopt", "ship", str(mix), *common, "--provenance", str(prov)])
    assert res.exit_code == 1 and "not shipped" in res.output and "Traceback" not in res.output


def _draw(tmp_path, name, digest, tasks, lead=True, global_frac=0.65):
    """A (quality, hand-set) pair of result files on the unseen tasks ``tasks``: the θ ``digest`` ahead of the
    hand-set θ on all of them (or behind, ``lead=False``)."""
    finals = dict.fromkeys(tasks, 0.5 if lead else 1.5)
    q = {**_quality(finals=finals, global_frac=global_frac), "theta_digest": digest}
    h = _handset(dict.fromkeys(tasks, 1.0))
    (tmp_path / f"{name}_q.json").write_text(json.dumps(q))
    (tmp_path / f"{name}_h.json").write_text(json.dumps(h))
    return tmp_path / f"{name}_q.json", tmp_path / f"{name}_h.json"


def test_a_second_draw_must_confirm_every_target_on_other_tasks_with_the_same_theta(tmp_path):
    from lopt_trainer.meta.ship import ship_file

    mix, prov, digest, _ = _mixture(tmp_path)
    q0, h0 = _draw(tmp_path, "d0", digest, UNSEEN)
    other = [f"u{i}" for i in range(5)]
    dest = tmp_path / "data"
    dest.mkdir()
    for confirm, message in ((_draw(tmp_path, "weak", digest, other, global_frac=0.5), "50% \\(target ≥ 60%\\)"),
                             (_draw(tmp_path, "behind", digest, other, lead=False), "ahead of the hand-set θ: 0%"),
                             (_draw(tmp_path, "same", digest, UNSEEN), "same unseen tasks"),
                             (_draw(tmp_path, "other", "f" * 16, other), "not the θ of"),
                             (_draw(tmp_path, "nodigest", None, other), "not the θ of")):
        with pytest.raises(ShipRefusedError, match=message):
            ship_file(mix, q0, h0, prov, dest, confirm=confirm)
    assert list(dest.iterdir()) == []
    from lopt_trainer.meta.ship import _check_targets

    old_q, old_h = _draw(tmp_path, "old0", None, UNSEEN)  # results that predate recorded digests cannot confirm
    with pytest.raises(ShipRefusedError, match="not the θ of"):
        _check_targets(old_q, old_h, _draw(tmp_path, "old1", None, other))
    assert ship_file(mix, q0, h0, prov, dest, confirm=_draw(tmp_path, "good", digest, other)).is_file()
