"""The outer loop: the meta-loss goes down, metrics/plots/config are written, kill -9 + resume is bitwise exact."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lopt_trainer.meta import MetaTrainConfig, meta_train, theta_bytes
from lopt_trainer.common.checkpoint import load_checkpoint
from lopt_trainer.meta.metrics import plot_run, read_metrics
from tests.meta_helpers import small_quadratic_specs

REPO = Path(__file__).resolve().parents[1]


def _config(**kw):
    base = dict(lopt="tests.meta_helpers:tiny_lopt", truncation=10, tasks_per_group=4, num_groups=2,
                horizon="constant", horizon_min=40, horizon_max=40, resample_every=20, eval_every=10,
                eval_tasks=2, eval_steps=40, checkpoint_every=10, valid_every=5, outer_lr=0.05, outer_clip=3.0,
                sigma=0.05, compilation_cache="", filters={"family": ["quadratic"]})
    base.update(kw)
    return MetaTrainConfig(**base)


def test_meta_training_lowers_meta_loss(tmp_path):
    from lopt_trainer.meta import estimators

    estimators.PROGRAMS.clear()  # a test earlier in this process may have compiled the same programs
    specs = small_quadratic_specs(8)
    result = meta_train(_config(steps=40), tmp_path, specs=specs, eval_specs=specs[:2], progress=False)
    steps = [r for r in read_metrics(tmp_path) if r["kind"] == "step"]
    assert len(steps) == 40
    first = np.mean([r["meta_loss"] for r in steps[:12]])
    last = np.mean([r["meta_loss"] for r in steps[-12:]])
    assert last < 0.8 * first, (first, last)
    assert float(result.theta["log_lr"]) > -4.0  # learned to take larger steps
    evals = [r for r in read_metrics(tmp_path) if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [-1, 9, 19, 29, 39]  # the start θ (step -1), then every 10 steps
    assert evals[-1]["tasks"][specs[0].task_id]["mean_loss"] < evals[0]["tasks"][specs[0].task_id]["mean_loss"]
    assert steps[0]["compile_seconds"] > 0 and steps[1]["compile_seconds"] == 0
    assert all(r["nan_grads"] == 0 for r in steps)
    assert json.loads((tmp_path / "config.json").read_text())["steps"] == 40
    names = {p.name for p in plot_run(tmp_path)}
    assert {"meta_loss.png", "grad_norm.png", "throughput.png", "eval.png"} <= names


def test_steps_before_meta_loss_from_leave_theta_and_the_outer_optimizer_alone(tmp_path):
    """With ``meta_loss_from=20`` and truncations of 10, the first two outer steps see no counted step: θ and the
    outer optimizer stay (so warm-up and Adam's bias correction start with the first real meta-gradient), the
    records say so (meta-loss None, gradient norm 0), and the third step learns."""
    specs = small_quadratic_specs(8)
    cfg = dict(meta_loss_from=20, random_offsets=False, eval_every=0, outer_warmup=5)
    start = meta_train(_config(steps=0, **cfg), tmp_path / "a", specs=specs, eval_specs=[], progress=False)
    idle = meta_train(_config(steps=2, **cfg), tmp_path / "b", specs=specs, eval_specs=[], progress=False)
    assert theta_bytes(idle.theta) == theta_bytes(start.theta)
    run = meta_train(_config(steps=4, **cfg), tmp_path / "c", specs=specs, eval_specs=[], progress=False)
    steps = [r for r in read_metrics(tmp_path / "c") if r["kind"] == "step"]
    assert [r["meta_loss"] is None for r in steps] == [True, True, False, False]
    assert [r["grad_norm"] for r in steps[:2]] == [0.0, 0.0] and steps[2]["grad_norm"] > 0
    assert all(r["inner_steps"] == 2 * 4 * 2 * 10 for r in steps)  # every problem trained on every step
    # The warm-up starts at the first real meta-gradient: its learning rate 0 leaves θ as it was at step 3 (an
    # outer optimizer counted on through the idle steps would be at 2/5 of the rate by then), and step 4 moves it.
    third = meta_train(_config(steps=3, **cfg), tmp_path / "d", specs=specs, eval_specs=[], progress=False)
    assert theta_bytes(third.theta) == theta_bytes(start.theta)
    assert theta_bytes(run.theta) != theta_bytes(start.theta)


def test_resume_in_process_is_bitwise_identical(tmp_path):
    specs = small_quadratic_specs(8)
    full = meta_train(_config(steps=24), tmp_path / "a", specs=specs, eval_specs=[], progress=False)
    meta_train(_config(steps=13), tmp_path / "b", specs=specs, eval_specs=[], progress=False)
    resumed = meta_train(_config(steps=24), tmp_path / "b", resume=True, specs=specs, eval_specs=[],
                         progress=False)
    assert resumed.state.step == 24
    assert theta_bytes(full.theta) == theta_bytes(resumed.theta)


def test_warm_start_from_a_run_and_a_clear_error_for_a_foreign_theta(tmp_path):
    specs = small_quadratic_specs(8)
    first = meta_train(_config(steps=6), tmp_path / "a", specs=specs, eval_specs=[], progress=False)
    warm = meta_train(_config(steps=0, init_theta=str(tmp_path / "a")), tmp_path / "b", specs=specs,
                      eval_specs=[], progress=False)
    assert theta_bytes(warm.theta) == theta_bytes(first.theta)
    cold = meta_train(_config(steps=0), tmp_path / "c", specs=specs, eval_specs=[], progress=False)
    assert theta_bytes(cold.theta) != theta_bytes(first.theta)
    from lopt_trainer.theta.shipped import pretrained_path

    with pytest.raises(ValueError, match="does not match"):  # the shipped hierarchical θ vs the tiny optimizer
        meta_train(_config(steps=0, init_theta=str(pretrained_path())), tmp_path / "d", specs=specs,
                   eval_specs=[], progress=False)


def _cli(run, steps, resume=False):
    cmd = [sys.executable, "-m", "taskgen_cli", "lopt", "meta-train", "--suite", str(run.parent / "specs.jsonl"),
           "--filter", "family=quadratic", "--steps", str(steps), "--out", str(run), "--no-progress",
           "--config", str(run.parent / "cfg.toml"), "--preset", "quick"]
    if resume:
        cmd.append("--resume")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_sigkill_and_resume_is_bitwise_identical(tmp_path):
    from taskgen import write_specs

    write_specs(small_quadratic_specs(8), tmp_path / "specs.jsonl")
    (tmp_path / "cfg.toml").write_text(
        'lopt = "tests.meta_helpers:tiny_lopt"\ntruncation = 10\ntasks_per_group = 4\nnum_groups = 2\n'
        'horizon_min = 20\nhorizon_max = 80\nresample_every = 25\neval_every = 0\ncheckpoint_every = 3\n'
        'valid_every = 5\nouter_lr = 0.05\nsigma = 0.05\ncompilation_cache = ""\n')
    steps = 300
    killed = _cli(tmp_path / "killed", steps)
    full = _cli(tmp_path / "full", steps)
    deadline = time.time() + 240
    while time.time() < deadline:
        raw = load_checkpoint(tmp_path / "killed") if (tmp_path / "killed" / "checkpoint.msgpack").exists() else None
        if raw is not None and raw["step"] >= 3:
            break
        assert killed.poll() is None, killed.stderr.read().decode()[-2000:]
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    at_kill = load_checkpoint(tmp_path / "killed")["step"]
    assert at_kill < steps, "the run finished before it could be killed; raise `steps`"
    resumed = _cli(tmp_path / "killed", steps, resume=True)
    for proc in (full, resumed):
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-3000:]
    a, b = load_checkpoint(tmp_path / "full"), load_checkpoint(tmp_path / "killed")
    assert a["step"] == b["step"] == steps
    from lopt_trainer.theta.load import theta_bytes as tb

    assert tb(a["theta"]) == tb(b["theta"])
    assert tb(a["outer_state"]) == tb(b["outer_state"])
    steps_logged = [r["step"] for r in read_metrics(tmp_path / "killed") if r["kind"] == "step"]
    assert steps_logged == list(range(steps))
