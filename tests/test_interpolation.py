"""θ on the line between two θ (``lopt_trainer.theta.interpolate``, ``taskgen lopt interpolate``) and the sweep
benchmark over it (``research/interpolation.py``): exact endpoints, the mixture's values, clear errors that
write nothing, and a real (tiny) panel sweep."""

import json

import jax
import numpy as np
import pytest
from click.testing import CliRunner

from research import interpolation as B
from lopt_trainer.errors import ThetaFileError
from lopt_trainer.theta.interpolate import interpolate_theta
from lopt_trainer.theta.load import load_theta, theta_bytes, theta_digest
from lopt_trainer.theta.reference_io import save_reference_npz, to_reference
from taskgen_cli import cli
from tests.test_compare_panels import _panel

TINY_PANEL = ["--set", 'families=["quadratic"]', "--set", "per_family=1", "--set", "seeds=1", "--set", "steps=30"]


@pytest.fixture(scope="module")
def two_thetas():
    return load_theta("handset"), load_theta("random")


def test_the_endpoints_are_exact_and_the_midpoint_is_the_mean(two_thetas):
    a, b = two_thetas
    assert theta_bytes(interpolate_theta(a, b, 0.0)) == theta_bytes(a)
    assert theta_bytes(interpolate_theta(a, b, 1.0)) == theta_bytes(b)
    mid = interpolate_theta(a, b, 0.5)
    for x, y, m in zip(*(jax.tree_util.tree_leaves(t) for t in (a, b, mid))):
        np.testing.assert_allclose(np.asarray(m), (np.asarray(x) + np.asarray(y)) / 2, rtol=1e-6, atol=1e-7)
        assert m.dtype == x.dtype
    out = interpolate_theta(a, b, 2.0)  # extrapolation: 2b - a
    for x, y, o in zip(*(jax.tree_util.tree_leaves(t) for t in (a, b, out))):
        np.testing.assert_allclose(np.asarray(o), 2 * np.asarray(y) - np.asarray(x), rtol=1e-5, atol=1e-6)


def test_the_endpoints_keep_negative_zeros_and_minus_zero_is_zero(two_thetas):
    a, b = two_thetas
    a = {**a, "mlp": {**a["mlp"], "b0": -jax.numpy.zeros_like(a["mlp"]["b0"])}}  # -0.0 everywhere in one array
    assert theta_bytes(interpolate_theta(a, b, 0.0)) == theta_bytes(a)
    assert theta_bytes(interpolate_theta(a, b, -0.0)) == theta_bytes(a)


def test_a_non_finite_weight_or_a_theta_of_another_shape_is_refused(two_thetas):
    a, b = two_thetas
    with pytest.raises(ValueError, match="finite"):
        interpolate_theta(a, b, float("nan"))
    other = {**b, "mlp": {**b["mlp"], "w0": b["mlp"]["w0"][:-1]}}
    with pytest.raises(ThetaFileError, match=r"cannot interpolate θ_a and other\.npz: array 'mlp/w0' has shape"):
        interpolate_theta(a, other, 0.5, source_b="other.npz")
    missing = {**b, "mlp": {k: v for k, v in b["mlp"].items() if k != "w0"}}
    with pytest.raises(ThetaFileError, match="no such array in θ_b"):
        interpolate_theta(a, missing, 0.5)
    with pytest.raises(ValueError, match="overflows: array"):
        interpolate_theta(a, b, 1e300)


def test_the_command_writes_the_mixture_atomically_and_refuses_bad_input(tmp_path, two_thetas):
    a, b = two_thetas
    save_reference_npz(b, tmp_path / "b.npz")
    out = tmp_path / "mix.npz"
    runner = CliRunner()
    res = runner.invoke(cli, ["lopt", "interpolate", "--to", str(tmp_path / "b.npz"), "--alpha", "0.25",
                              "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.output)
    assert got["alpha"] == 0.25 and got["from"] == "handset"
    assert got["theta_digest"] == theta_digest(load_theta(out)) == theta_digest(interpolate_theta(a, b, 0.25))
    again = runner.invoke(cli, ["lopt", "interpolate", "--to", str(tmp_path / "b.npz"), "--alpha", "0.25",
                                "--out", str(tmp_path / "again.npz")])
    assert again.exit_code == 0 and (tmp_path / "again.npz").read_bytes() == out.read_bytes()  # deterministic
    before = (tmp_path / "b.npz").read_bytes()
    for args, message in ((["--alpha", "inf"], "finite"), (["--alpha", "0.5", "--out", str(tmp_path / "x.txt")],
                                                           "ends in .npz"),
                          (["--alpha", "0.5", "--to", str(tmp_path / "none.npz")], "neither a file"),
                          (["--alpha", "1e300"], "overflows"),
                          (["--alpha", "0.5", "--out", str(tmp_path / "b.npz")], "one of the θ it is made from")):
        full = ["lopt", "interpolate", "--to", str(tmp_path / "b.npz"), "--out", str(tmp_path / "x.npz"), *args]
        res = runner.invoke(cli, full)
        assert res.exit_code == 2 and message in res.output, (args, res.output)
    arrays = {k: np.asarray(v) for k, v in to_reference(b).items()}
    key = next(k for k in sorted(arrays) if arrays[k].ndim)
    arrays[key] = arrays[key][..., :-1]  # one array of another shape
    np.savez(tmp_path / "odd.npz", **arrays)
    res = runner.invoke(cli, ["lopt", "interpolate", "--to", str(tmp_path / "odd.npz"), "--alpha", "0.5",
                              "--out", str(tmp_path / "x.npz")])
    assert res.exit_code != 0 and "odd.npz" in res.output and "Traceback" not in res.output, res.output
    assert not (tmp_path / "x.npz").exists() and not (tmp_path / "x.txt").exists()
    assert (tmp_path / "b.npz").read_bytes() == before


def test_the_sweep_adds_the_endpoints_and_reads_its_pairs():
    assert B.alphas_of([0.5, 0.25, 0.5]) == [0.0, 0.25, 0.5, 1.0]
    assert B.alpha_tag(0.25) == "a0.25" and B.alpha_tag(1.0) == "a1.0" and B.alpha_tag(-0.0) == "a0.0"
    assert B.alpha_tag(0.1234561) != B.alpha_tag(0.1234562)
    with pytest.raises(ValueError, match="finite"):
        B.alphas_of(["nan"])
    assert B._pair([("0.5", "d")], "--reuse", [0.0, 0.5, 1.0]) == {0.5: "d"}
    for pairs, message in (([("x", "d")], "must be a number"), ([("0.3", "d")], "not in the sweep"),
                           ([("0.5", "d"), ("0.50", "e")], "given twice")):
        with pytest.raises(ValueError, match=message):
            B._pair(pairs, "--reuse", [0.0, 0.5, 1.0])


def _quality(path, finals: dict, targets=(0.5, -0.1, 0.25, 0), digest="d"):
    """A quality result of θ ``digest`` with unseen tasks of these final losses (score = −final) and these §4
    figures."""
    tasks = {t: {"group": "unseen", "family": "mlp", "final": f, "score": -f, "diverged": 0}
             for t, f in finals.items()}
    path.write_text(json.dumps({"lopt_tasks": tasks, "theta_digest": digest,
                                "targets": {k: {"measured": v} for k, v in zip(B.TARGETS, targets)}}))
    return path


def test_rows_pair_each_alpha_with_both_ends_and_with_the_start_on_the_benchmark(tmp_path):
    points = [{"alpha": a, "theta_digest": str(a), "scores": s} for a, s in
              ((0.0, {"t1": 0.0, "t2": 0.0}), (0.5, {"t1": 1.0, "t2": 2.0}), (1.0, {"t1": 2.0, "t2": 1.0}))]
    q0, q5 = _quality(tmp_path / "q0.json", {"u1": 1.0, "u2": 1.0}), _quality(tmp_path / "q5.json",
                                                                              {"u1": 0.5, "u2": 1.0005})
    quality = {a: (json.loads(q.read_text()), B.quality_tasks(q)) for a, q in ((0.0, q0), (0.5, q5))}
    rows = B.rows_of(points, quality)
    assert [r["panel"] for r in rows] == [0.0, 1.5, 1.5]
    assert rows[1]["vs_from"] == pytest.approx(1.5) and rows[1]["vs_to"] == pytest.approx(0.0)
    assert rows[1]["vs_from_low"] <= 1.5 <= rows[1]["vs_from_high"]
    assert rows[1]["ahead_of_from"] == "1/2"  # u2 is within ε
    assert rows[1]["q_vs_from"] == pytest.approx(0.2497, abs=1e-4) and rows[1]["beats_at14"] == 0.25
    assert rows[0]["ahead_of_from"] == "0/2" and rows[2]["q_unseen"] is None and list(rows[2]) == list(rows[0])
    q_nan = _quality(tmp_path / "qn.json", {"u1": 1.0, "u2": 2.0})
    tasks = B.quality_tasks(q_nan)
    tasks["u2"]["score"] = float("nan")  # no Global AdamLR row: left out of the mean
    assert B.quality_figures(json.loads(q_nan.read_text()), tasks, None)["q_unseen"] == -1.0
    tasks["u1"]["score"] = float("nan")
    with pytest.raises(ValueError, match="no unseen task with a score"):
        B.quality_figures(json.loads(q_nan.read_text()), tasks, None)


def test_a_reused_folder_must_hold_the_same_theta(tmp_path):
    (tmp_path / "eval.json").write_text(json.dumps({"theta_digest": "abc"}))
    B.check_reuse(tmp_path, "abc", 0.5)
    with pytest.raises(ValueError, match="evaluates θ abc, not θ_α def"):
        B.check_reuse(tmp_path, "def", 0.5)
    with pytest.raises(ValueError, match="no readable evaluation record"):
        B.check_reuse(tmp_path / "none", "abc", 0.5)
    from lopt_trainer.evaluation.panel import PanelSettings, panel_tasks

    settings = PanelSettings(families=("quadratic",), per_family=1, seeds=1, steps=30)
    tasks = panel_tasks(settings)
    good = {"theta_digest": "abc", "settings": settings.eval_settings().to_dict(),
            "tasks": [{"task_id": t.task_id, "group": t.group} for t in tasks]}
    (tmp_path / "eval.json").write_text(json.dumps(good))
    B.check_reuse(tmp_path, "abc", 0.5, settings, tasks)
    (tmp_path / "eval.json").write_text(json.dumps({**good, "settings": {**good["settings"], "steps": 1000}}))
    with pytest.raises(ValueError, match="other settings"):
        B.check_reuse(tmp_path, "abc", 0.5, settings, tasks)
    (tmp_path / "eval.json").write_text(json.dumps({**good, "tasks": [{"task_id": "x", "group": "unseen"}]}))
    with pytest.raises(ValueError, match="other tasks"):
        B.check_reuse(tmp_path, "abc", 0.5, settings, tasks)


def test_main_refuses_bad_input_before_evaluating_or_writing(tmp_path, monkeypatch, capsys):
    import research.common as common

    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr(B, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr(B, "sweep", lambda *a, **k: pytest.fail("evaluated despite bad input"))
    handset = theta_digest(load_theta("handset"))
    q1 = _quality(tmp_path / "q1.json", {"u1": 1.0}, digest=handset)
    q2 = _quality(tmp_path / "q2.json", {"u9": 1.0}, digest=theta_digest(load_theta("random")))
    (tmp_path / "afile").write_text("")
    (tmp_path / "notargets.json").write_text(json.dumps({"lopt_tasks": json.loads(q1.read_text())["lopt_tasks"],
                                                         "theta_digest": handset}))
    base = ["--to", "random", "--out", str(tmp_path / "out"), "--name", "bad"]
    for extra, message in ((["--alpha", "nan"], "finite"), (["--reuse", "0.3", "d"], "not in the sweep"),
                           (["--quality", "0", str(q1), "--quality", "1", str(q2)], "not the task draw"),
                           (["--quality", "0", str(tmp_path / "notargets.json")], "no §4 targets"),
                           (["--quality", "1", str(q1)], f"a result of θ {handset}, not of θ_α"),
                           (["--out", str(tmp_path / "afile")], "is a file"),
                           (["--quality", "0", str(tmp_path / "none.json")], "cannot read"),
                           (["--from", str(tmp_path / "none.npz")], "--from"),
                           (["--set", "per_family=0"], "per_family")):
        with pytest.raises(SystemExit) as e:
            B.main(base + extra)
        assert e.value.code == 2 and message in capsys.readouterr().err, message
    with pytest.raises(SystemExit) as e:
        B.main(base[:-1] + ["../x"])
    assert e.value.code == 2 and "--name" in capsys.readouterr().err
    assert not (tmp_path / "bad.json").exists() and not (tmp_path / "out").exists()


def test_a_real_sweep_scores_every_theta_and_reuses_a_matching_folder(tmp_path, monkeypatch):
    import research.common as common

    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr(B, "RESULTS_DIR", tmp_path)
    out = tmp_path / "sweep"
    B.main(["--to", "random", "--alpha", "0.5", "--out", str(out), "--no-progress", *TINY_PANEL])
    saved = json.loads((tmp_path / "interpolation.json").read_text())
    assert [r["alpha"] for r in saved["rows"]] == [0.0, 0.5, 1.0]
    assert theta_bytes(load_theta(out / "theta_a0.0.npz")) == theta_bytes(load_theta("handset"))
    assert theta_bytes(load_theta(out / "theta_a1.0.npz")) == theta_bytes(load_theta("random"))
    assert saved["rows"][0]["vs_from"] == 0.0 and saved["rows"][2]["vs_to"] == 0.0
    assert all(np.isfinite(r["panel"]) for r in saved["rows"]) and (tmp_path / "interpolation.png").exists()
    # the same sweep again, α = 1 from a copy of its folder under another name: same figures, nothing re-run
    import shutil
    shutil.copytree(out / "panel_a1.0", tmp_path / "kept")
    shutil.rmtree(out / "panel_a1.0")
    B.main(["--to", "random", "--alpha", "0.5", "--out", str(out), "--no-progress", "--reuse", "1",
            str(tmp_path / "kept"), "--name", "again", *TINY_PANEL])
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["rows"] == saved["rows"] and not (out / "panel_a1.0").exists()


def test_the_command_never_replaces_the_shipped_theta_or_an_existing_file(tmp_path, two_thetas):
    from lopt_trainer.theta.shipped import data_path

    _, b = two_thetas
    save_reference_npz(b, tmp_path / "b.npz")
    shipped = data_path("pretrained_theta.npz")
    before = shipped.read_bytes()
    runner = CliRunner()
    res = runner.invoke(cli, ["lopt", "interpolate", "--to", str(tmp_path / "b.npz"), "--alpha", "0.5",
                              "--out", str(shipped)])
    assert res.exit_code == 2 and "only the ship gate" in res.output
    assert shipped.read_bytes() == before
    run_theta = tmp_path / "run" / "theta.npz"
    run_theta.parent.mkdir()
    run_theta.write_bytes(b"a run's own file")
    res = runner.invoke(cli, ["lopt", "interpolate", "--to", str(tmp_path / "b.npz"), "--alpha", "0.5",
                              "--out", str(run_theta)])
    assert res.exit_code == 2 and "exists; pass --overwrite" in res.output
    assert run_theta.read_bytes() == b"a run's own file"
    res = runner.invoke(cli, ["lopt", "interpolate", "--to", str(tmp_path / "b.npz"), "--alpha", "0.5",
                              "--out", str(run_theta), "--overwrite"])
    assert res.exit_code == 0 and run_theta.read_bytes() != b"a run's own file"
    # a damaged θ is named as such, not blamed on --alpha
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    res = runner.invoke(cli, ["lopt", "interpolate", "--to", str(tmp_path / "bad.npz"), "--alpha", "0.5",
                              "--out", str(tmp_path / "y.npz")])
    assert res.exit_code != 0 and "bad.npz" in res.output and "--alpha" not in res.output, res.output
