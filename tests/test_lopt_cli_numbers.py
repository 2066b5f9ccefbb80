"""Numbers on the lopt command line and in meta-train settings (issue 17, E and the smaller items): every numeric
option has its real range, settings have their types and ranges, Ctrl-C exits 130, a short pool is reported."""

import pytest
from click.testing import CliRunner

from lopt_trainer.meta.config import MetaTrainConfig, parse_sets, resolve_config
from research.cli import cli as research_cli
from taskgen_cli import cli

RANGE = "is not in the range"
NOT_FINITE = "is not a finite number (NaN and infinities are refused; a literal beyond ±1.8e308 overflows to infinity)."
SEED_RANGE = "0<=x<=4294967295."


def _invoke(args):
    """Run ``taskgen ARGS``, or ``python -m research ARGS[1:]`` when ``ARGS[0]`` is ``research`` (the lab's
    commands)."""
    if args[0] == "research":
        return CliRunner().invoke(research_cli, args[1:])
    return CliRunner().invoke(cli, args)


@pytest.mark.parametrize("args, message", [
    (["train", "X", "--lr", "0"], f"'--lr': 0.0 {RANGE} x>0."),
    (["train", "X", "--steps", "-1"], f"'--steps': -1 {RANGE} x>=0."),
    (["train", "X", "--seed", str(2**32)], f"'--seed': 4294967296 {RANGE} {SEED_RANGE}"),
    (["train", "X", "--trial-seed", "-1"], f"'--trial-seed': -1 {RANGE} {SEED_RANGE}"),
    (["train", "X", "--trials", "0"], f"'--trials': 0 {RANGE} x>=1."),
    (["train", "X", "--eval-every", "0"], f"'--eval-every': 0 {RANGE} x>=1."),
    (["train", "X", "--eval-batches", "0"], f"'--eval-batches': 0 {RANGE} x>=1."),
    (["train", "X", "--valid-every", "0"], f"'--valid-every': 0 {RANGE} x>=1."),
    (["lopt", "meta-train", "--steps", "-3"], f"'--steps': -3 {RANGE} x>=1."),
    (["lopt", "meta-train", "--max-params", "-1"], f"'--max-params': -1 {RANGE} x>=0."),
    (["lopt", "meta-train", "--max-flops", "1.5"], "'--max-flops': '1.5' is not an integer."),
    (["lopt", "meta-train", "--workers", "-1"], f"'--workers': -1 {RANGE} x>=0."),
    (["lopt", "meta-train", "--seed", "-1"], f"'--seed': -1 {RANGE} {SEED_RANGE}"),
    (["lopt", "eval", "--tasks", "0"], f"'--tasks': 0 {RANGE} x>=1."),
    (["lopt", "eval", "--seeds", "0"], f"'--seeds': 0 {RANGE} x>=1."),
    (["lopt", "eval", "--steps", "0"], f"'--steps': 0 {RANGE} x>=1."),
    (["lopt", "eval", "--adamlr-trials", "0"], f"'--adamlr-trials': 0 {RANGE} x>=1."),
    (["lopt", "eval", "--eval-every", "0"], f"'--eval-every': 0 {RANGE} x>=1."),
    (["lopt", "eval", "--max-params", "-2"], f"'--max-params': -2 {RANGE} x>=-1."),
    (["lopt", "eval", "--max-flops", "-2"], f"'--max-flops': -2 {RANGE} x>=-1."),
    (["lopt", "eval", "--task-seed", str(2**32)], f"'--task-seed': 4294967296 {RANGE} {SEED_RANGE}"),
    (["lopt", "eval", "--trial-seed", "-1"], f"'--trial-seed': -1 {RANGE} {SEED_RANGE}"),
    (["lopt", "eval", "--workers", "-1"], f"'--workers': -1 {RANGE} x>=0."),
    (["lopt", "eval", "--trials", "1,x"], "'--trials': 'x' is not an integer."),
    (["lopt", "eval", "--trials", "1,0"], f"'--trials': 0 {RANGE} x>=1."),
    (["lopt", "eval", "--trials", str(2**70)], "'--trials': 1180591620717411303424 does not fit a 64-bit integer "
                                              "(allowed: 1<=x<=9223372036854775807)."),
    (["lopt", "eval", "--trials", ","], "'--trials': need at least one budget"),
    (["research", "implicit-reg", "--steps", "0"], f"'--steps': 0 {RANGE} x>=1."),
    (["research", "implicit-reg", "--valid-every", "0"], f"'--valid-every': 0 {RANGE} x>=1."),
    (["research", "implicit-reg", "--adam-lr", "nan"], f"'--adam-lr': 'nan' {NOT_FINITE}"),
    (["research", "implicit-reg", "--start", "1,inf"], f"'--start': 'inf' {NOT_FINITE}"),
    (["research", "implicit-reg", "--start", "1,2,3"], "'--start': each --start must be 'x,y', got '1,2,3'"),
    (["research", "self-train", "--steps", "0"], f"'--steps': 0 {RANGE} x>=1."),
    (["research", "self-train", "--adam-lr", "-1"], f"'--adam-lr': -1.0 {RANGE} x>0."),
    (["research", "self-train", "--seed", "-1"], f"'--seed': -1 {RANGE} {SEED_RANGE}"),
    (["research", "self-train", "--seeds", "0"], f"'--seeds': 0 {RANGE} 1<=x<=1000."),
])
def test_numeric_options_refuse_values_outside_their_range(args, message, tmp_path):
    out = [] if args[0] == "train" else ["--out", str(tmp_path / "o")]
    res = _invoke(args + out)
    assert res.exit_code == 2
    assert res.output.splitlines()[-1] == f"Error: Invalid value for {message}"
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- settings: types and ranges


@pytest.mark.parametrize("sets, message", [
    (["truncation=abc"], "meta-train setting truncation must be an integer, got 'abc'"),
    (["truncation=8.0"], "meta-train setting truncation must be an integer, got 8.0"),
    (["truncation=true"], "meta-train setting truncation must be an integer, got True"),
    (["truncation=0"], "meta-train setting truncation must be an integer >= 1, got 0"),
    (["steps=0"], "meta-train setting steps must be an integer >= 1, got 0"),
    (["eval_tasks=-1"], "meta-train setting eval_tasks must be an integer >= 0, got -1"),
    (["max_params=-5"], "meta-train setting max_params must be an integer or null >= 0, got -5"),
    (["max_params=\"big\""], "meta-train setting max_params must be an integer or null, got 'big'"),
    (["seed=4294967296"], "meta-train setting seed must be below 2**32, got 4294967296"),
    (["workers=9223372036854775808"], "meta-train setting workers must be an integer that fits 64 bits, got "
                                      "9223372036854775808"),
    (["sigma=0"], "meta-train setting sigma must be a finite number > 0, got 0"),
    (["sigma=\"x\""], "meta-train setting sigma must be a finite number, got 'x'"),
    (["outer_lr=1e400"], "meta-train setting outer_lr must be a finite number, got inf"),
    (["outer_clip=-1"], "meta-train setting outer_clip must be a finite number >= 0, got -1"),
    (["random_offsets=1"], "meta-train setting random_offsets must be true or false, got 1"),
    (["estimator=3"], "meta-train setting estimator must be a string, got 3"),
    (["suite=[1]"], "meta-train setting suite must be a string or null, got [1]"),
    (["filters=[1]"], "meta-train setting filters must be an object ({...}), got [1]"),
    (["plugins=\"mod\""], "meta-train setting plugins must be a list ([...]), got 'mod'"),
    (["sigma=NaN"], "--set 'sigma=NaN': NaN is not a finite number (NaN and Infinity are refused)"),
    (["panel={\"steps\": -Infinity}"], "--set 'panel={\"steps\": -Infinity}': -Infinity is not a finite number "
                                       "(NaN and Infinity are refused)"),
])
def test_settings_are_checked_against_their_types_and_ranges(sets, message):
    with pytest.raises(ValueError) as err:
        resolve_config(None, sets)
    assert str(err.value) == message


def test_good_settings_pass_unchanged():
    config, given = resolve_config(None, ["sigma=1", "max_params=null", "truncation=20", "filters={\"family\": "
                                          "[\"mlp\"]}", "outer_opt=adam", "plugins=[\"m\"]"])
    assert (config.sigma, config.max_params, config.truncation, config.outer_opt) == (1, None, 20, "adam")
    assert given == {"sigma", "max_params", "truncation", "filters", "outer_opt", "plugins"}
    assert parse_sets(["outer_opt=NaNny"]) == {"outer_opt": "NaNny"}  # not JSON: kept as text
    assert MetaTrainConfig.from_dict(MetaTrainConfig().to_dict()) == MetaTrainConfig()


def test_a_config_file_with_a_wrong_type_is_one_usage_error(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text("truncation = 'abc'\n")
    res = CliRunner().invoke(cli, ["lopt", "meta-train", "--config", str(path), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert res.output.splitlines()[-1] == "Error: meta-train setting truncation must be an integer, got 'abc'"
    res = CliRunner().invoke(cli, ["lopt", "meta-train", "--set", "truncation=abc", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert res.output.splitlines()[-1] == "Error: meta-train setting truncation must be an integer, got 'abc'"
    res = _invoke(["research", "self-train", "--set", "sigma=-1", "--out", str(tmp_path / "s")])
    assert res.exit_code == 2
    assert res.output.splitlines()[-1] == "Error: meta-train setting sigma must be a finite number > 0, got -1"
    assert not (tmp_path / "o").exists() and not (tmp_path / "s").exists()


# ---------------------------------------------------------------- smaller items


@pytest.fixture
def four_tasks(tmp_path):
    """A spec file of 4 twod tasks: 2 meta_train, 2 meta_test."""
    from taskgen import generate_suite, write_specs

    specs = generate_suite(["twod"], per_family=40, seed=0)
    train = [s for s in specs if s.split == "meta_train"][:2]
    test = [s for s in specs if s.split == "meta_test"][:2]
    path = tmp_path / "four.jsonl"
    write_specs(train + test, path)
    return path


def test_eval_says_when_the_pool_is_smaller_than_asked(four_tasks, tmp_path, monkeypatch):
    from lopt_trainer.evaluation import runner

    seen = []

    def fake_run(theta, tasks, out_dir, settings, **kw):
        seen.append(len(tasks))
        return {"rows": []}

    monkeypatch.setattr(runner, "run_evaluation", fake_run)
    res = CliRunner().invoke(cli, ["lopt", "eval", "--suite", str(four_tasks), "--tasks", "1000000",
                                                   "--out", str(tmp_path / "ev"), "--no-progress"])
    assert res.exit_code == 0, res.output + res.stderr
    assert seen == [4]
    assert res.stderr.splitlines()[0] == ("asked for 1000000 tasks; the pool has 2 seen + 2 unseen within the "
                                          "limits (half of the tasks are drawn from each)")
    res = CliRunner().invoke(cli, ["lopt", "eval", "--suite", str(four_tasks), "--tasks", "4",
                                                   "--out", str(tmp_path / "ev2"), "--no-progress"])
    assert res.exit_code == 0 and "asked for" not in res.stderr


@pytest.mark.parametrize("command", ["eval", "train"])
def test_ctrl_c_exits_130_in_eval_and_train(command, four_tasks, tmp_path, monkeypatch):
    from lopt_trainer.app import train_task
    from lopt_trainer.evaluation import runner

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_evaluation", interrupted)
    monkeypatch.setattr(train_task, "run_training", interrupted)
    if command == "eval":
        args = ["lopt", "eval", "--suite", str(four_tasks), "--tasks", "2", "--out", str(tmp_path / "ev")]
    else:
        from taskgen import load_specs

        args = ["train", load_specs(four_tasks)[0].task_id, "--suite", str(four_tasks), "--out", str(tmp_path / "t")]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 130 and res.stderr.endswith("Interrupted\n")


def test_self_train_refuses_seeds_past_the_seed_range_before_any_work(tmp_path):
    res = _invoke(["research", "self-train", "--seed", str(2**32 - 2), "--seeds", "3", "--out", str(tmp_path / "s")])
    assert res.exit_code == 2 and "seed" in res.output.splitlines()[-1] and "Traceback" not in res.output
    assert not (tmp_path / "s").exists()
