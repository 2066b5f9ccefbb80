"""Tests of the Haiku example family: a user-style family built with ``hk.transform`` works like a built-in."""

from __future__ import annotations

import haiku as hk
import jax
import numpy as np
import pytest

from families.base import SPLITS, ConfigError
from families.haiku_example import HaikuLinearRegressionFamily
from families.sampling import SpecRNG
from taskgen.spec import TaskSpec
from tests.family_checks import adam_losses, check_finite_loss_and_grad, loss_decreased, param_count, sample_specs

FAMILY = HaikuLinearRegressionFamily()


@pytest.fixture(scope="module")
def specs():
    return sample_specs(FAMILY, 6)


def test_sampling_is_deterministic_and_valid():
    for seed in range(50):
        config = FAMILY.sample(SpecRNG(seed))
        assert config == FAMILY.sample(SpecRNG(seed))
        FAMILY.validate(config)
    assert {FAMILY.variant(FAMILY.sample(SpecRNG(s))) for s in range(50)} == {
        "haiku_linear_regression/linear", "haiku_linear_regression/mlp"}


def test_validate_names_the_bad_field():
    config = FAMILY.sample(SpecRNG(0))
    with pytest.raises(ConfigError) as err:
        FAMILY.validate({**config, "hidden": [0]})
    assert err.value.field == "hidden[0]"


def test_params_are_haiku_params_and_cost_matches(specs):
    for spec in specs:
        task = FAMILY.build(spec)
        params = task.init(task.init_key())
        assert isinstance(params, dict) and all(k.startswith("mlp/~/linear_") for k in params)
        assert FAMILY.cost(spec.config).params == param_count(params)
        assert FAMILY.cost(spec.config).flops_per_step > 0
        batch = task.batch("train", jax.random.PRNGKey(0))
        assert batch["x"].shape == (spec.config["batch_size"], spec.config["input_dim"])
    check_finite_loss_and_grad(FAMILY.build(specs[0]))


def test_build_is_deterministic_and_splits_differ(specs):
    spec = specs[0]
    a, b = FAMILY.build(spec), FAMILY.build(TaskSpec.from_json(spec.to_json()))
    for s in SPLITS:
        np.testing.assert_array_equal(a.splits[s]["x"], b.splits[s]["x"])
        np.testing.assert_array_equal(a.splits[s]["y"], b.splits[s]["y"])
    assert not np.array_equal(a.splits["train"]["x"], a.splits["test"]["x"])
    jax.tree_util.tree_map(np.testing.assert_array_equal, a.init(a.init_key()), b.init(b.init_key()))


def test_equal_shapes_share_functions():
    config = {"input_dim": 4, "hidden": [8], "activation": "tanh", "batch_size": 16, "num_examples": 64,
              "noise_std": 0.1}
    a = FAMILY.build(TaskSpec.create(FAMILY.name, FAMILY.version, 1, config))
    b = FAMILY.build(TaskSpec.create(FAMILY.name, FAMILY.version, 2, {**config, "noise_std": 0.3}))
    assert a.static_key == b.static_key
    assert a.loss is b.loss and a.init is b.init and a.sample_batch is b.sample_batch
    assert not np.array_equal(a.splits["train"]["y"], b.splits["train"]["y"])


def test_trains(specs):
    results = []
    for spec in specs:
        task = FAMILY.build(spec)
        losses = adam_losses(task, steps=200, lr=1e-2)
        results.append(loss_decreased(losses))
        assert float(task.normalizer(np.mean(losses[-20:]))) < float(task.normalizer(np.mean(losses[:20]))) or \
            not results[-1]
    assert all(results), [s.config for s, ok in zip(specs, results) if not ok]


def test_haiku_is_really_used():
    spec = TaskSpec.create(FAMILY.name, FAMILY.version, 0, FAMILY.sample(SpecRNG(0)))
    params = FAMILY.build(spec).init(jax.random.PRNGKey(0))
    # Haiku's parameter layout: {module_name: {"w", "b"}}, as produced by hk.transform.
    assert hk.data_structures.tree_size(params) == param_count(params)
    assert all(set(v) == {"w", "b"} for v in params.values())


def test_haiku_family_through_the_public_registry_api(tmp_path):
    """The README's path: register a Haiku family, sample a suite, write/read it, export a manifest, build, train."""
    import taskgen
    from families.haiku_example import HaikuLinearRegressionFamily

    registry = taskgen.Registry(use_entry_points=False)
    registry.register(HaikuLinearRegressionFamily)
    specs = taskgen.generate_suite(["haiku_linear_regression"], per_family=3, seed=1, registry=registry)
    taskgen.write_specs(specs, tmp_path / "s.jsonl")
    assert taskgen.read_specs(tmp_path / "s.jsonl", registry=registry) == specs
    table = taskgen.write_manifest(specs, tmp_path / "m.arrow", registry=registry)
    assert table["family"].to_pylist() == ["haiku_linear_regression"] * 3
    task = taskgen.build_task(specs[0], registry=registry)
    losses = adam_losses(task, 200, 1e-2)
    assert loss_decreased(losses)

