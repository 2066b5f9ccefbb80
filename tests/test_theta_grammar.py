"""One way to name a θ (issue 16, 2): every ``--theta`` option takes one grammar with one help text and one usage
error, names and paths alike reach :func:`lopt_trainer.load_theta`, and a meta-training run of the hierarchical
optimizer writes ``RUN/theta.npz`` at each checkpoint."""

import json

import click
import numpy as np
import pytest
from click.testing import CliRunner

import lopt_trainer
from lopt_trainer.app.cli import THETA, THETA_HELP, lopt, train
from lopt_trainer.common import checkpoint as ckpt
from lopt_trainer.theta import names
from lopt_trainer.theta.load import theta_bytes
from research import cli as research_cli
from taskgen_cli import cli
from tests.meta_helpers import small_quadratic_specs

THETA_COMMANDS = [(train, "theta"), (lopt.commands["eval"], "theta"), (lopt.commands["panel"], "theta"),
                  (research_cli.implicit_reg_cmd, "theta"), (research_cli.self_train_cmd, "theta"),
                  (research_cli.grad_quality_cmd, "thetas"), (lopt.commands["meta-train"], "init_theta"),
                  (lopt.commands["interpolate"], "theta_a"), (lopt.commands["interpolate"], "theta_b")]
GRAMMAR = ("a θ is a reference-layout .npz file, a meta-training run folder, a checkpoint file (.msgpack), "
           "'pretrained' (the shipped θ), 'handset' (untrained hand-set rule) or 'random' (untrained, seed 0)")


def _param(command: click.Command, name: str) -> click.Parameter:
    return next(p for p in command.params if p.name == name)


@pytest.mark.parametrize("command,name", THETA_COMMANDS, ids=lambda c: getattr(c, "name", c))
def test_every_theta_option_has_the_one_type_and_help(command, name):
    param = _param(command, name)
    assert param.type is THETA
    assert param.help.startswith(THETA_HELP)
    assert param.default == {"thetas": ("handset",), "init_theta": None, "theta_a": "handset",
                             "theta_b": None}.get(name, "pretrained")


@pytest.mark.parametrize("args", [
    ["train", "quadratic-83941fda3522", "--optimizer", "lopt"],
    ["lopt", "eval", "--out", "OUT"], ["lopt", "panel", "--out", "OUT"], ["lopt", "meta-train", "--out", "OUT"],
    ["lopt", "interpolate", "--alpha", "0.5", "--out", "OUT"],
    ["research", "implicit-reg", "--out", "OUT"], ["research", "self-train", "--out", "OUT"],
    ["research", "grad-quality"],
])
def test_a_missing_path_or_unknown_name_is_one_usage_error_listing_the_grammar(args, tmp_path):
    option = {"meta-train": "--init-theta", "interpolate": "--to"}.get(args[1], "--theta")
    group = research_cli.cli if args[0] == "research" else cli  # the lab's commands: `python -m research ...`
    args = [str(tmp_path / "o") if a == "OUT" else a for a in (args[1:] if args[0] == "research" else args)]
    res = CliRunner().invoke(group, [*args, option, "pretrianed"])
    assert res.exit_code == 2
    assert res.output.splitlines()[-1] == (f"Error: Invalid value for '{option}': 'pretrianed' is neither a file, "
                                           f"a folder nor a θ name; {GRAMMAR}")
    empty = tmp_path / "empty"
    empty.mkdir()
    res = CliRunner().invoke(group, [*args, option, str(empty)])
    assert res.exit_code == 2
    assert res.output.splitlines()[-1] == (f"Error: Invalid value for '{option}': folder {str(empty)!r} holds no "
                                           f"meta-training checkpoint (checkpoint.msgpack); {GRAMMAR}")
    assert not (tmp_path / "o").exists()


def test_meta_train_checks_a_learned_outer_optimizer_the_same_way(tmp_path):
    res = CliRunner().invoke(cli, ["lopt", "meta-train", "--set", "outer_opt=\"lopt:nosuch\"", "--out",
                                   str(tmp_path / "o")])
    assert res.exit_code == 2
    assert res.output.splitlines()[-1] == (f"Error: outer_opt 'lopt:nosuch': 'nosuch' is neither a file, a folder "
                                           f"nor a θ name; {GRAMMAR}")


def test_names_are_shadowed_by_files_and_labels_are_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert names.is_theta_name("pretrained") and names.theta_label("pretrained") == "pretrained"
    assert names.theta_problem("handset") is None
    (tmp_path / "random").mkdir()
    assert not names.is_theta_name("random")
    assert names.theta_problem("random") == ("folder 'random' holds no meta-training checkpoint "
                                             "(checkpoint.msgpack)")
    assert names.theta_label("x.npz") == str(tmp_path / "x.npz")


def test_run_theta_files_are_the_checkpoint_files():
    assert names.RUN_THETA_FILES == (ckpt.FILENAME, ckpt.PREVIOUS)


def test_load_theta_is_public_and_takes_every_name():
    shipped = lopt_trainer.load_theta("pretrained")
    assert theta_bytes(shipped) == theta_bytes(lopt_trainer.pretrained())
    assert theta_bytes(lopt_trainer.load_theta(str(lopt_trainer.pretrained_path()))) == theta_bytes(shipped)
    handset, random = lopt_trainer.load_theta("handset"), lopt_trainer.load_theta("random")
    assert theta_bytes(handset) != theta_bytes(random) != theta_bytes(shipped)


def test_self_training_takes_a_theta_name_as_outer_optimizer():
    import optax

    from lopt_trainer.meta.config import OuterSettings
    from lopt_trainer.meta.outer import build_outer_optimizer

    tx = build_outer_optimizer(OuterSettings("lopt:pretrained", 1e-3, 0.0, 0.0, 0))
    assert isinstance(tx, optax.GradientTransformation) and hasattr(tx, "observe_validation")


def test_a_hierarchical_run_writes_theta_npz_at_each_checkpoint(tmp_path):
    from lopt_trainer.meta import MetaTrainConfig, meta_train

    config = MetaTrainConfig(truncation=5, tasks_per_group=2, horizon="constant", horizon_min=10, horizon_max=10,
                             eval_every=0, checkpoint_every=1, steps=1, compilation_cache="")
    run = tmp_path / "run"
    first = meta_train(config, run, specs=small_quadratic_specs(2), eval_specs=[], progress=False)
    npz = run / "theta.npz"
    assert theta_bytes(lopt_trainer.load_theta(npz)) == theta_bytes(first.theta)
    assert theta_bytes(lopt_trainer.load_theta(run)) == theta_bytes(first.theta)
    config.steps = 2
    second = meta_train(config, run, resume=True, specs=small_quadratic_specs(2), eval_specs=[], progress=False)
    assert theta_bytes(lopt_trainer.load_theta(npz)) == theta_bytes(second.theta) != theta_bytes(first.theta)
    assert sorted(p.name for p in run.iterdir() if p.suffix == ".npz") == ["theta.npz"]
    # the --theta of every command takes the run folder and its theta.npz
    assert THETA.convert(str(run), None, None) == str(run) and THETA.convert(str(npz), None, None) == str(npz)


def test_a_run_of_another_optimizer_writes_no_npz(tmp_path):
    from lopt_trainer.meta import MetaTrainConfig, meta_train

    config = MetaTrainConfig(lopt="tests.meta_helpers:tiny_lopt", truncation=5, tasks_per_group=2,
                             horizon="constant", horizon_min=10, horizon_max=10, eval_every=0, steps=1,
                             compilation_cache="")
    meta_train(config, tmp_path / "run", specs=small_quadratic_specs(2), eval_specs=[], progress=False)
    assert (tmp_path / "run" / ckpt.FILENAME).is_file() and not (tmp_path / "run" / "theta.npz").exists()


def test_train_with_the_learned_optimizer_needs_no_theta_option(tmp_path):
    res = CliRunner().invoke(cli, ["train", "quadratic-83941fda3522", "--optimizer", "lopt", "--steps", "20",
                                   "--out", str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["optimizer"] == "lopt" and np.isfinite(summary["final"]["train"])
    curve = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert curve["meta"]["theta"] == "pretrained"
