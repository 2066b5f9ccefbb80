"""Runs split over several devices in one process (:mod:`lopt_trainer.common.devices`): padding, placement, the
program cache's keys, and the same evaluation records and meta-training on two devices as on one (the CPU split in
two with ``XLA_FLAGS=--xla_force_host_platform_device_count=2`` in a subprocess)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from lopt_trainer.common import devices
from lopt_trainer.common.program_cache import shape_signature

ROOT = Path(__file__).resolve().parent.parent


@given(rows=st.integers(1, 50), d=st.integers(1, 8))
@settings(max_examples=60, deadline=None)
def test_padding_reaches_a_multiple_of_the_devices_with_copies_of_the_first_row(rows, d):
    class Fake:
        device_set = set(range(d))

    want = devices.padded_rows(rows, Fake() if d > 1 else None)
    assert want >= rows and want % d == 0 and want - rows < d
    x = np.arange(rows * 3, dtype=np.float32).reshape(rows, 3)
    padded = devices.pad_rows({"x": x, "k": x[:, 0]}, want)
    assert padded["x"].shape == (want, 3) and padded["k"].shape == (want,)
    np.testing.assert_array_equal(padded["x"][:rows], x)
    np.testing.assert_array_equal(padded["x"][rows:], np.repeat(x[:1], want - rows, axis=0))


def test_padding_never_drops_rows():
    with pytest.raises(ValueError, match="cannot pad 5 rows to 4"):
        devices.pad_rows(np.zeros((5, 2)), 4)


def test_one_device_means_no_sharding_and_no_padding():
    one = [jax.devices()[0]]
    assert devices.row_sharding(one) is None
    assert devices.padded_rows(7, None) == 7
    x = np.ones(3)
    assert devices.place_rows(x, None) is x
    assert devices.sharding_key(x) is None and devices.sharding_key(jax.device_put(x)) is None
    assert devices.sharding_key(jax.ShapeDtypeStruct((3,), np.float32)) is None


def test_a_single_device_array_and_its_shape_struct_share_a_program():
    """Prefetching with shape structs must find the program an array call later asks for."""
    x = jax.device_put(np.ones((4, 2), np.float32))
    assert shape_signature((x,)) == shape_signature((jax.ShapeDtypeStruct((4, 2), np.float32),))


_SCRIPT = r"""
import json, sys
import numpy as np, jax
import taskgen
from lopt_trainer.evaluation.compute import compute_unit
from lopt_trainer.evaluation.settings import EvalSettings, RunUnit
from lopt_trainer.theta.load import load_theta
spec = [s for s in taskgen.load_specs(None) if s.family == "quadratic"][0]
settings = EvalSettings(steps=40, seeds=3, baselines=("adamlr",), adamlr_trials=5, eval_every=20)
out = {"devices": jax.local_device_count()}
unit = RunUnit(spec.task_id, spec.to_json(), "adamlr", (0, 1, 2, 3, 4), (0, 1, 2))
out["adamlr"] = compute_unit(unit, settings)[0]
unit = RunUnit(spec.task_id, spec.to_json(), "lopt", (0,), (0, 1, 2))
out["lopt"] = compute_unit(unit, settings, theta=load_theta("handset"))[0]
from lopt_trainer.inner import loop
out["chunk_programs"] = sum(1 for sig in loop._PROGRAMS._programs if sig[0][0] == "chunk")
print(json.dumps(out))
"""


def _run(device_count: int, script: str = _SCRIPT) -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "device_count" not in f]
    env["XLA_FLAGS"] = " ".join(flags + [f"--xla_force_host_platform_device_count={device_count}"])
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_evaluation_records_on_two_devices_match_one():
    """An AdamLR grid (5 trials × 3 seeds: 15 rows, padded to 16) and θ × 3 seeds (padded to 4), split over two
    CPU devices, give the records of one device within float tolerance, row for row."""
    one, two = _run(1), _run(2)
    assert one["devices"] == 1 and two["devices"] == 2
    assert one["chunk_programs"] == two["chunk_programs"] == 2  # one per optimizer: the split carry compiles once
    for kind in ("adamlr", "lopt"):
        assert len(one[kind]) == len(two[kind]) == (15 if kind == "adamlr" else 3)
        for a, b in zip(one[kind], two[kind]):
            assert (a["trial"], a["seed"], a["diverged"]) == (b["trial"], b["seed"], b["diverged"])
            assert a["steps"] == b["steps"]
            for curve in ("select_curve", "report_curve"):
                x = np.asarray([np.nan if v is None else v for v in a[curve]])
                y = np.asarray([np.nan if v is None else v for v in b[curve]])
                np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)


_META_SCRIPT = r"""
import json, sys, tempfile
import numpy as np, jax
from lopt_trainer.meta import estimators
from lopt_trainer.meta.config import MetaTrainConfig
from lopt_trainer.meta.trainer import meta_train
from tests.meta_helpers import small_quadratic_specs
cfg = MetaTrainConfig(steps=2, num_groups=2, tasks_per_group=4, truncation=5, horizon_min=10, horizon_max=20,
                      eval_every=0, checkpoint_every=0, compilation_cache="", prefetch_steps=1)
with tempfile.TemporaryDirectory() as run:
    result = meta_train(cfg, run, specs=small_quadratic_specs(8), progress=False)
    steps = [json.loads(line) for line in open(run + "/metrics.jsonl")]
split = [sig[0][-1] is not None for sig in estimators.PROGRAMS._programs if sig[0][0] == "estimate"]
print(json.dumps({"devices": jax.local_device_count(), "split": split,
                  "theta": [np.asarray(x).ravel().tolist() for x in jax.tree_util.tree_leaves(result.theta)],
                  "meta_loss": [s["meta_loss"] for s in steps if s.get("kind") == "step"]}))
"""


def test_meta_training_on_two_devices_matches_one():
    """Two outer steps of PES with 4 slots per estimator: on two CPU devices the slots are split over them (one
    sharded program per group) and θ and the meta-losses equal one device's within float tolerance."""
    one, two = _run(1, _META_SCRIPT), _run(2, _META_SCRIPT)
    assert one["split"] and not any(one["split"])
    assert two["split"] and all(two["split"])
    np.testing.assert_allclose(one["meta_loss"], two["meta_loss"], rtol=1e-5)
    for a, b in zip(one["theta"], two["theta"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
