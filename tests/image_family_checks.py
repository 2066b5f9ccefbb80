"""Checks shared by the tests of image families (mlp, mlp_ae, mlp_vae, and any family using ``data``).

Each test module calls :func:`make_tests` to get the standard battery as pytest functions bound to one family:
sampling validity and determinism, exact analytic parameter counts, finite loss and gradients, init
determinism, loss decrease under Adam for ≥ 90% of sampled specs, invalid configs naming their field, and
compiled-function sharing across tasks that differ only in data.
"""

from __future__ import annotations

import copy
import functools
import json

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from families.base import ConfigError
from families.sampling import SpecRNG
from taskgen.spec import TaskSpec
from tests import family_checks as fc

N_SPECS = fc.N_SPECS


def make_tests(family, lr: float = 1e-3, steps: int = 200, min_rate: float = 0.9):
    """A dict of pytest test functions for ``family``; a test module does ``globals().update(make_tests(F()))``."""

    @functools.lru_cache(maxsize=None)
    def specs():
        return tuple(fc.sample_specs(family, N_SPECS))

    @functools.lru_cache(maxsize=None)
    def tasks():
        return tuple(family.build(s) for s in specs())

    def test_sample_valid_and_deterministic():
        for i, spec in enumerate(specs()):
            family.validate(spec.config)
            again = family.sample(SpecRNG(spec.seed))
            assert json.dumps(again, sort_keys=True) == json.dumps(spec.config, sort_keys=True)
            assert TaskSpec.from_json(spec.to_json()).to_json() == spec.to_json()
            cols = family.describe(spec.config)
            assert cols["batch_size"] == spec.config["data"]["batch_size"]
            assert cols["dataset"] == spec.config["data"]["dataset"]
            assert len(cols["input_shape"]) == 3

    def test_cost_params_match_built_model():
        for task in tasks():
            params = task.init(task.init_key())
            cost = family.cost(task.spec.config)
            assert cost.params == fc.param_count(params), task.spec.task_id
            assert cost.flops_per_step > 0

    def test_finite_loss_and_grad():
        for task in tasks():
            fc.check_finite_loss_and_grad(task)

    def test_init_deterministic():
        for task in tasks()[:5]:
            a = task.init(jax.random.PRNGKey(3))
            b = task.init(jax.random.PRNGKey(3))
            for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
                assert np.asarray(x).tobytes() == np.asarray(y).tobytes()

    def test_batches_have_fixed_shape_and_are_deterministic():
        for task in tasks()[:5]:
            for split in ("train", "inner_valid", "outer_valid", "test"):
                b1 = task.batch(split, jax.random.PRNGKey(7))
                b2 = task.batch(split, jax.random.PRNGKey(7))
                for x, y in zip(jax.tree_util.tree_leaves(b1), jax.tree_util.tree_leaves(b2)):
                    assert x.shape[0] == task.batch_size
                    assert np.asarray(x).tobytes() == np.asarray(y).tobytes()

    def test_adam_reduces_training_loss():
        failed = []
        for task in tasks():
            losses = fc.adam_losses(task, steps=steps, lr=lr)
            if not fc.loss_decreased(losses):
                failed.append((task.spec.task_id, float(np.mean(losses[:20])), float(np.mean(losses[-20:]))))
            norm = float(task.normalizer(np.mean(losses[-20:])))
            assert np.isfinite(norm) and -5.0 <= norm <= 10.5, (task.spec.task_id, norm)
        rate = 1 - len(failed) / len(tasks())
        print(f"{family.name}: loss fell for {rate:.0%}; failed: {failed}")
        assert rate >= min_rate, failed

    def test_normalizer_handles_nan_and_inf():
        task = tasks()[0]
        for bad in (np.nan, np.inf):
            v = float(task.normalizer(np.float32(bad)))
            assert np.isfinite(v) and v <= 10.5

    def test_static_key_shares_functions_across_data():
        spec = specs()[0]
        cfg = copy.deepcopy(spec.config)
        cfg["data"]["dataset"] = "digits" if cfg["data"]["dataset"] != "digits" else "mnist"
        cfg["data"]["image_size"] = 8
        cfg2 = copy.deepcopy(cfg)
        cfg2["data"]["dataset"] = "mnist" if cfg["data"]["dataset"] == "digits" else "digits"
        cfg2["data"]["train_size"] = 700
        t1 = family.build(TaskSpec.create(family.name, family.version, 1, cfg))
        t2 = family.build(TaskSpec.create(family.name, family.version, 2, cfg2))
        assert t1.static_key == t2.static_key
        assert t1.loss is t2.loss and t1.init is t2.init and t1.sample_batch is t2.sample_batch

    def test_invalid_configs_name_the_field():
        base = specs()[0].config
        cases = [
            (lambda c: c["data"].__setitem__("batch_size", 4096), "data.batch_size"),
            (lambda c: c["data"].__setitem__("dataset", "cifar10"), "data.dataset"),
            (lambda c: c["data"].__setitem__("image_size", 13), "data.image_size"),
            (lambda c: c["data"].update(dataset="digits", image_size=28), "data.image_size"),
            (lambda c: c["data"].__setitem__("center_data", "yes"), "data.center_data"),
            (lambda c: c.__setitem__("activation", "gelu_xyz"), "activation"),
            (lambda c: c.__setitem__("init", {"name": "orthogonal"}), "init.scale"),
            (lambda c: c.__setitem__("bogus", 1), "bogus"),
            (lambda c: c.pop("data"), "data"),
        ]
        for mutate, field in cases:
            cfg = copy.deepcopy(base)
            mutate(cfg)
            with pytest.raises(ConfigError) as err:
                family.validate(cfg)
            assert err.value.field == field, (field, err.value)

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(seed=st.integers(0, 2**31 - 1), value=st.one_of(st.integers(-10**6, 10**6), st.text(max_size=5),
                                                           st.booleans(), st.none(), st.floats()))
    def test_mutated_configs_fail_with_a_field_or_pass(seed, value):
        """Setting any top-level or data field to an arbitrary value either still validates or raises a
        ConfigError whose field names the mutated path (never another exception)."""
        cfg = family.sample(SpecRNG(seed))
        paths = [(k,) for k in cfg] + [("data", k) for k in cfg["data"]]
        path = paths[seed % len(paths)]
        target = cfg if len(path) == 1 else cfg["data"]
        target[path[-1]] = value
        try:
            family.validate(cfg)
        except ConfigError as e:
            dotted = ".".join(path)
            assert e.field == dotted or e.field.startswith(dotted + ".") or e.field.startswith(dotted + "[") \
                or e.field.startswith("data."), (dotted, e.field)

    return {name: fn for name, fn in locals().items() if name.startswith("test_")}
