"""The portable pretraining state (issue 19, 3): export a run's checkpoint into a small directory, continue it in a
fresh folder (θ, outer state, sampler state and step exactly; estimators afresh, with a warning), refuse damaged
or missing files by name before writing anything, and stay byte-stable for θ over export → continue → export."""

import hashlib
import json
import shutil
import subprocess
import sys

import flax.serialization as fser
import jax
import numpy as np
import pytest
from click.testing import CliRunner

from lopt_trainer.common import checkpoint as ckpt
from lopt_trainer.errors import PretrainStateError, ResumeError
from lopt_trainer.meta import MetaTrainConfig, meta_train
from lopt_trainer.meta import portable as P
from tests.meta_helpers import small_quadratic_specs

GROUPS, SLOTS = 1, 2


def _config(**kw):
    base = dict(lopt="tests.meta_helpers:tiny_lopt", truncation=5, tasks_per_group=SLOTS, num_groups=GROUPS,
                horizon="constant", horizon_min=20, horizon_max=20, resample_every=50, eval_every=0,
                checkpoint_every=1, valid_every=5, outer_lr=0.05, sigma=0.05, compilation_cache="",
                filters={"family": ["quadratic"]})
    base.update(kw)
    return MetaTrainConfig(**base)


def _theta_bytes(raw_theta) -> bytes:
    leaves = jax.tree_util.tree_leaves(raw_theta)
    return b"".join(np.asarray(x).tobytes() for x in leaves)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A 3-step run from a spec file and its exported portable state."""
    from taskgen import write_specs

    root = tmp_path_factory.mktemp("portable")
    write_specs(small_quadratic_specs(4), root / "specs.jsonl")
    meta_train(_config(steps=3, suite=str(root / "specs.jsonl")), root / "run", progress=False)
    P.export_state(root / "run", root / "state")
    return root


def _continue(base, state_dir, out, steps, **kw):
    return meta_train(_config(steps=steps, suite=str(base / "specs.jsonl")), out, progress=False,
                      continue_from=state_dir, **kw)


def test_the_state_directory_holds_theta_outer_sampler_step_config_and_history_but_no_estimators(base):
    state = P.read_state(base / "state")
    raw = ckpt.load_checkpoint(base / "run")
    assert state.step == 3 == int(raw["step"])
    assert sorted(p.name for p in (base / "state").iterdir()) == ["config.json", "history.json", "index.json",
                                                                 "state.msgpack"]
    payload = fser.msgpack_restore((base / "state" / "state.msgpack").read_bytes())
    assert "estimators" not in payload and payload["sampler"] == raw["sampler"]
    assert _theta_bytes(payload["theta"]) == _theta_bytes(raw["theta"])
    assert json.loads((base / "state" / "config.json").read_text()) == json.loads(raw["config"])
    index = json.loads((base / "state" / "index.json").read_text())
    assert index["step"] == 3 and index["files"]["state.msgpack"]["sha256"] == hashlib.sha256(
        (base / "state" / "state.msgpack").read_bytes()).hexdigest()
    (session,) = state.history
    assert (session["steps_from"], session["steps_to"], session["steps"]) == (0, 3, 3)
    assert session["wall_seconds"] > 0 and session["cpu"] and session["date"].endswith("+00:00")
    assert P.state_step(base / "state") == 3 and P.state_step(base / "nothing") == 0


def test_the_step_reader_make_pretrain_runs_prints_the_step_quietly_and_fails_cleanly(base, tmp_path):
    """``make pretrain`` reads the state's step with ``python -c`` (``-m`` on the module warned on every run)."""
    code = "import sys; from lopt_trainer.meta.portable import main; sys.exit(main(sys.argv[1:]))"
    run = lambda *args: subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)  # noqa: E731
    ok = run("step", str(base / "state"))
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "3\n", "")
    assert run("step", str(tmp_path / "nothing")).stdout == "0\n"
    damaged = tmp_path / "state"
    shutil.copytree(base / "state", damaged)
    (damaged / "index.json").write_text("{not json")
    bad = run("step", str(damaged))
    assert bad.returncode == 2 and bad.stdout == "" and bad.stderr.startswith("Error: pretraining state ")
    assert "Traceback" not in bad.stderr and run("steps", "x").returncode == 2
    (damaged / "index.json").unlink()  # a state that lost its index: stop, do not start again from the hand-set θ
    lost = run("step", str(damaged))
    assert lost.returncode == 2 and "but no index.json: damaged" in lost.stderr and lost.stdout == ""
    (tmp_path / "empty").mkdir()
    assert run("step", str(tmp_path / "empty")).stdout == "0\n"


def test_continuing_restores_step_theta_and_outer_state_exactly_warns_and_reaches_the_total(base, tmp_path):
    with pytest.warns(P.FreshEstimatorsWarning, match=r"continuing at outer step 3 with fresh estimator states .* "
                                                      r"the 2 slots of the 1 estimators start new problems"):
        same = _continue(base, base / "state", tmp_path / "same", steps=3)  # no step: the restored state is saved
    assert same.state.step == 3
    original, restored = ckpt.load_checkpoint(base / "run"), ckpt.load_checkpoint(tmp_path / "same")
    assert _theta_bytes(restored["theta"]) == _theta_bytes(original["theta"])
    assert _theta_bytes(restored["outer_state"]) == _theta_bytes(original["outer_state"])
    sampler = json.loads(restored["sampler"])
    assert sampler["slot_tasks"] == json.loads(original["sampler"])["slot_tasks"]
    assert sampler["done"] == [[True] * SLOTS]  # every slot starts a fresh problem

    with pytest.warns(P.FreshEstimatorsWarning):
        more = _continue(base, base / "state", tmp_path / "more", steps=5)
    assert more.state.step == 5 and int(ckpt.load_checkpoint(tmp_path / "more")["step"]) == 5
    steps = [r["step"] for r in map(json.loads, (tmp_path / "more" / "metrics.jsonl").read_text().splitlines())
             if r["kind"] == "step"]
    assert steps == [3, 4]
    assert json.loads((tmp_path / "more" / P.RUN_HISTORY_FILE).read_text())["session_start"] == 3


def test_same_state_and_seed_give_the_same_theta(base, tmp_path):
    with pytest.warns(P.FreshEstimatorsWarning):
        a = _continue(base, base / "state", tmp_path / "a", steps=5)
        b = _continue(base, base / "state", tmp_path / "b", steps=5)
    assert _theta_bytes(jax.device_get(a.theta)) == _theta_bytes(jax.device_get(b.theta))
    assert _theta_bytes(jax.device_get(a.theta)) != _theta_bytes(ckpt.load_checkpoint(base / "run")["theta"])


def test_export_continue_export_is_byte_stable_for_theta_and_history_accumulates(base, tmp_path):
    with pytest.warns(P.FreshEstimatorsWarning):
        _continue(base, base / "state", tmp_path / "again", steps=3)
    P.export_state(tmp_path / "again", tmp_path / "state2")
    first = fser.msgpack_restore((base / "state" / "state.msgpack").read_bytes())
    second = fser.msgpack_restore((tmp_path / "state2" / "state.msgpack").read_bytes())
    assert fser.msgpack_serialize(first["theta"]) == fser.msgpack_serialize(second["theta"])
    assert fser.msgpack_serialize(first["outer_state"]) == fser.msgpack_serialize(second["outer_state"])
    assert P.read_state(tmp_path / "state2").history == P.read_state(base / "state").history  # no step: no session

    with pytest.warns(P.FreshEstimatorsWarning):
        _continue(base, tmp_path / "state2", tmp_path / "longer", steps=5)
    P.export_state(tmp_path / "longer", tmp_path / "state2")  # replaces the directory it continued from
    history = P.read_state(tmp_path / "state2").history
    assert [(h["steps_from"], h["steps_to"]) for h in history] == [(0, 3), (3, 5)]
    assert not (tmp_path / "state2.partial").exists() and not (tmp_path / "state2.previous").exists()
    P.export_state(tmp_path / "longer", tmp_path / "state2")  # exporting the same run again adds no session
    assert len(P.read_state(tmp_path / "state2").history) == 2


def test_a_copied_state_continues_in_a_fresh_clone_like_location(base, tmp_path):
    clone = tmp_path / "clone" / "lopt_trainer" / "data" / "pretrain_state"
    shutil.copytree(base / "state", clone)
    with pytest.warns(P.FreshEstimatorsWarning, match="pretrain_state"):
        result = _continue(base, clone, tmp_path / "clone" / "runs" / "pretrain", steps=4)
    assert result.state.step == 4


@pytest.mark.parametrize("name, damage, why", [
    ("state.msgpack", "truncate", "damaged"), ("config.json", "flip", "damaged"),
    ("history.json", "delete", "missing"), ("index.json", "delete", "missing"), ("index.json", "garbage", "damaged"),
])
def test_a_damaged_or_missing_file_is_named_and_nothing_is_written(base, tmp_path, name, damage, why):
    state = tmp_path / "state"
    shutil.copytree(base / "state", state)
    target = state / name
    if damage == "delete":
        target.unlink()
    elif damage == "truncate":
        target.write_bytes(target.read_bytes()[:-7])
    elif damage == "flip":
        data = bytearray(target.read_bytes())
        data[5] ^= 0x01
        target.write_bytes(bytes(data))
    else:
        target.write_bytes(b"\x00not json")
    with pytest.raises(PretrainStateError, match=f"pretraining state {target}: {why}"):
        _continue(base, state, tmp_path / "out", steps=4)
    assert not (tmp_path / "out").exists()


def test_other_settings_or_a_run_folder_behind_the_state_are_refused(base, tmp_path):
    with pytest.raises(ResumeError, match=r"pretraining state .*state: --resume with settings other than the run's "
                                          r"\(family_limits: stored \{\}, given \{'quadratic': \{'max_params': 9\}\}\);"
                                          r" family_limits cannot change mid-run \(family_limits: a change of the "
                                          r"training task list\)"):
        meta_train(_config(steps=4, suite=str(base / "specs.jsonl"), family_limits={"quadratic": {"max_params": 9}}),
                   tmp_path / "x", progress=False, continue_from=base / "state")
    meta_train(_config(steps=2, suite=str(base / "specs.jsonl")), tmp_path / "behind", progress=False)
    with pytest.raises(ResumeError, match="its checkpoint is at outer step 2, behind the pretraining state"):
        _continue(base, base / "state", tmp_path / "behind", steps=5, resume=True)
    # A run of another lineage (here: started afresh, not from the state) that got as far is never continued in
    # the state's place (make pretrain would then export it over the committed state).
    meta_train(_config(steps=3, suite=str(base / "specs.jsonl")), tmp_path / "other", progress=False)
    with pytest.raises(ResumeError, match="not a continuation of the pretraining state"):
        _continue(base, base / "state", tmp_path / "other", steps=5, resume=True)


def test_cli_export_and_from_state(base, tmp_path):
    from lopt_trainer.app.cli import lopt

    out = CliRunner().invoke(lopt, ["export-state", str(base / "run"), "--out", str(tmp_path / "s")])
    assert out.exit_code == 0, out.output
    info = json.loads(out.output.strip().splitlines()[-1])
    assert info["step"] == 3 and info["sessions"] == 1 and 0 < info["bytes"] < 20_000
    args = ["meta-train", "--suite", str(base / "specs.jsonl"), "--filter", "family=quadratic", "--out",
            str(tmp_path / "r"), "--from-state", str(tmp_path / "s"), "--no-progress", "--steps", "4"]
    ran = CliRunner().invoke(lopt, args)
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.output.strip().splitlines()[-1])["step"] == 4


def test_family_limits_are_checked_naming_the_setting():
    from lopt_trainer.common.task_pool import check_family_limits

    assert check_family_limits({"word_lm": {"max_flops": 5, "max_params": 7}}) == {
        "word_lm": {"max_params": 7, "max_flops": 5}}
    for bad, text in [({"mlp": {"max_param": 1}}, r"family_limits\['mlp'\]: unknown key 'max_param'; allowed: "
                                                  "max_params, max_flops"),
                      ({"mlp": {"max_params": 0}}, r"family_limits\['mlp'\]\['max_params'\] must be an integer in "
                                                   r"\[1, 2\*\*63\), got 0"),
                      ({"mlp": {"max_flops": True}}, r"must be an integer in \[1, 2\*\*63\), got True"),
                      ({"mlp": {"max_flops": 8.0}}, r"must be an integer in \[1, 2\*\*63\), got 8.0"),
                      ({"mlp": {}}, r"family_limits\['mlp'\] must be an object with max_params and/or max_flops"),
                      ([1], "family_limits must be an object")]:
        with pytest.raises(ValueError, match=text):
            MetaTrainConfig.from_dict({"family_limits": bad})


def test_family_limits_override_the_global_ones_in_the_filter_and_its_error():
    from lopt_trainer.common.task_pool import filter_specs, no_specs_message

    specs = small_quadratic_specs(3, dims=4) + small_quadratic_specs(2, dims=30)  # 4 and 30 parameters
    assert len(filter_specs(specs, max_params=10)) == 3
    assert len(filter_specs(specs, max_params=10, family_limits={"quadratic": {"max_params": 100}})) == 5
    assert len(filter_specs(specs, max_params=None, family_limits={"quadratic": {"max_params": 3}})) == 0
    assert len(filter_specs(specs, max_params=10, family_limits={"mlp": {"max_params": 1}})) == 3
    message = no_specs_message("x", specs, {}, 10, None, {"quadratic": {"max_params": 3}})
    assert message.endswith("5 specs -> max_params<=10 (quadratic<=3) 0 (max_params<=10 (quadratic<=3) removed "
                            "the last 5; loosen it)")


def test_the_panel_memory_travels_with_the_state(base, tmp_path):
    """best θ, its record and the hand-set scores go into the state and come out in the continuing run folder;
    a session lists its panel records (the compute curve's points)."""
    from lopt_trainer.meta.metrics import append_metrics

    run = tmp_path / "run"
    shutil.copytree(base / "run", run)
    (run / P.RUN_HISTORY_FILE).unlink()  # this copy's session is steps 0 → 3
    (run / "panel").mkdir(exist_ok=True)
    files = {"best_theta.npz": b"npz bytes", "best.json": b'{"step": 2, "score": 0.5}',
             "panel/handset_scores.json": b'{"settings": {}, "task_scores": {"t": 0.1}}'}
    for name, data in files.items():
        (run / name).write_bytes(data)
    append_metrics(run, {"kind": "panel", "step": 3, "score": 0.5, "seconds": 7.0, "task_scores": {"t": 0.5},
                         "vs_handset": {"mean": 0.4, "low": 0.1, "high": 0.7}})
    P.export_state(run, tmp_path / "state")
    state = P.read_state(tmp_path / "state")
    assert state.panel_files == files
    index = json.loads((tmp_path / "state" / "index.json").read_text())
    assert set(files) <= set(index["files"])
    (session,) = state.history
    (point,) = session["panel"]
    assert point.pop("session_seconds") == pytest.approx(session["wall_seconds"])  # the 3 steps + the panel's 7 s
    assert point == {"step": 3, "score": 0.5, "seconds": 7.0, "vs_handset": {"mean": 0.4, "low": 0.1, "high": 0.7}}
    with pytest.warns(P.FreshEstimatorsWarning):
        _continue(base, tmp_path / "state", tmp_path / "next", 4)
    for name, data in files.items():
        assert (tmp_path / "next" / name).read_bytes() == data

    (tmp_path / "state" / "best.json").write_bytes(b'{"step": 9}')  # damaged: another digest
    with pytest.raises(PretrainStateError, match="best.json"):
        P.read_state(tmp_path / "state")


def test_the_run_panel_reads_stored_handset_scores_made_under_its_settings(tmp_path):
    import dataclasses

    from lopt_trainer.evaluation.panel import PanelSettings
    from lopt_trainer.meta.run_panel import HANDSET_SCORES, Panel
    from lopt_trainer.optimizer.protocol import hierarchical_lopt

    from lopt_trainer.theta.load import theta_digest

    settings = PanelSettings(families=("quadratic",), per_family=1, seeds=1, steps=10)
    tasks = Panel(settings, tmp_path, hierarchical_lopt(), resumed=False).task_ids
    stored = {"settings": json.loads(json.dumps(dataclasses.asdict(settings))), "task_scores": {"t": 0.25},
              "theta_digest": theta_digest(jax.jit(hierarchical_lopt().init_handset)(jax.random.PRNGKey(0))),
              "tasks": sorted(tasks)}
    (tmp_path / "panel").mkdir()
    (tmp_path / HANDSET_SCORES).write_text(json.dumps(stored))
    (tmp_path / "best.json").write_text(json.dumps({"step": 5, "score": 1.0, "task_scores": {"elsewhere": 1.0}}))
    panel = Panel(settings, tmp_path, hierarchical_lopt(), resumed=True)
    assert panel.reference_scores() == {"t": 0.25}  # read back, not evaluated again
    assert panel.best is None  # a best scored on other tasks is not compared with this panel


def test_compute_curve_points_accumulate_steps_and_cpu_hours_over_sessions():
    from research.compute_curve import curve_points

    sessions = [{"wall_seconds": 3600, "cpus": 2, "cpu": "A", "panel": [
                    {"step": 0, "score": 0.1, "session_seconds": 600},
                    {"step": 150, "score": 0.2, "session_seconds": 3600, "vs_handset": {"mean": 0.1, "low": 0, "high": 0.2}}]},
                {"wall_seconds": 1800, "cpus": 4, "cpu": "B", "panel": [{"step": 300, "score": 0.3, "session_seconds": 1800}]}]
    points = curve_points(sessions)
    assert [p["step"] for p in points] == [0, 150, 300]
    assert [p["wall_hours"] for p in points] == [pytest.approx(1 / 6, abs=1e-3), 1.0, 1.5]
    assert [p["cpu_hours"] for p in points] == [pytest.approx(1 / 3, abs=1e-3), 2.0, 4.0]
    assert points[1]["vs_handset"]["mean"] == 0.1 and points[2]["cpu"] == "B"
    from research.compute_curve import session_ends

    sessions[0]["steps_to"], sessions[1]["steps_to"] = 200, 320
    assert session_ends(sessions) == {200: 2.0, 320: 4.0}


def test_compute_curve_quality_points_read_the_unseen_figures_and_refuse_bad_arguments(tmp_path):
    import json

    import math

    from research.compute_curve import family_table, handset_digest, parse_quality, plot

    result = {"theta": "/x/best.npz", "targets": {"unseen_diverged": {"measured": 0}}, "rows": [
        {"baseline": "global_adamlr", "group": "seen", "frac_lopt_better": 0.9, "median_improvement": 1.0},
        {"baseline": "global_adamlr", "group": "unseen", "frac_lopt_better": 0.55, "median_improvement": -0.1},
        {"baseline": "per_task_adamlr@14", "group": "unseen", "frac_lopt_better": 0.2, "median_improvement": -1.0}],
        "paired": {"research/results/h.json": {"theta": "handset", "theta_digest": handset_digest(), "unseen": {
            "frac_ahead": 0.7, "score_diff": {"mean": 0.3, "low": 0.1, "high": 0.5, "tasks": 20}}}}}
    (tmp_path / "q.json").write_text(json.dumps(result))
    (tmp_path / "h.json").write_text(json.dumps({**result, "paired": {}}))
    points = parse_quality([f"300={tmp_path / 'q.json'}", f"0={tmp_path / 'h.json'}"])
    assert [p["step"] for p in points] == [0, 300]
    q = points[1]
    assert (q["beats_global"], q["beats_per_task"], q["median_improvement_global"], q["diverged"]) == (0.55, 0.2, -0.1, 0)
    assert q["ahead_of_handset"] == 0.7 and q["vs_handset_score"]["low"] == 0.1
    assert "ahead_of_handset" not in points[0] and "family_scores" not in q
    tasks = {"a": {"group": "unseen", "family": "mlp", "score": 1.0}, "b": {"group": "unseen", "family": "mlp",
             "score": -2.0}, "c": {"group": "seen", "family": "nvp", "score": 3.0},
             "d": {"group": "unseen", "family": "twod", "score": float("nan")}}
    (tmp_path / "t.json").write_text(json.dumps({**result, "lopt_tasks": tasks}))
    with_tasks = parse_quality([f"450={tmp_path / 't.json'}"])[0]
    assert with_tasks["family_scores"]["mlp"] == {"tasks": 2, "score": -0.5}
    assert set(with_tasks["family_scores"]) == {"mlp", "twod"}  # the seen nvp task is left out
    assert with_tasks["family_scores"]["twod"]["tasks"] == 1 and math.isnan(with_tasks["family_scores"]["twod"]["score"])
    table = family_table([points[0], with_tasks]).splitlines()
    assert table[1].split() == ["family", "tasks", "450"]
    assert table[2].split() == ["mlp", "2", "-0.50"] and table[3].split() == ["twod", "1", "n/a"]
    assert family_table(points) == ""
    (tmp_path / "list.json").write_text("[1]")
    for bad, message in (("x=q.json", "expected STEP=RESULT.json"), ("3", "expected STEP"),
                         (f"3={tmp_path / 'missing.json'}", "cannot read"),
                         (f"3={tmp_path / 'list.json'}", "not a quality benchmark result")):
        with pytest.raises(SystemExit, match=message):
            parse_quality([bad])
    plot([{"step": 0, "cpu_hours": 0.5, "score": 0.1, "vs_handset": None},
          {"step": 300, "cpu_hours": 2.0, "score": 0.3, "vs_handset": {"mean": 0.2, "low": 0.1, "high": 0.3}}],
         tmp_path / "c.png", points)
    assert (tmp_path / "c.png").stat().st_size > 0


def test_an_export_that_died_between_its_renames_loses_nothing(base, tmp_path):
    shutil.copytree(base / "state", tmp_path / "state.previous")  # DEST renamed away, the new one not yet in place
    assert P.state_step(tmp_path / "state") == 3
    assert (tmp_path / "state" / "index.json").is_file() and not (tmp_path / "state.previous").exists()


def test_compute_curve_name_writes_a_branch_curve_beside_the_main_one_and_refuses_a_path(tmp_path, monkeypatch):
    import json

    import research.common as common
    import research.compute_curve as cc

    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr(cc, "RESULTS_DIR", tmp_path)
    cc.main(["--state", str(tmp_path / "no_state"), "--name", "compute_curve_branch"])
    payload = json.loads((tmp_path / "compute_curve_branch.json").read_text())
    assert payload["benchmark"] == "compute_curve_branch" and payload["rows"] == [] and payload["sessions"] == []
    assert (tmp_path / "compute_curve_branch.png").is_file() and not (tmp_path / "compute_curve.json").exists()
    for bad in ("../escape", ".hidden", "a b"):
        assert common.name_problem(bad) is not None
        with pytest.raises(SystemExit) as e:
            cc.main(["--state", str(tmp_path / "no_state"), "--name", bad])
        assert e.value.code == 2
    assert common.name_problem("compute_curve_late-1.5") is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["compute_curve_branch.json", "compute_curve_branch.png"]


def test_export_never_deletes_what_is_not_a_state(base, tmp_path):
    """--out = the run folder itself, a folder holding another run, a folder of the user's files: refused, intact."""
    from taskgen_cli import cli

    run = tmp_path / "run"
    shutil.copytree(base / "run", run)
    other = tmp_path / "other"
    shutil.copytree(base / "run", other)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    before = {d: sorted(p.relative_to(d).as_posix() for p in d.rglob("*")) for d in (run, other, mine)}
    history = (run / P.RUN_HISTORY_FILE).read_bytes() if (run / P.RUN_HISTORY_FILE).exists() else None
    for dest, what in ((run, "checkpoint.msgpack"), (other, "checkpoint.msgpack"), (mine, "thesis.tex")):
        with pytest.raises(PretrainStateError, match=f"{dest}: holds files that are not a portable state .*{what}"):
            P.export_state(run, dest)
        res = CliRunner().invoke(cli, ["lopt", "export-state", str(run), "--out", str(dest)])
        assert res.exit_code == 1 and "nothing written" in res.output and "Traceback" not in res.output
    assert {d: sorted(p.relative_to(d).as_posix() for p in d.rglob("*")) for d in (run, other, mine)} == before
    assert (mine / "thesis.tex").read_text() == "years of work"
    assert ((run / P.RUN_HISTORY_FILE).read_bytes() if history is not None else None) == history
    # a state folder with a file of the user's beside the state's own: refused too
    state = tmp_path / "state"
    shutil.copytree(base / "state", state)
    (state / "notes.md").write_text("mine")
    with pytest.raises(PretrainStateError, match="not part of its portable state .*notes.md"):
        P.export_state(run, state)
    (state / "notes.md").unlink()
    assert P.export_state(run, state) == state  # a state alone is replaced as a whole
    empty = tmp_path / "empty"
    empty.mkdir()
    assert P.read_state(P.export_state(run, empty)).step == 3


@pytest.mark.parametrize("steps, hours, out, error", [
    ("1000", "0", "", None), ("5", "1.5", "--hours 1.5", None),
    ("1000", "1h", None, "PRETRAIN_HOURS='1h'"), ("1000", "nan", None, "PRETRAIN_HOURS='nan'"),
    ("1000", "-1", None, "PRETRAIN_HOURS='-1'"), ("abc", "0", None, "PRETRAIN_STEPS='abc'"),
    ("0", "0", None, "PRETRAIN_STEPS='0'"),
])
def test_make_pretrain_checks_its_limits(steps, hours, out, error):
    code = "from lopt_trainer.meta.portable import pretrain_limits; pretrain_limits()"
    res = subprocess.run([sys.executable, "-c", code, steps, hours], capture_output=True, text=True)
    if error is None:
        assert (res.returncode, res.stdout.strip(), res.stderr) == (0, out, "")
    else:
        assert res.returncode == 2 and res.stderr.startswith(f"Error: {error}") and "Traceback" not in res.stderr


def test_an_export_stopped_before_the_run_history_update_is_finished_on_rerun(base, tmp_path, capsys):
    """make pretrain's export swapped the new state in, then died before advancing the run's history: the rerun
    continues the same lineage (the history is finished) instead of refusing it as another one."""
    import shutil

    with pytest.warns(P.FreshEstimatorsWarning):
        _continue(base, base / "state", tmp_path / "run", steps=5)
    shutil.copytree(base / "state", tmp_path / "state")
    before = (tmp_path / "run" / P.RUN_HISTORY_FILE).read_bytes()
    P.export_state(tmp_path / "run", tmp_path / "state")
    (tmp_path / "run" / P.RUN_HISTORY_FILE).write_bytes(before)  # as if killed before its last write
    result = _continue(base, tmp_path / "state", tmp_path / "run", steps=6, resume=True)
    assert result.state.step == 6
    assert "was stopped before it updated the run's history; finished it" in capsys.readouterr().err
    history = json.loads((tmp_path / "run" / P.RUN_HISTORY_FILE).read_text())
    assert [(h["steps_from"], h["steps_to"]) for h in history["sessions"]] == [(0, 3), (3, 5)]
