"""A run on the user's own tasks is judged on the user's own held-out tasks: the preset rule, the source panel's
task choice, the yardstick on any task list, and the end summary that says whether θ improved."""

import json
import re
from unittest import mock

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from lopt_trainer.evaluation import task_sets as ts
from lopt_trainer.evaluation import yardstick
from lopt_trainer.meta.config import MetaTrainConfig, resolve_config
from lopt_trainer.meta.run_panel import end_summary, verdict
from lopt_trainer.theta.load import load_theta
from taskgen import TaskSpec


# ------------------------------------------------------------------ the preset rule


def test_recipe_on_own_file_trains_on_all_its_families_and_judges_on_its_held_out_tasks():
    cfg = MetaTrainConfig.preset("recipe", suite="mine.jsonl")
    assert cfg.filters == {"split": ["meta_train"]}  # the recipe's 12 built-in families step aside
    assert (cfg.max_params, cfg.max_flops, cfg.family_limits) == (None, None, {})
    assert cfg.panel == {"on": "source"} and cfg.panel_every == 150
    recipe = MetaTrainConfig.preset("recipe")
    assert cfg.num_groups == recipe.num_groups and cfg.meta_loss == recipe.meta_loss  # the rest is the recipe's


def test_a_filter_on_the_default_suite_keeps_the_recipe_limits_but_judges_on_its_own_tasks():
    cfg = MetaTrainConfig.preset("recipe", filters={"family": ["mlp"], "split": ["meta_train"]})
    assert cfg.max_params == 20000 and cfg.family_limits  # the built-in distribution's limits stay
    assert cfg.panel == {"on": "source"}


def test_what_the_user_gives_wins_over_the_rule():
    cfg = MetaTrainConfig.preset("recipe", suite="mine.jsonl", max_params=5000, panel={"on": "valid"})
    assert cfg.max_params == 5000 and cfg.panel == {"on": "valid"}
    assert MetaTrainConfig.preset("recipe").panel == {"on": "valid"}  # the recipe's own distribution
    assert MetaTrainConfig.preset("quick", suite="mine.jsonl") == MetaTrainConfig(suite="mine.jsonl")


def test_the_command_line_and_python_resolve_the_same_config(tmp_path):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"sigma": 0.02}))
    cli, given = resolve_config(path, ["steps=7"], {"suite": "mine.jsonl"}, preset="recipe")
    py = MetaTrainConfig.preset("recipe", suite="mine.jsonl", sigma=0.02, steps=7)
    assert cli == py and {"sigma", "steps", "suite"} <= given


def test_preset_refuses_unknown_names_with_the_choices():
    with pytest.raises(ValueError, match="unknown preset 'fast'"):
        MetaTrainConfig.preset("fast")
    with pytest.raises(ValueError, match="unknown meta-train settings"):
        MetaTrainConfig.preset("recipe", sgima=0.1)


def test_config_file_starts_from_the_recipe_on_the_command_line(tmp_path, monkeypatch):
    """``--config`` no longer switches the base to 'quick' behind the user's back."""
    from lopt_trainer.meta import trainer
    from taskgen_cli import cli

    seen = {}

    def fake_meta_train(config, out, **kw):
        seen["config"] = config
        raise SystemExit(0)

    monkeypatch.setattr(trainer, "meta_train", fake_meta_train)
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"sigma": 0.02}))
    res = CliRunner().invoke(cli, ["lopt", "meta-train", "--config", str(path), "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert "preset recipe + " in res.output
    assert seen["config"] == MetaTrainConfig.preset("recipe", sigma=0.02)
    res = CliRunner().invoke(cli, ["lopt", "meta-train", "--config", str(path), "--preset", "quick", "--out",
                                   str(tmp_path / "r")])
    assert seen["config"] == MetaTrainConfig(sigma=0.02)


# ------------------------------------------------------------------ the source panel's tasks


def _spec(family: str, seed: int, split: str = "meta_test") -> TaskSpec:
    return TaskSpec.create(family, 1, seed, {"n": seed}, split=split)


@settings(max_examples=30, deadline=None)
@given(counts=st.lists(st.integers(0, 6), min_size=1, max_size=4), max_tasks=st.integers(1, 14),
       seed=st.integers(0, 3))
def test_source_tasks_spread_over_families_deterministically(counts, max_tasks, seed):
    specs = [_spec(f"fam{i}", j) for i, n in enumerate(counts) for j in range(n)]
    with mock.patch.object(ts, "default_registry", _FakeRegistry):
        chosen = ts.source_tasks(specs, max_tasks, seed)
        again = ts.source_tasks(list(reversed(specs)), max_tasks, seed)
    assert len(chosen) == min(max_tasks, len(specs))
    assert len({t.task_id for t in chosen}) == len(chosen)
    per = {f"fam{i}": sum(t.spec.family == f"fam{i}" for t in chosen) for i in range(len(counts))}
    # evenly: a family short of another by more than one has no spec left
    for f, n in per.items():
        others = [m for g, m in per.items() if g != f]
        if others and max(others) > n + 1:
            assert n == counts[int(f[3:])]
    assert [t.task_id for t in again] == [t.task_id for t in chosen]  # the input order does not matter
    assert ts.source_label(chosen) == ts.source_label(again)


class _FakeRegistry:
    def get(self, family):
        return _FakeFamily()


class _FakeFamily:
    def variant(self, config):
        return "v"


# ------------------------------------------------------------------ the yardstick on any task list


@pytest.fixture(scope="module")
def twod_tasks():
    registry_tasks = [t for t in ts.task_set_tasks("test") if t.spec.family == "twod"][:2]
    return registry_tasks


def test_yardstick_on_a_task_list_computes_baselines_once_and_ranks_theta(twod_tasks, tmp_path):
    hs, hs_scores, t1 = yardstick.evaluate_tasks(load_theta("handset"), twod_tasks, cache=tmp_path, progress=False)
    label = ts.source_label(twod_tasks)
    assert hs["set"] == label and hs["tasks"] == 2 and hs["global_adamlr_chosen_on"] == "these tasks"
    assert sorted(p.name for p in (tmp_path / "baselines" / label).rglob("*.json"))  # the grid is cached
    again, _, t2 = yardstick.evaluate_tasks(load_theta("handset"), twod_tasks, cache=tmp_path, progress=False)
    assert t1["wall_s"] > 0 and t2["wall_s"] == 0.0  # θ's runs read back
    assert json.dumps(again, sort_keys=True) == json.dumps(hs, sort_keys=True)
    rnd, _, _ = yardstick.evaluate_tasks(load_theta("random"), twod_tasks, cache=tmp_path, progress=False)
    assert hs["rows"]["theta"]["final"]["mean"]["value"] < rnd["rows"]["theta"]["final"]["mean"]["value"]
    # per-task AdamLR is the best grid point by inner-valid loss: never far above 0
    assert np.all(hs_scores.final["per_task_adamlr@14"].mean(axis=1) < 0.5)


def test_yardstick_on_no_tasks_is_refused():
    with pytest.raises(ValueError, match="no tasks"):
        yardstick.evaluate_tasks(load_theta("handset"), [], progress=False)


# ------------------------------------------------------------------ the end summary


def _record(step, scores, **extra):
    return {"step": step, "score": float(np.mean(list(scores.values()))), "task_scores": scores, **extra}


def test_end_summary_says_improved_only_when_the_interval_clears_zero():
    fam = {f"t{i}": f"f{i // 4}" for i in range(8)}
    start = _record(0, {t: -0.5 for t in fam})
    better = _record(30, {t: -0.5 + 0.1 + 0.01 * i for i, t in enumerate(fam)})
    out = end_summary(start, better, None, fam)
    assert out["verdict"].startswith("θ improved") and out["last_vs_start"]["low"] > 0
    assert "8 held-out tasks, after 30 outer steps" in out["verdict"]
    worse = _record(30, {t: -0.6 - 0.01 * i for i, t in enumerate(fam)})
    assert end_summary(start, worse, None, fam)["verdict"].startswith("θ got worse")
    noisy = _record(30, {t: -0.5 + (0.2, -0.2, 0.05, -0.05)[i % 4] for i, t in enumerate(fam)})
    out = end_summary(start, noisy, dict(noisy), fam)
    assert out["verdict"].startswith("no detectable change") and out["best_step"] == 30
    assert out["last_vs_start"]["low"] < 0 < out["last_vs_start"]["high"]
    assert end_summary(None, noisy, None, fam) is None


def test_verdict_without_steps_or_shared_tasks():
    d = {"mean": 0.0, "low": 0.0, "high": 0.0, "tasks": 0}
    assert verdict(d, 5).startswith("no verdict: the start and last θ share no panel task")
    assert verdict({**d, "tasks": 3}, 0) == "no verdict: the run made no outer step"


# ------------------------------------------------------------------ a run on its own tasks, end to end


def _own_suite(tmp_path, held: bool = True):
    from taskgen.specfile import specs_to_jsonl
    from tests.meta_helpers import small_quadratic_specs

    twod = [t.spec for t in ts.task_set_tasks("test") if t.spec.family == "twod"][:2]
    specs = small_quadratic_specs(4) + ([s.with_split("meta_test") for s in twod] if held else [])
    path = tmp_path / "own.jsonl"
    path.write_bytes(specs_to_jsonl(specs))
    return path


def _tiny_recipe(suite, **extra):
    settings = dict(steps=2, num_groups=1, tasks_per_group=2, truncation=5, horizon_min=10, horizon_max=20,
                    outer_warmup=0, resample_every=10, compilation_cache="", prefetch_steps=0)
    return MetaTrainConfig.preset("recipe", suite=str(suite), **{**settings, **extra})


def test_a_run_on_its_own_tasks_is_judged_on_them_from_step_0(tmp_path, monkeypatch, capsys):
    from lopt_trainer.meta.metrics import read_metrics
    from lopt_trainer.meta.trainer import meta_train

    monkeypatch.setenv(yardstick.CACHE_ENV, str(tmp_path / "cache"))
    cfg = _tiny_recipe(_own_suite(tmp_path), eval_every=1, eval_tasks=1, eval_steps=5)
    result = meta_train(cfg, tmp_path / "run", progress=True)
    err = capsys.readouterr().err
    assert "2 held-out tasks of" in err and "scored with the first panel evaluation" in err
    assert "the meta-loss of the first steps falls as the inner problems train" in err
    assert result.stop_reason == "steps" and not result.interrupted
    records = read_metrics(tmp_path / "run")
    evals = [r["step"] for r in records if r["kind"] == "eval"]
    assert evals[0] == -1  # the quick held-out check includes the start θ
    panels = [r for r in records if r["kind"] == "panel"]
    assert [r["step"] for r in panels] == [0, 2]  # the start θ and the last θ, on the source's twod tasks
    assert all(t.startswith("twod-") for t in panels[0]["task_scores"])
    assert not (tmp_path / "run" / "start_theta.npz").exists()  # scored, then removed
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary == result.summary and summary["stop_reason"] == "steps"
    assert summary["panel"]["start_step"] == 0 and summary["panel"]["last_step"] == 2
    assert summary["panel"]["verdict"].split(":")[0] in ("θ improved", "θ got worse", "no detectable change in θ")
    assert summary["panel"]["last_vs_global_adamlr"]["tasks"] == 2
    assert records[-1]["kind"] == "end"


def test_a_source_without_held_out_tasks_says_so_and_runs_without_a_panel(tmp_path, monkeypatch, capsys):
    from lopt_trainer.meta.trainer import meta_train

    monkeypatch.setenv(yardstick.CACHE_ENV, str(tmp_path / "cache"))
    result = meta_train(_tiny_recipe(_own_suite(tmp_path, held=False)), tmp_path / "run", progress=False)
    assert "no quality panel: " in capsys.readouterr().err
    assert result.summary is None
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["stop_reason"] == "steps"
    assert not (tmp_path / "cache").exists()  # no baseline was computed for tasks nobody asked for


def test_the_command_line_ends_with_why_it_stopped_and_the_verdict(tmp_path, monkeypatch):
    from taskgen_cli import cli

    monkeypatch.setenv(yardstick.CACHE_ENV, str(tmp_path / "cache"))
    suite = _own_suite(tmp_path)
    args = ["lopt", "meta-train", "--suite", str(suite), "--steps", "2", "--no-progress", "--out", str(tmp_path / "r")]
    for item in ("num_groups=1", "tasks_per_group=2", "truncation=5", "horizon_min=10", "horizon_max=20",
                 "outer_warmup=0", "resample_every=10", 'compilation_cache=""', "prefetch_steps=0"):
        args += ["--set", item]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert "  panel              {\"on\": \"source\"}" in lines  # the rule shows in the settings printed first
    assert "stopped after outer step 2: reached its steps" in lines
    assert any(re.fullmatch(r"time: outer steps \d+ s, of which compiling \d+ s \(\d+%\); panel \d+ s", line)
               for line in lines)
    assert any(line.startswith("panel (2 held-out tasks of ") for line in lines)
    assert any(line.startswith("  start θ (step 0) ") and "last − start" in line for line in lines)
    assert any(line.startswith("  last θ − Global AdamLR ") and "(Global AdamLR " in line for line in lines)
    assert any(line.startswith("  legend: score = −mean over tasks of n = (L − L*) / (L₀ − L*)") for line in lines)
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["panel_score"] == "normalized_loss"
    # Global AdamLR's rate is one point of the grid whose best run sets L*, so its mean n is at least 0
    assert -10.0 < summary["panel"]["global_adamlr_score"] <= 1e-9
    verdict_line = next(line for line in lines if line.startswith("verdict: "))
    out = json.loads(lines[-1])
    assert out["stop_reason"] == "steps" and out["step"] == 2 and out["verdict"] == verdict_line[len("verdict: "):]


# ------------------------------------------------------------------ taskgen lopt compare


def _compare(tmp_path, monkeypatch, *args):
    from taskgen_cli import cli

    monkeypatch.setenv(yardstick.CACHE_ENV, str(tmp_path / "cache"))
    return CliRunner().invoke(cli, ["lopt", "compare", *map(str, args), "--no-progress"])


def test_compare_on_a_spec_file_in_text_and_json(tmp_path, monkeypatch):
    suite = _own_suite(tmp_path)
    res = _compare(tmp_path, monkeypatch, "handset", "random", "--tasks", suite, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["theta"] == "handset" and [a["theta"] for a in out["against"]] == ["random"]
    assert out["set"].endswith("(2 held-out tasks of " + str(suite) + ")")
    assert {r["task_id"].split("-")[0] for r in out["per_task"]} == {"twod"}
    comp = out["comparisons"][0]
    assert (comp["a"], comp["b"]) == ("handset", "random")
    assert comp["final"]["difference"]["mean"] < 0  # the hand-set θ trains; the random one does not
    text = _compare(tmp_path, monkeypatch, "handset", "random", "--tasks", suite, "--out", tmp_path / "cmp")
    assert text.exit_code == 0, text.output
    lines = text.output.splitlines()
    assert any(line.startswith("handset − random: mean Δn -") and "handset is better than random" in line
               for line in lines)
    assert "legend:" in lines and "Global AdamLR: one learning rate" in text.output
    assert {p.name for p in (tmp_path / "cmp").iterdir()} >= {"yardstick.json", "per_task.csv", "strip.png"}
    assert json.loads((tmp_path / "cmp" / "yardstick.json").read_text())["comparisons"][0]["final"] == comp["final"]


def test_compare_refuses_bad_input_in_one_line(tmp_path, monkeypatch):
    res = _compare(tmp_path, monkeypatch, "handset")
    assert res.exit_code == 2 and res.output.splitlines()[-1] == ("Error: give at least two θ to compare (e.g. "
                                                                  "handset RUN)")
    res = _compare(tmp_path, monkeypatch, "handset", "random", "--tasks", tmp_path / "none.jsonl")
    assert res.exit_code == 2 and "is neither 'valid', 'test' nor a spec file or manifest" in res.output
    no_held = _own_suite(tmp_path, held=False)
    res = _compare(tmp_path, monkeypatch, "handset", "random", "--tasks", no_held)
    assert res.exit_code == 2 and "no meta_test spec (4 specs in all)" in res.output
    res = _compare(tmp_path, monkeypatch, "handset", "random", "--filter", "family=mlp")
    assert res.exit_code == 2 and "--filter applies to a spec file of your own" in res.output
    assert not (tmp_path / "cache").exists()  # nothing computed for refused input


def _event_scalars(folder):
    """``{tag: [(step, value)]}`` from the TensorBoard event files under ``folder`` (read without TensorFlow)."""
    import struct

    from tensorboardX.proto import event_pb2

    out = {}
    for path in sorted(folder.rglob("events.out.tfevents.*")):
        data = path.read_bytes()
        i = 0
        while i < len(data):
            (n,) = struct.unpack("<Q", data[i:i + 8])
            event = event_pb2.Event.FromString(data[i + 12:i + 12 + n])
            i += 12 + n + 4
            for v in event.summary.value:
                out.setdefault(v.tag, []).append((event.step, v.simple_value))
    return out


def test_a_run_logs_its_scalars_for_tensorboard_and_csv(tmp_path, monkeypatch):
    import csv

    from lopt_trainer.meta.trainer import meta_train

    monkeypatch.setenv(yardstick.CACHE_ENV, str(tmp_path / "cache"))
    meta_train(_tiny_recipe(_own_suite(tmp_path), steps=3, eval_every=2, eval_tasks=1, eval_steps=5),
               tmp_path / "run", progress=False)
    rows = list(csv.DictReader(open(tmp_path / "run" / "scalars.csv")))
    meta = [(int(r["step"]), float(r["value"])) for r in rows if (r["kind"], r["name"]) == ("train", "meta_loss")]
    records = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    assert meta == [(r["step"], pytest.approx(r["meta_loss"])) for r in records if r["kind"] == "step"]
    assert [s for s, _ in meta] == [0, 1, 2]
    panel = {int(r["step"]): float(r["value"]) for r in rows if (r["kind"], r["name"]) == ("panel", "score")}
    assert sorted(panel) == [0, 3]
    assert {int(r["step"]) for r in rows if (r["kind"], r["name"]) == ("eval", "test_loss")} == {-1, 1}
    events = _event_scalars(tmp_path / "run" / "tensorboard")
    assert [s for s, _ in events["train/meta_loss"]] == [s for s, _ in meta]
    np.testing.assert_allclose([v for _, v in events["train/meta_loss"]], [v for _, v in meta], rtol=1e-6)
    assert sorted(s for s, _ in events["panel/score"]) == [0, 3]
    # a resumed run continues the CSV without repeating steps
    meta_train(_tiny_recipe(_own_suite(tmp_path), steps=4, eval_every=2, eval_tasks=1, eval_steps=5),
               tmp_path / "run", progress=False, resume=True)
    rows = list(csv.DictReader(open(tmp_path / "run" / "scalars.csv")))
    steps = [int(r["step"]) for r in rows if (r["kind"], r["name"]) == ("train", "meta_loss")]
    assert steps == [0, 1, 2, 3]


def test_a_second_signal_stops_at_once(capsys):
    import signal

    from lopt_trainer.meta.trainer import _StopFlag

    flag = _StopFlag()
    flag(signal.SIGINT, None)
    assert flag.signum == signal.SIGINT and "a second Ctrl-C stops at once" in capsys.readouterr().err
    with pytest.raises(KeyboardInterrupt):
        flag(signal.SIGTERM, None)


class _FlakyPool:
    """A gradient pool run in this process whose workers all die in the first ``failures`` calls."""

    def __init__(self, config, specs, failures: int):
        from lopt_trainer.meta.ray_pool import GradientWorker

        import json as _json

        self.worker = GradientWorker(_json.dumps(config.split().worker.to_dict()), [s.to_json() for s in specs])
        self.failures, self.calls = failures, 0

    def compute(self, theta, items):
        from lopt_trainer.meta.ray_pool import _work_dict

        self.calls += 1
        if self.calls <= self.failures:
            return [None] * len(items)
        return [self.worker.compute(theta, _work_dict(w), s) for w, s in items]

    def close(self):
        pass


def test_a_step_whose_workers_all_die_runs_again_on_fresh_workers(tmp_path):
    from lopt_trainer.errors import WorkersFailedError
    from lopt_trainer.meta.outer import WORKER_RETRIES
    from lopt_trainer.meta.trainer import meta_train
    from tests.meta_helpers import small_quadratic_specs

    specs = small_quadratic_specs(4)
    cfg = MetaTrainConfig(steps=2, num_groups=1, tasks_per_group=2, truncation=5, horizon_min=10, horizon_max=20,
                          eval_every=0, compilation_cache="", prefetch_steps=0)
    pool = _FlakyPool(cfg, specs, failures=1)
    result = meta_train(cfg, tmp_path / "ok", specs=specs, backend=pool, progress=False)
    assert result.state.step == 2 and pool.calls == 3  # the first step's work ran twice
    dead = _FlakyPool(cfg, specs, failures=99)
    with pytest.raises(WorkersFailedError, match="every gradient worker failed, and again on fresh workers 2 "):
        meta_train(cfg, tmp_path / "dead", specs=specs, backend=dead, progress=False)
    assert dead.calls == 1 + WORKER_RETRIES


def test_a_signal_during_a_panel_drops_it_and_the_run_checkpoints_at_once(tmp_path, monkeypatch, capsys):
    """A scheduler's SIGTERM must not wait minutes for a panel evaluation: it ends the panel at once (its finished
    tasks stay cached), the run checkpoints the steps it made and stops; --resume continues it."""
    import os
    import signal
    import time

    from lopt_trainer.common import checkpoint as ckpt
    from lopt_trainer.meta import run_panel
    from lopt_trainer.meta.trainer import meta_train

    monkeypatch.setenv(yardstick.CACHE_ENV, str(tmp_path / "cache"))
    original = run_panel.Panel._evaluate
    waited = []

    def slow_scoring(self, theta, out_dir, progress):
        if out_dir.name == "step_000001":
            t0 = time.monotonic()
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(60)  # a panel of minutes: the signal must end it now
            finally:
                waited.append(time.monotonic() - t0)
            pytest.fail("the panel ran on after the signal")
        return original(self, theta, out_dir, progress)

    monkeypatch.setattr(run_panel.Panel, "_evaluate", slow_scoring)
    cfg = _tiny_recipe(_own_suite(tmp_path), steps=3, panel_every=1, checkpoint_every=0)
    result = meta_train(cfg, tmp_path / "run", progress=False)
    assert result.stop_reason == "SIGTERM" and waited and waited[0] < 10
    assert "the panel evaluation is dropped, then a checkpoint" in capsys.readouterr().err
    assert ckpt.load_checkpoint(tmp_path / "run")["step"] == 1
    from lopt_trainer.meta.metrics import read_metrics

    assert [r["step"] for r in read_metrics(tmp_path / "run") if r.get("kind") == "panel"] == [0]  # no half record
    monkeypatch.setattr(run_panel.Panel, "_evaluate", original)
    resumed = meta_train(_tiny_recipe(_own_suite(tmp_path), steps=3, panel_every=1, checkpoint_every=0),
                         tmp_path / "run", progress=False, resume=True)
    assert resumed.stop_reason == "steps"
