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
    env = {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=true"}
    assert not xla_cpu.apply(env) and env["XLA_FLAGS"] == "--xla_cpu_multi_thread_eigen=true"


def test_importing_the_toolkit_sets_it_before_jax_starts():
    code = "import os, lopt_trainer, jax; jax.numpy.ones(2).block_until_ready(); print(os.environ['XLA_FLAGS'])"
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == xla_cpu.FLAG, out.stderr
