"""Tests of the ``quadratic`` family: config space, determinism, cost, sharing, the objective, training."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from families.base import SPLITS, ConfigError
from families.quadratic import MAX_DIMS, QuadraticFamily, build_matrix, eigenbasis
from families.sampling import SpecRNG
from taskgen.spec import TaskSpec
from tests.family_checks import N_SPECS as FAMILY_SPECS
from tests.family_checks import adam_losses, check_finite_loss_and_grad, loss_decreased, param_count, sample_specs

FAMILY = QuadraticFamily()


def _spec(config, seed=7):
    FAMILY.validate(config)
    return TaskSpec.create(FAMILY.name, FAMILY.version, seed, config)


def _config(**overrides):
    config = {"dims": 5, "matrix": {"kind": "linspace_eigen", "min": 1.0, "max": 10.0}, "init": "normal",
              "output": "identity", "loss_scale": 1.0, "noise_std": 0.0}
    config.update(overrides)
    return config


N_SPECS = FAMILY_SPECS


@pytest.fixture(scope="module")
def specs():
    return sample_specs(FAMILY, N_SPECS)


@pytest.fixture(scope="module")
def tasks(specs):
    return [FAMILY.build(spec) for spec in specs]


# ----------------------------------------------------------------------------------------------- general


def test_sampling_is_deterministic_and_valid():
    for seed in range(200):
        a, b = FAMILY.sample(SpecRNG(seed)), FAMILY.sample(SpecRNG(seed))
        assert a == b
        FAMILY.validate(a)
        spec = TaskSpec.create(FAMILY.name, FAMILY.version, seed, a)
        assert TaskSpec.from_json(spec.to_json()).to_json() == spec.to_json()


def test_sampling_covers_the_config_space():
    configs = [FAMILY.sample(SpecRNG(seed)) for seed in range(400)]
    assert {c["matrix"]["kind"] for c in configs} == {"normal", "uniform", "linspace_eigen", "logspace_eigen"}
    assert {c["init"] for c in configs} == {"normal", "uniform"}
    assert {c["output"] for c in configs} == {"identity", "log"}
    noisy = np.mean([c["noise_std"] > 0 for c in configs])
    assert 0.4 < noisy < 0.6
    dims = [c["dims"] for c in configs]
    assert min(dims) <= 3 and max(dims) >= 500 and max(dims) <= MAX_DIMS
    scales = [c["loss_scale"] for c in configs]
    assert min(scales) < 1e-4 and max(scales) > 1e2
    for c in configs:
        m = c["matrix"]
        if m["kind"] == "uniform":
            assert -3 <= m["min"] <= 1 and m["min"] <= m["max"] <= m["min"] + 5 + 1e-6
        if m["kind"] == "linspace_eigen":
            assert 0.01 <= m["min"] <= 50 and m["min"] <= m["max"] <= m["min"] + 100 + 1e-6


@pytest.mark.parametrize("bad, field", [
    (_config(dims=1), "dims"),
    (_config(dims=MAX_DIMS + 1), "dims"),
    (_config(init="zeros"), "init"),
    (_config(output="sqrt"), "output"),
    (_config(loss_scale=1e4), "loss_scale"),
    (_config(noise_std=-0.1), "noise_std"),
    (_config(matrix={"kind": "linspace_eigen", "min": 5.0, "max": 1.0}), "matrix.max"),
    (_config(matrix={"kind": "cauchy"}), "matrix.kind"),
    (_config(matrix={"kind": "normal", "mean": 0.0}), "matrix.std"),
    (_config(extra=1), "extra"),
])
def test_validate_names_the_bad_field(bad, field):
    with pytest.raises(ConfigError) as err:
        FAMILY.validate(bad)
    assert err.value.field == field


def test_cost_matches_params_and_describe(specs, tasks):
    for spec, task in zip(specs, tasks):
        cost = FAMILY.cost(spec.config)
        params = jax.eval_shape(task.init, task.init_key())
        assert cost.params == param_count(params) == spec.config["dims"]
        assert params["x"].shape == (spec.config["dims"],) and params["x"].dtype == jnp.float32
        assert cost.flops_per_step >= 4 * spec.config["dims"] ** 2
        assert FAMILY.describe(spec.config) == {"dataset": "", "input_shape": [spec.config["dims"]],
                                                "batch_size": 1}
        assert FAMILY.variant(spec.config) == "quadratic/" + spec.config["matrix"]["kind"]
        assert task.batch_size == 1


def test_build_is_deterministic(specs):
    for spec in specs[:6]:
        t1, t2 = FAMILY.build(spec), FAMILY.build(TaskSpec.from_json(spec.to_json()))
        for s in SPLITS:
            for k in t1.splits[s]:
                np.testing.assert_array_equal(np.asarray(t1.splits[s][k]), np.asarray(t2.splits[s][k]))
        np.testing.assert_array_equal(t1.init(t1.init_key())["x"], t2.init(t2.init_key())["x"])
        key = jax.random.PRNGKey(3)
        batch = t1.batch("train", key)
        assert float(t1.loss(t1.init(t1.init_key()), batch, key)) == float(t2.loss(t2.init(t2.init_key()), batch, key))


def test_finite_loss_and_grad(tasks):
    for task in tasks[:5]:
        check_finite_loss_and_grad(task)


def test_same_fixed_problem_in_every_split():
    task = FAMILY.build(_spec(_config()))
    for s in SPLITS:
        for k in ("A", "b", "noise_std"):
            np.testing.assert_array_equal(task.splits[s][k], task.splits["train"][k])
        assert task.batch(s, jax.random.PRNGKey(0)) is task.splits[s]


def test_equal_shapes_share_functions_and_data_is_not_closed_over():
    a = FAMILY.build(_spec(_config(matrix={"kind": "linspace_eigen", "min": 1.0, "max": 10.0}), seed=1))
    b = FAMILY.build(_spec(_config(matrix={"kind": "normal", "mean": 0.5, "std": 1.0}), seed=2))
    assert a.static_key == b.static_key
    for name in ("init", "loss", "sample_batch", "normalizer"):
        assert getattr(a, name) is getattr(b, name)
    assert not np.array_equal(a.splits["train"]["A"], b.splits["train"]["A"])
    # Different results from the same function on different data: the data really comes in as an argument.
    p = a.init(a.init_key())
    k = jax.random.PRNGKey(0)
    assert float(a.loss(p, a.batch("train", k), k)) != float(b.loss(p, b.batch("train", k), k))
    for fn in (a.init, a.loss, a.sample_batch, a.normalizer):
        for cell in getattr(fn, "__wrapped__", fn).__closure__ or ():
            assert np.size(cell.cell_contents) <= 1 or callable(cell.cell_contents)
    # Shape-changing fields do change the key.
    for change in (dict(dims=6), dict(output="log"), dict(noise_std=0.1), dict(init="uniform")):
        assert FAMILY.build(_spec(_config(**change))).static_key != a.static_key


# ------------------------------------------------------------------------------------------- objective


def test_loss_is_output_of_residual_times_scale():
    for output in ("identity", "log"):
        task = FAMILY.build(_spec(_config(output=output, loss_scale=0.25, dims=7)))
        data = task.splits["train"]
        x = task.init(jax.random.PRNGKey(5))["x"]
        a, b = np.asarray(data["A"], np.float64), np.asarray(data["b"], np.float64)
        r = np.sum((a @ np.asarray(x, np.float64) - b) ** 2)
        expected = (r if output == "identity" else np.log(r)) * 0.25
        got = float(task.loss({"x": x}, data, jax.random.PRNGKey(0)))
        np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_noise_on_matrix_comes_from_the_loss_key():
    clean = FAMILY.build(_spec(_config(noise_std=0.0)))
    noisy = FAMILY.build(_spec(_config(noise_std=0.5)))
    p = clean.init(clean.init_key())
    k1, k2 = jax.random.PRNGKey(1), jax.random.PRNGKey(2)
    assert float(clean.loss(p, clean.splits["train"], k1)) == float(clean.loss(p, clean.splits["train"], k2))
    l1 = float(noisy.loss(p, noisy.splits["train"], k1))
    assert l1 == float(noisy.loss(p, noisy.splits["train"], k1))
    assert l1 != float(noisy.loss(p, noisy.splits["train"], k2))
    rms = np.sqrt(np.mean(np.square(noisy.splits["train"]["A"])))
    np.testing.assert_allclose(float(noisy.splits["train"]["noise_std"]), 0.5 * rms, rtol=1e-5)


def test_qr_eigenbasis_is_deterministic_and_orthogonal():
    key = jax.random.PRNGKey(11)
    q1, q2 = np.asarray(eigenbasis(key, 40)), np.asarray(eigenbasis(key, 40))
    np.testing.assert_array_equal(q1, q2)
    np.testing.assert_allclose(q1.T @ q1, np.eye(40), atol=1e-5)
    assert not np.allclose(q1, np.asarray(eigenbasis(jax.random.PRNGKey(12), 40)))
    # A = Q diag(s) Qᵀ: symmetric, with exactly the configured spectrum, fixed by the seed.
    matrix = {"kind": "linspace_eigen", "min": 2.0, "max": 30.0}
    a1, a2 = np.asarray(build_matrix(matrix, 40, 5)), np.asarray(build_matrix(matrix, 40, 5))
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_allclose(a1, a1.T, atol=1e-4)
    np.testing.assert_allclose(np.linalg.eigvalsh(a1.astype(np.float64)), np.linspace(2.0, 30.0, 40), rtol=1e-4,
                               atol=1e-4)
    assert not np.allclose(a1, np.asarray(build_matrix(matrix, 40, 6)))
    log = np.asarray(build_matrix({"kind": "logspace_eigen", "max": 100.0}, 30, 5), np.float64)
    np.testing.assert_allclose(np.linalg.eigvalsh(log)[-1], 100.0, rtol=1e-4)
    np.testing.assert_allclose(np.linalg.eigvalsh(log)[0], 1e-5, atol=1e-4)


def test_matrix_kinds_follow_their_config():
    normal = np.asarray(build_matrix({"kind": "normal", "mean": 1.5, "std": 0.5}, 200, 3))
    assert abs(normal.mean() - 1.5) < 0.02 and abs(normal.std() - 0.5) < 0.02
    uniform = np.asarray(build_matrix({"kind": "uniform", "min": -2.0, "max": 1.0}, 200, 3))
    assert uniform.min() >= -2.0 and uniform.max() <= 1.0 and abs(uniform.mean() + 0.5) < 0.02


def test_normalizer_range():
    task = FAMILY.build(_spec(_config(loss_scale=0.01)))
    assert float(task.normalizer(0.0)) == 0.0
    assert float(task.normalizer(jnp.nan)) == 10.0 and float(task.normalizer(jnp.inf)) == 10.0
    p = task.init(task.init_key())
    start = float(task.normalizer(task.loss(p, task.splits["train"], jax.random.PRNGKey(0))))
    assert 1.0 < start <= 10.0
    log_task = FAMILY.build(_spec(_config(loss_scale=0.01, output="log")))
    # The same residual gives the same normalized value whatever the output function.
    log_start = float(log_task.normalizer(log_task.loss(p, log_task.splits["train"], jax.random.PRNGKey(0))))
    np.testing.assert_allclose(start, log_start, rtol=1e-4)


def _adam_success_rate(specs, tasks):
    results = []
    for spec, task in zip(specs, tasks):
        losses = adam_losses(task, steps=200, lr=1e-2)
        results.append(loss_decreased(losses))
        if results[-1]:
            first, last = np.mean(losses[:20]), np.mean(losses[-20:])
            assert float(task.normalizer(last)) <= float(task.normalizer(first)) + 1e-6
    failed = [s.task_id for s, ok in zip(specs, results) if not ok]
    print("adam did not reduce the loss of:", failed)
    return float(np.mean(results)), failed


def test_adam_reduces_the_loss_on_nearly_every_sampled_task(specs, tasks):
    rate, failed = _adam_success_rate(specs, tasks)
    assert rate >= 0.9, failed


@pytest.mark.slow
def test_adam_reduces_the_loss_on_nearly_every_sampled_task_many():
    specs = sample_specs(FAMILY, 100, salt="slow")
    rate, failed = _adam_success_rate(specs, [FAMILY.build(s) for s in specs])
    assert rate >= 0.9, failed
