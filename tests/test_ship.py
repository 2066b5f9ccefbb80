"""Shipping only a θ that wins on the yardstick's test set: the targets, the record the gate measures itself, and
`python -m research ship` refusing (writing nothing) or shipping a run's θ or a θ file with its record beside it."""

import json

import jax
import pytest
from click.testing import CliRunner

from research import ship as S
from research.ship import ShipRefusedError


def _record(**kw):
    rec = {"theta_digest": "d" * 16, "vs_handset": {"mean": 0.05, "low": 0.01, "high": 0.09},
           "beats_global_adamlr": 0.65, "beats_per_task_adamlr14": 0.3, "diverged": 0, "tasks": 120, "seeds": 3,
           "mean_normalized_loss": {"value": 0.2, "low": 0.1, "high": 0.3}, "set_sha256": "s", "baseline_version": 1}
    rec.update(kw)
    return rec


def test_shortfalls_name_each_missed_target():
    assert S.shortfalls(_record()) == []
    short = S.shortfalls(_record(vs_handset={"mean": 0.01, "low": -0.02, "high": 0.04}, beats_global_adamlr=0.45,
                                 beats_per_task_adamlr14=0.2, diverged=2))
    assert len(short) == 4
    assert "ahead of the hand-set θ by +0.0100 [-0.0200, +0.0400]" in short[0] and "above 0" in short[0]
    assert "Global AdamLR: 45% (target ≥ 60%)" in short[1]
    assert "per-task AdamLR@14: 20% (target ≥ 25%)" in short[2]
    assert "diverged: 2 (target 0)" in short[3]
    # the edges: exactly the target passes; an interval touching 0 does not
    assert S.shortfalls(_record(beats_global_adamlr=0.60, beats_per_task_adamlr14=0.25)) == []
    assert S.shortfalls(_record(vs_handset={"mean": 0.01, "low": 0.0, "high": 0.02}))


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


def _cli():
    from research.cli import cli

    return cli


def test_ship_refuses_a_losing_theta_and_writes_nothing(run, tmp_path, monkeypatch):
    monkeypatch.setattr(S, "test_record", lambda theta, **kw: _record(beats_global_adamlr=0.45))
    dest = tmp_path / "data"
    dest.mkdir()
    with pytest.raises(ShipRefusedError, match="not shipped, on the test set the θ misses .*45%"):
        S.ship(run, dest)
    assert list(dest.iterdir()) == []
    result = CliRunner().invoke(_cli(), ["ship", str(run), "--no-progress"])
    assert result.exit_code == 1 and "not shipped" in result.output and "Traceback" not in result.output


def test_ship_copies_a_winning_run_theta_with_its_record(run, tmp_path, monkeypatch):
    from lopt_trainer.theta.load import theta_digest

    seen = []
    monkeypatch.setattr(S, "test_record", lambda theta, **kw: seen.append(theta_digest(theta)) or _record())
    dest = tmp_path / "data"
    dest.mkdir()
    path = S.ship(run, dest)
    assert path.read_bytes() == (run / "best_theta.npz").read_bytes()
    assert seen == [json.loads((run / "best.json").read_text())["theta_digest"]]  # the gate measured that θ
    assert json.loads((dest / S.RECORD_FILE).read_text()) == json.loads(json.dumps(_record()))


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


def test_ship_file_copies_a_winning_theta_file_with_its_provenance_as_the_recipe(tmp_path, monkeypatch):
    from lopt_trainer.theta.shipped import RECIPE_FILE

    monkeypatch.setattr(S, "test_record", lambda theta, **kw: _record())
    mix, prov, digest, provenance = _mixture(tmp_path)
    dest = tmp_path / "data"
    dest.mkdir()
    path = S.ship_file(mix, prov, dest)
    assert path.read_bytes() == mix.read_bytes()
    recipe = json.loads((dest / RECIPE_FILE).read_text())
    assert {k: recipe[k] for k in provenance} == provenance and recipe["theta_digest"] == digest
    assert recipe["shipped_on"] == S.RECORD_FILE and (dest / S.RECORD_FILE).is_file()


@pytest.mark.parametrize("case, message", [
    ("loses", "45%"), ("no_config", "field 'config' must be a dict"),
    ("bad_steps", "field 'steps_run' must be a int >= 0"), ("not_json", "not a readable JSON"),
])
def test_ship_file_refuses_and_writes_nothing(tmp_path, case, message, monkeypatch):
    monkeypatch.setattr(S, "test_record", lambda theta, **kw: _record(
        beats_global_adamlr=0.45 if case == "loses" else 0.65))
    mix, prov, digest, provenance = _mixture(tmp_path)
    if case == "no_config":
        prov.write_text(json.dumps({k: v for k, v in provenance.items() if k != "config"}))
    elif case == "bad_steps":
        prov.write_text(json.dumps({**provenance, "steps_run": -1}))
    elif case == "not_json":
        prov.write_text("{not json")
    dest = tmp_path / "data"
    dest.mkdir()
    with pytest.raises(ShipRefusedError, match=message):
        S.ship_file(mix, prov, dest)
    assert list(dest.iterdir()) == []


def test_the_ship_command_needs_provenance_for_a_file_and_refuses_it_for_a_run(run, tmp_path):
    mix, prov, _, _ = _mixture(tmp_path)
    res = CliRunner().invoke(_cli(), ["ship", str(mix)])
    assert res.exit_code == 2 and "--provenance" in res.output
    res = CliRunner().invoke(_cli(), ["ship", str(run), "--provenance", str(prov)])
    assert res.exit_code == 2 and "carries its own recipe" in res.output


def test_the_record_is_measured_on_the_test_set_against_the_handset_theta(tmp_path, monkeypatch):
    """The real gate on a two-task test set: the hand-set θ against itself is never ahead of itself."""
    from lopt_trainer.theta.load import load_theta, theta_digest
    from tests.yardstick_helpers import tiny_yardstick

    data = tiny_yardstick(tmp_path)
    theta = load_theta("handset")
    rec = S.test_record(theta, cache=tmp_path / "cache", progress=False, data_dir=data)
    assert rec["theta_digest"] == theta_digest(theta) and rec["tasks"] == 2 and rec["seeds"] == 3
    assert rec["vs_handset"] == {"mean": 0.0, "low": 0.0, "high": 0.0}
    assert 0.0 <= rec["beats_global_adamlr"] <= 1.0 and rec["diverged"] == 0
    assert any("ahead of the hand-set θ" in line for line in S.shortfalls(rec))


def test_a_disk_that_fills_while_shipping_leaves_the_old_theta_recipe_and_record(run, tmp_path, monkeypatch):
    """θ, its recipe and the gate's record change together: a failure while writing any of them (here the disk
    fills on the second file) leaves all three as they were, and no staged file behind."""
    from lopt_trainer.common import run_files
    from lopt_trainer.theta.shipped import RECIPE_FILE, THETA_FILE

    monkeypatch.setattr(S, "test_record", lambda theta, **kw: _record())
    dest = tmp_path / "data"
    dest.mkdir()
    old = {THETA_FILE: b"old theta", RECIPE_FILE: b"old recipe", S.RECORD_FILE: b"old record"}
    for name, data in old.items():
        (dest / name).write_bytes(data)
    real = run_files.atomic_write_bytes
    calls = []

    def full_disk(path, data):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device", str(path))
        real(path, data)

    monkeypatch.setattr(run_files, "atomic_write_bytes", full_disk)
    with pytest.raises(OSError, match="No space left"):
        S.ship(run, dest)
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == old
    monkeypatch.setattr(run_files, "atomic_write_bytes", real)
    S.ship(run, dest)
    assert sorted(p.name for p in dest.iterdir()) == sorted(old)
    assert (dest / THETA_FILE).read_bytes() == (run / "best_theta.npz").read_bytes()
