"""``make run``'s meta-training and comparison steps, at tiny settings: the report judges the θ the job meta-trained,
against its start and the shipped θ, on held-out tasks of the job's suite."""

import json

from lopt_trainer.meta.config import MetaTrainConfig
from research import run_default
from research.report import write_report
from taskgen import default_manifest_path, load_manifest, load_specs
from taskgen.specfile import write_specs


def test_the_default_job_judges_the_theta_it_meta_trained(tmp_path, monkeypatch, capsys):
    table = load_manifest(default_manifest_path())
    params = dict(zip(table["task_id"].to_pylist(), table["params"].to_pylist()))
    small = sorted((s for s in load_specs() if s.family == "mlp"), key=lambda s: (params[s.task_id], s.task_id))
    train = [s for s in small if s.split == "meta_train"][:4]
    held = [s for s in small if s.split == "meta_test"][:2]
    write_specs(train + held, tmp_path / "suite.jsonl")

    def tiny(out, steps):
        return MetaTrainConfig(suite=str(out / "suite.jsonl"), filters={"split": ["meta_train"]}, steps=steps,
                               truncation=5, tasks_per_group=2, num_groups=1, horizon_min=10, horizon_max=20,
                               eval_every=0, checkpoint_every=1, panel_every=steps, compilation_cache="",
                               prefetch_steps=0, panel={"on": "source", "max_tasks": 2})

    monkeypatch.setattr(run_default, "meta_config", tiny)
    run_default.step_meta_train(tmp_path, 2)
    printed = capsys.readouterr().out
    assert "stopped after outer step 2: reached its steps" in printed and "verdict: " in printed
    run_default.step_compare(tmp_path, 2)
    printed = capsys.readouterr().out
    assert "meta-trained − handset (start): mean Δn " in printed and "meta-trained − shipped: mean Δn " in printed
    y = json.loads((tmp_path / "compare" / "yardstick.json").read_text())
    assert y["theta"] == "meta-trained" and [a["theta"] for a in y["against"]] == ["handset (start)", "shipped"]
    assert {r["task_id"] for r in y["per_task"]} == {s.task_id for s in held}
    page = write_report(tmp_path).read_text()
    assert "θ meta-trained is" in page and "θ handset (start)" in page and "θ shipped" in page
    assert "θ None" not in page  # the run's own panel evaluations are not yardstick parts of the report
    # a folder left by a release with other settings is the job's own: it starts again, and says so
    monkeypatch.setattr(run_default, "meta_config", lambda out, steps: tiny(out, steps).__class__(
        **{**tiny(out, steps).to_dict(), "truncation": 4}))
    run_default.step_meta_train(tmp_path, 2)
    printed = capsys.readouterr().out
    assert "holds a run with other settings" in printed and "starting it again" in printed
    assert json.loads((tmp_path / "meta_train" / "config.json").read_text())["truncation"] == 4
