"""``python -m research report``: renders every part from synthetic outputs, and says "not run" for missing parts."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from lopt_trainer.common.run_files import write_command, write_json
from lopt_trainer.evaluation.runner import finalize
from lopt_trainer.meta.metrics import append_metrics
from research.cli import cli, report_cmd
from research.report import find_parts, write_report
from tests.test_eval_metrics import SETTINGS, synthetic_records, synthetic_tasks


def _meta_run(d, lr):
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"outer_opt": "adam", "outer_lr": lr, "estimator": "pes",
                                               "filters": {"split": ["meta_train"]}}))
    for step in range(12):
        append_metrics(d, {"kind": "step", "step": step, "meta_loss": 3.0 - 0.1 * step + lr, "grad_norm": 1.0,
                           "inner_steps_per_s": 100.0, "inner_steps": 80, "step_seconds": 0.1})


def _implicit_reg(d):
    from research.implicit_reg import plot_implicit_reg, summarize

    starts = [(4.0, -2.0), (-3.0, 3.0)]
    result = {"settings": {"steps": 2, "adam_lr": 0.1, "starts": starts}}
    for name, shrink in (("adam", 1.0), ("lopt", 0.5)):
        paths = np.asarray([[s, ((s[0] + s[1]) / 2 * shrink, (s[0] + s[1]) / 2 * shrink)] for s in starts])
        runs = summarize(paths, starts)
        result[name] = {"runs": runs, "trajectories": paths.tolist(),
                        "mean_final_norm": float(np.mean([r["final_norm"] for r in runs]))}
    result["mean_projection_norm"] = 1.0
    d.mkdir(parents=True)
    write_json(d / "implicit_reg.json", result)
    plot_implicit_reg(result, d / "implicit_reg.png")
    write_command(d, ["python", "-m", "research", "implicit-reg", "--theta", "t.npz", "--out", str(d)])


def _self_training(d):
    from research.self_training import plot_self_training, run_summary

    runs = []
    for outer, lr in (("lopt", None), ("adam", 3e-4), ("adam", 1e-3)):
        name = "lopt_outer" if outer == "lopt" else f"adam_lr{lr:.0e}"
        _meta_run(d / name, lr or 0.0)
        runs.append(run_summary(d / name, outer, lr))
    summary = {"runs": runs, "theta_path": "t.npz"}
    write_json(d / "self_training.json", summary)
    plot_self_training(d, summary, d / "self_training.png")


def test_report_all_parts(tmp_path):
    tasks = synthetic_tasks()
    (tmp_path / "eval").mkdir()
    finalize(tasks, synthetic_records(tasks), SETTINGS, tmp_path / "eval")
    write_command(tmp_path / "eval", ["taskgen", "lopt", "eval", "--theta", "t.npz", "--out", "eval"])
    _meta_run(tmp_path / "meta", 1e-4)
    _implicit_reg(tmp_path / "implicit_reg")
    _self_training(tmp_path / "self_training")
    parts = find_parts(tmp_path)
    assert [len(parts[k]) for k in ("meta_train", "eval", "implicit_reg", "self_training")] == [1, 1, 1, 1]
    res = CliRunner().invoke(report_cmd, [str(tmp_path)])
    assert res.exit_code == 0, res.output
    page = (tmp_path / "report.html").read_text()
    assert "not run" not in page
    assert page.count("data:image/png;base64,") >= 7  # 3 meta curves, 2 box plots, trajectories, self-training
    for text in ("Meta-training", "Evaluation", "Implicit regularisation", "Training itself", "Global AdamLR",
                 "taskgen lopt eval --theta t.npz --out eval", "python -m research implicit-reg", "adam_lr3e-04"):
        assert text in page, text
    assert not (tmp_path / "report_files").exists()  # the page is self-contained: nothing beside it
    # the summary table and the verdict come first, then the contents, whose links reach every section
    assert page.index('<h2 id="summary">') < page.index('class="verdict"') < page.index("<nav>") < page.index(
        '<h2 id="meta-training">')
    for anchor in ("meta-training", "evaluation", "implicit-regularisation", "training-itself"):
        assert f'<a href="#{anchor}">' in page and f'<h2 id="{anchor}">' in page
    summary = page[page.index('<h2 id="summary">'):page.index("<nav>")]
    for text in ("meta-training", "evaluation", "implicit regularisation", "training itself",
                 "vs Global AdamLR on", "mean final ‖p‖: Adam"):
        assert text in summary, text
    assert "img{width:100%" in page


def test_report_missing_parts_and_an_empty_folder(tmp_path):
    with pytest.raises(ValueError, match="holds no run outputs to report"):
        write_report(tmp_path)
    res = CliRunner().invoke(cli, ["report", str(tmp_path)])
    assert res.exit_code == 1 and res.output.startswith(f"Error: {tmp_path} holds no run outputs to report")
    assert not (tmp_path / "report.html").exists()
    _implicit_reg(tmp_path / "ir")
    page = write_report(tmp_path, tmp_path / "r.html").read_text()
    assert page.count('class="missing"') == 3 and "Implicit regularisation on" in page
    assert page.count("(not run)</li>") == 3
    assert "No evaluation in this folder" in page


def test_a_step_shows_the_command_of_the_run_it_belongs_to(tmp_path):
    write_command(tmp_path, ["python", "-m", "research.run_default", "--out", "x"])
    _implicit_reg(tmp_path / "implicit_reg")
    (tmp_path / "implicit_reg" / "command.json").unlink()  # a step run in process records no command of its own
    page = write_report(tmp_path).read_text()
    section = page[page.index('<h2 id="implicit-regularisation">'):]
    assert "command (a step of the command that wrote" in section
    assert "python -m research.run_default --out x" in section and "not recorded" not in page


def test_make_run_header_shows_the_real_command_folder_and_time(tmp_path, monkeypatch):
    from research.report import _command
    from research.run_default import record_command

    monkeypatch.setenv("MAKELEVEL", "1")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["/x/research/run_default.py", "--out", "runs/default"])
    record_command(tmp_path)
    rec = json.loads((tmp_path / "command.json").read_text())
    assert rec["cwd"] == str(tmp_path) and rec["make_target"] == "make run" and rec["time_utc"].endswith("+00:00")
    header = _command(tmp_path)
    assert "run in ?" not in header and f"run in {tmp_path} at {rec['time_utc']}" in header
    assert "--out runs/default" in header


def test_report_shows_the_self_training_panel_judgement_per_seed(tmp_path):
    from research.report import section_self_training, summary_rows, _Assets

    d = tmp_path / "st"
    d.mkdir()
    iv = {"mean": 0.5, "low": 0.1, "high": 0.9, "tasks": 16}
    runs = [{"seed": seed, "name": name, "outer": outer, "outer_lr": lr, "steps": 60, "first_meta_loss": 1.0,
             "final_meta_loss": 0.9, "min_meta_loss": 0.8, "gain": iv, "budget_step": 40 if seed else None,
             "panel": [{"step": 0, "score": -1.0}, {"step": 60, "score": -0.5}]}
            for seed in (0, 1) for name, outer, lr in (("lopt_outer", "lopt", None), ("adam_lr1e-03", "adam", 1e-3))]
    summary = {"runs": runs, "seed_list": [0, 1], "theta_path": "t.npz",
               "seeds": [{"seed": s, "step": 60, "best_adam": "adam_lr1e-03", "lopt_score": -0.5,
                          "best_adam_score": -0.7, "lopt_vs_best_adam": iv} for s in (0, 1)],
               "pooled": {**iv, "seeds": 2, "seeds_won": 2}}
    write_json(d / "self_training.json", summary)
    html = section_self_training(tmp_path, [d], _Assets(tmp_path / "scratch"))
    assert "measurable from step" in html and "0.5 [0.1, 0.9]" in html and "ahead on 2 of 2 seeds" in html
    rows = summary_rows(tmp_path, {"meta_train": [], "eval": [], "implicit_reg": [], "self_training": [d]})
    assert rows[0][2] == "learned − best Adam outer optimizer, final panel score over 2 seeds: 0.5 [0.1, 0.9] (ahead on 2 seeds)"


def test_implicit_regularisation_is_stated_only_for_runs_that_converged():
    from research.report import implicit_reg_finding

    def result(adam_losses, lopt_losses, adam_norm=1.0, lopt_norm=0.5):
        return {"adam": {"mean_final_norm": adam_norm, "runs": [{"final_loss": v} for v in adam_losses]},
                "lopt": {"mean_final_norm": lopt_norm, "runs": [{"final_loss": v} for v in lopt_losses]}}

    text = implicit_reg_finding(result([1e-6, 1e-7], [10.09, 17.68]))
    assert "the learned optimizer did not converge (final loss up to 17.7 ≥ 0.001)" in text
    assert "nearer the origin" not in text and "stronger" not in text
    assert implicit_reg_finding(result([1e-6], [1e-8])).endswith(
        "both converged, and the learned optimizer settled nearer the origin (the smaller-norm minimum)")
    assert "Adam settled nearer" in implicit_reg_finding(result([1e-6], [1e-8], adam_norm=0.1))


def test_the_verdict_states_a_difference_only_where_the_interval_excludes_zero(tmp_path):
    from research.report import find_parts, verdict

    def comp(low, high):
        return {"a": "meta-trained", "b": "handset", "final": {"difference": {"mean": (low + high) / 2, "low": low,
                                                                              "high": high}}}

    summary = {"tasks": 6, "versus": {"global_adamlr": {"final": {"wins": 1, "ties": 4, "losses": 1}}}}
    for name, c in (("a", comp(-0.2, -0.1)), ("b", comp(-0.1, 0.1))):
        (tmp_path / name).mkdir()
        (tmp_path / name / "yardstick.json").write_text(json.dumps(
            {"set": "held-out", "theta": "meta-trained", "summary": summary, "comparisons": [c]}))
    text = verdict(tmp_path, find_parts(tmp_path))
    assert "θ meta-trained is better than θ handset: mean Δ normalized loss -0.150 [-0.200, -0.100]" in text
    assert "θ meta-trained is not distinguishable from θ handset" in text
    assert "against Global AdamLR on the same tasks: 1 won, 4 tied, 1 lost" in text
