"""The XLA CPU workaround: the single-threaded Eigen flag is added unless the process chose a value itself."""

import os
import subprocess
import sys

from taskgen import xla_cpu


def test_apply_adds_the_flag_once_and_respects_a_chosen_value():
    env = {}
    assert xla_cpu.apply(env) and env["XLA_FLAGS"] == xla_cpu.FLAG
    assert not xla_cpu.apply(env) and env["XLA_FLAGS"] == xla_cpu.FLAG
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    assert xla_cpu.apply(env) and env["XLA_FLAGS"] == f"--xla_force_host_platform_device_count=2 {xla_cpu.FLAG}"
    env = {"XLA_FLAGS": "--xla_cpu_enable_concurrency_optimized_scheduler=true"}
    assert not xla_cpu.apply(env) and env["XLA_FLAGS"] == "--xla_cpu_enable_concurrency_optimized_scheduler=true"


def test_importing_the_toolkit_sets_it_before_jax_starts():
    code = "import os, lopt_trainer, jax; jax.numpy.ones(2).block_until_ready(); print(os.environ['XLA_FLAGS'])"
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == xla_cpu.FLAG, out.stderr


def test_the_program_that_deadlocked_finishes():
    """The yardstick's AdamLR grid on mlp_ae-228154bb0c26 (14 rates × 3 seeds in one vmapped program) stopped
    forever in its first evaluation under XLA's concurrency-optimized CPU scheduler; in a subprocess, so that a
    relapse fails here instead of hanging the suite."""
    code = """
from lopt_trainer.evaluation.baseline_table import YARDSTICK_SETTINGS
from lopt_trainer.evaluation.compute import compute_unit
from lopt_trainer.evaluation.settings import RunUnit
from lopt_trainer.evaluation.task_sets import load_task_set
spec = next(s for s in load_task_set("test") if s.task_id == "mlp_ae-228154bb0c26")
recs, _ = compute_unit(RunUnit(spec.task_id, spec.to_json(), "adamlr", tuple(range(14)), (0, 1, 2)),
                       YARDSTICK_SETTINGS)
print(len(recs))
"""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "42", out.stderr[-2000:]
