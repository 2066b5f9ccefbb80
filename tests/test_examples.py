"""The example scripts of ``examples/`` run end to end from another folder, at their smoke-test settings."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_own_family_example_meta_trains_compares_and_uses_theta(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "examples" / "family_template"), str(REPO)]),
               JAX_PLATFORMS="cpu", TASKGEN_YARDSTICK_CACHE=str(tmp_path / "cache"))
    env.pop("TASKGEN_PLUGINS", None)
    res = subprocess.run([sys.executable, str(REPO / "examples" / "own_family.py"), "--out", str(tmp_path / "own"),
                          "--steps", "2", "--small"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = res.stdout.splitlines()
    assert lines[0].startswith("stopped: steps; ") and "held-out tasks, after 2 outer steps" in lines[0]
    assert lines[1].startswith("trained − start: mean Δn ")
    assert lines[-1].startswith("θ as an optax optimizer: loss 0.693 -> ")
    assert (tmp_path / "own" / "run" / "summary.json").is_file() and (tmp_path / "own" / "mine.jsonl").is_file()
