"""Meta-training from the command line (issue 16, 4): the recipe is the default preset, every setting is listed
with its default and range, the resolved settings are printed at the start, an empty task list says which filter
emptied it, the progress bar names the group that compiles, and the eval summary says what its numbers mean."""

import dataclasses
import json
import types

import pytest
from click.testing import CliRunner

from lopt_trainer.app.cli import PRESET_NAMES
from lopt_trainer.common.task_pool import filter_steps, no_specs_message
from lopt_trainer.evaluation.summary_text import legend, summary_json, summary_lines, task_lines
from lopt_trainer.meta import MetaTrainConfig
from lopt_trainer.meta.config import (PRESETS, SETTING_CHOICES, describe_settings, differences, preset_dict,
                                      read_config_dict, resolve_config)
from lopt_trainer.meta.trainer import WorkDisplay
from lopt_trainer.theta.shipped import data_path
from taskgen_cli import cli
from tests.meta_helpers import quadratic_specs


def test_the_presets_are_the_recipe_and_the_python_defaults():
    assert PRESET_NAMES == tuple(PRESETS)
    recipe = read_config_dict(data_path("pretrain_config.json"))
    assert {k: preset_dict("recipe")[k] for k in recipe} == recipe
    assert preset_dict("quick") == MetaTrainConfig().to_dict()
    with pytest.raises(ValueError, match=r"unknown preset 'fast'; use one of \['quick', 'recipe'\]"):
        preset_dict("fast")


def test_resolve_config_layers_preset_file_sets_and_flags(tmp_path):
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text("truncation = 20\n")
    config, given = resolve_config(cfg_file, ["sigma=0.02"], {"steps": 7}, preset="recipe")
    assert (config.num_groups, config.truncation, config.sigma, config.steps) == (16, 20, 0.02, 7)
    assert given == {"truncation", "sigma", "steps"}  # the preset's values are not "given"
    quick, _ = resolve_config(cfg_file)
    assert (quick.num_groups, quick.truncation) == (1, 20)
    assert differences(quick) == {"truncation": 20}


def test_settings_lists_every_field_with_default_recipe_and_range():
    rows = {r["name"]: r for r in describe_settings()}
    assert list(rows) == list(MetaTrainConfig().to_dict())
    assert rows["num_groups"] == {"name": "num_groups", "type": "int", "default": 1, "preset_quick": 1,
                                  "preset_recipe": 16, "minimum": 1, "maximum": None, "choices": [],
                                  "help": "Estimators per outer step, each on its own group of tasks.",
                                  "resume": "fixed"}
    assert rows["sigma"]["minimum"] == ">0" and rows["seed"]["maximum"] == 2**32 - 1
    assert rows["meta_loss"]["choices"] == ["train", "outer_valid"] and rows["meta_loss"]["preset_recipe"] == \
        "outer_valid"
    res = CliRunner().invoke(cli, ["lopt", "settings"])
    assert res.exit_code == 0
    lines = {line.split()[0]: line for line in res.output.splitlines()[1:-1] if not line.startswith(" ")}
    helps = [line for line in res.output.splitlines()[1:-1] if line.startswith("    ")]
    assert set(lines) == set(rows) and len(helps) == len(rows)
    assert "    Estimators per outer step, each on its own group of tasks. [resume: fixed]" in helps
    assert lines["num_groups"].split() == ["num_groups", "int", "1", "16", ">=", "1"]
    assert lines["truncation"].split() == ["truncation", "int", "50", "=", ">=", "1"]
    assert lines["seed"].split()[-4:] == [">=", "0,", "<=", str(2**32 - 1)]
    assert lines["estimator"].split()[-9:] == ["pes", "|", "es", "|", "backprop", "|", "hybrid", "|", "nres"]
    assert json.loads(CliRunner().invoke(cli, ["lopt", "settings", "--json"]).output) == describe_settings()


@pytest.mark.parametrize("name", sorted(set(SETTING_CHOICES) - {"outer_opt", "lopt"}))
def test_every_listed_choice_is_accepted(name):
    for value in SETTING_CHOICES[name]:
        MetaTrainConfig.from_dict({name: value})


def test_meta_train_prints_its_resolved_settings_and_which_filter_emptied_the_tasks(tmp_path):
    res = CliRunner().invoke(cli, ["lopt", "meta-train", "--filter", "family=nosuch", "--set", "sigma=0.02",
                                   "--out", str(tmp_path / "o")])
    assert res.exit_code == 1
    err = res.stderr.splitlines()
    assert err[0] == ("meta-train settings (preset recipe; --set/flags on top; `taskgen lopt settings` lists all); "
                      "differing from the defaults:")
    shown = {line.split()[0]: " ".join(line.split()[1:]) for line in err[1:-1]}
    assert shown["num_groups"] == "16" and shown["sigma"] == "0.02" and shown["filters"] == '{"family": ["nosuch"]}'
    assert shown["meta_loss"] == '"outer_valid"' and "truncation" not in shown
    assert err[-1] == ("Error: no task specs left after filtering the default suite: 6000 specs -> family=nosuch 0 "
                       "-> max_params<=20000 (word_lm<=100000) 0 -> max_flops<=5000000 (char_lm<=20000000, "
                       "mlp_vae<=10000000, rnn_text_classification<=10000000, word_lm<=100000000) 0 (family=nosuch "
                       "removed the last 6000; loosen it)")


def test_filter_steps_count_each_filter_in_turn():
    specs = quadratic_specs(6) + [s.with_split("meta_test") for s in quadratic_specs(2, seed=1)]
    steps = filter_steps(specs, {"split": ["meta_train"], "family": ["quadratic"]}, max_params=0)
    assert steps == [("source", 8), ("family=quadratic", 8), ("split=meta_train", 6), ("max_params<=0", 0)]
    assert no_specs_message("s.jsonl", specs, {"split": ["meta_test"], "family": ["twod"]}) == (
        "no task specs left after filtering s.jsonl: 8 specs -> family=twod 0 -> split=meta_test 0 "
        "(family=twod removed the last 8; loosen it)")


def test_the_progress_bar_names_the_compiling_group():
    class Bar:
        desc = ""

        def set_description(self, text, refresh=True):
            self.desc = text

    bar = Bar()
    show = WorkDisplay(bar)
    work = types.SimpleNamespace(group="mlp:" + "x" * 40, task_ids=["a", "b"])
    show(0, 16, work)
    assert bar.desc == "meta-train: compiling mlp:xxxxxxxxxxxxxxxxxxxxxxx… (1/16)"
    show(2, 16, work)
    assert bar.desc == "meta-train: estimator mlp:xxxxxxxxxxxxxxxxxxxxxxx… (3/16)"


SUMMARY = {"settings": {"steps": 1000, "seeds": 2, "select_split": "inner_valid", "report_split": "test"},
           "rows": [{"optimizer": "global_adamlr", "group": "unseen", "n_tasks": 20,
                     "final": {"median": -0.24, "q25": -1.5, "q75": 0.31}, "frac_lopt_better": 0.45,
                     "speedup_median": 1.25},
                    {"optimizer": "per_task_adamlr@14", "group": "seen", "n_tasks": 4,
                     "final": {"median": float("nan"), "q25": float("nan"), "q75": float("nan")},
                     "frac_lopt_better": float("nan"), "speedup_median": float("inf")}],
           "lopt": {"runs": 48, "diverged": 1}, "n_tasks": {"seen": 4, "unseen": 20}}


def test_the_eval_summary_says_what_its_numbers_mean():
    lines = summary_lines(SUMMARY)
    assert lines[0].split() == ["baseline", "tasks", "n", "median", "[q25,", "q75]", "learned", "better", "speedup"]
    assert lines[2].split() == ["Global", "AdamLR", "unseen", "(meta_test)", "20", "-0.240", "[-1.50,", "+0.31]",
                                "9/20", "(45%)", "1.25"]
    assert lines[3].split() == ["Per-task", "AdamLR", "(14)", "seen", "(meta_train)", "4", "-", "-", "-", "inf"]
    assert lines[-1] == "learned optimizer runs: 48, diverged: 1"
    text = " ".join(" ".join(line.split()) for line in legend(SUMMARY["settings"]))
    assert "final normalised test loss after 1000 steps (mean over 2 seed(s))" in text
    assert "choose their trial on inner_valid" in text and "> 0: the learned optimizer got closer" in text
    task = types.SimpleNamespace(task_id="mlp-0123456789ab", group="unseen", variant="mlp/digits")
    assert task_lines([task]) == ["  unseen (meta_test)  mlp-0123456789ab         mlp/digits"]
    out = summary_json(SUMMARY, [task], "pretrained")
    assert out["theta"] == "pretrained" and out["tasks"] == [{"task_id": "mlp-0123456789ab", "group": "unseen",
                                                              "variant": "mlp/digits"}]
    assert out["rows"] == SUMMARY["rows"] and out["legend"] == legend(SUMMARY["settings"])


def test_every_setting_is_declared_once_with_help_range_and_resume_kind():
    """Each field carries its help, resume kind, range and choices; the choices, minimums, resume rules, the
    settings command and the docs table all come from there."""
    from pathlib import Path

    from lopt_trainer.meta import resume
    from lopt_trainer.meta.config import (RESUME_KINDS, SETTING_MINIMUM, SETTINGS_TABLE_END, SETTINGS_TABLE_START,
                                          settings_markdown)

    fields = dataclasses.fields(MetaTrainConfig)
    assert all(f.metadata.get("help") and f.metadata.get("resume") in RESUME_KINDS for f in fields)
    kinds = {f.name: f.metadata["resume"] for f in fields}
    assert set(resume.FREE) == {k for k, v in kinds.items() if v == "free"} >= {"steps", "workers"}
    assert set(resume.SAFE) == {k for k, v in kinds.items() if v == "safe"} >= {"panel", "checkpoint_every"}
    assert set(resume.TASK_SELECTION) == {"manifest", "suite", "filters", "max_params", "max_flops", "family_limits"}
    assert SETTING_CHOICES["estimator"] == ("pes", "es", "backprop", "hybrid", "nres") and SETTING_MINIMUM["sigma"] == ">0"
    page = (Path(__file__).resolve().parent.parent / "docs" / "meta_training.md").read_text()
    start, end = page.index(SETTINGS_TABLE_START), page.index(SETTINGS_TABLE_END) + len(SETTINGS_TABLE_END)
    assert page[start:end] == settings_markdown(), "regenerate the table: settings_markdown()"
    with pytest.raises(ValueError, match="a setting needs help text and a resume kind"):
        from lopt_trainer.meta.config import setting

        setting(1, help="", resume="fixed")
