"""Tests of the ``twod`` family: config space, determinism, the functions at known points, noise, training."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from families.base import SPLITS, ConfigError
from families.sampling import SpecRNG
from families.twod import DOMAINS, F_MIN, FUNCTIONS, PROBLEMS, TwoDFamily, bowl_matrix
from taskgen.spec import TaskSpec
from tests.family_checks import adam_losses, check_finite_loss_and_grad, loss_decreased, param_count, sample_specs

FAMILY = TwoDFamily()


def _config(problem="rosenbrock", **overrides):
    config = {"problem": problem, "noise_std": 0.0, "start_box": [list(iv) for iv in DOMAINS[problem]]}
    if problem == "bowl":
        config.update(cond=4.0, angle=0.0)
    config.update(overrides)
    return config


def _spec(config, seed=3):
    FAMILY.validate(config)
    return TaskSpec.create(FAMILY.name, FAMILY.version, seed, config)


def _f(problem, x, y):
    return float(FUNCTIONS[problem](jnp.asarray([x, y], jnp.float32)))


@pytest.fixture(scope="module")
def specs():
    return sample_specs(FAMILY, 50)


# ----------------------------------------------------------------------------------------------- general


def test_sampling_is_deterministic_and_valid():
    configs = []
    for seed in range(300):
        a, b = FAMILY.sample(SpecRNG(seed)), FAMILY.sample(SpecRNG(seed))
        assert a == b
        FAMILY.validate(a)
        spec = TaskSpec.create(FAMILY.name, FAMILY.version, seed, a)
        assert TaskSpec.from_json(spec.to_json()).to_json() == spec.to_json()
        configs.append(a)
    assert {c["problem"] for c in configs} == set(PROBLEMS)
    assert 0.4 < np.mean([c["noise_std"] > 0 for c in configs]) < 0.6
    bowls = [c for c in configs if c["problem"] == "bowl"]
    assert {c["angle"] for c in bowls} <= {0.0, math.pi / 4, math.pi / 3}
    assert all(0.01 <= c["cond"] <= 100 for c in bowls)
    noises = [c["noise_std"] for c in configs if c["noise_std"] > 0]
    assert all(0.01 <= n <= 10 for n in noises)


@pytest.mark.parametrize("bad, field", [
    ({**_config(), "problem": "himmelblau"}, "problem"),
    ({k: v for k, v in _config("bowl").items() if k != "cond"}, "cond"),
    (_config(cond=2.0), "cond"),
    (_config("bowl", cond=0.001), "cond"),
    (_config(noise_std=11.0), "noise_std"),
    (_config(start_box=[[1.0, 0.0], [0.0, 1.0]]), "start_box[0]"),
    (_config(start_box=[[0.0, 1.0]]), "start_box"),
    (_config(extra=True), "extra"),
])
def test_validate_names_the_bad_field(bad, field):
    with pytest.raises(ConfigError) as err:
        FAMILY.validate(bad)
    assert err.value.field == field


def test_cost_describe_variant_and_determinism(specs):
    for spec in specs:
        task = FAMILY.build(spec)
        params = task.init(task.init_key())
        assert FAMILY.cost(spec.config).params == param_count(params) == 2
        assert FAMILY.cost(spec.config).flops_per_step > 0
        assert params["xy"].shape == (2,) and params["xy"].dtype == jnp.float32
        assert FAMILY.describe(spec.config) == {"dataset": "", "input_shape": [2], "batch_size": 1}
        assert FAMILY.variant(spec.config) == "twod/" + spec.config["problem"]
        again = FAMILY.build(TaskSpec.from_json(spec.to_json()))
        np.testing.assert_array_equal(params["xy"], again.init(again.init_key())["xy"])
        for s in SPLITS:
            assert task.batch(s, jax.random.PRNGKey(0)) is task.splits[s]
    for problem in PROBLEMS:
        check_finite_loss_and_grad(FAMILY.build(_spec(_config(problem))))


def test_start_point_is_drawn_from_the_box():
    task = FAMILY.build(_spec(_config("branin")))
    starts = np.stack([task.init(jax.random.PRNGKey(i))["xy"] for i in range(50)])
    assert np.all(starts[:, 0] >= -5) and np.all(starts[:, 0] <= 10)
    assert np.all(starts[:, 1] >= 0) and np.all(starts[:, 1] <= 15)
    assert np.ptp(starts[:, 0]) > 5
    pinned = FAMILY.build(_spec(_config("line_minimum", start_box=[[2.0, 2.0], [-1.0, -1.0]])))
    np.testing.assert_array_equal(pinned.init(pinned.init_key())["xy"], [2.0, -1.0])


def test_equal_problems_share_functions_and_data_is_an_argument():
    a = FAMILY.build(_spec(_config("bowl", cond=2.0, angle=0.0, noise_std=0.0), seed=1))
    b = FAMILY.build(_spec(_config("bowl", cond=50.0, angle=math.pi / 3, noise_std=1.0), seed=2))
    assert a.static_key == b.static_key
    for name in ("init", "loss", "sample_batch", "normalizer"):
        assert getattr(a, name) is getattr(b, name)
    p = {"xy": jnp.asarray([1.0, 0.5], jnp.float32)}
    k = jax.random.PRNGKey(0)
    assert float(a.loss(p, a.splits["train"], k)) != float(b.loss(p, b.splits["train"], k))
    assert FAMILY.build(_spec(_config("beale"))).static_key != a.static_key
    assert FAMILY.build(_spec(_config("bowl", start_box=[[0.0, 1.0], [0.0, 1.0]]))).static_key != a.static_key


# ------------------------------------------------------------------------------------------- functions


def test_functions_at_known_points():
    assert _f("rosenbrock", 1.0, 1.0) == 0.0
    assert _f("rosenbrock", 0.0, 0.0) == 1.0
    assert _f("beale", 3.0, 0.5) == 0.0
    assert _f("matyas", 0.0, 0.0) == 0.0
    assert abs(_f("ackley", 0.0, 0.0)) < 1e-5
    assert _f("ackley", 1.0, 1.0) > 3.0
    for x, y in ((-math.pi, 12.275), (math.pi, 2.275), (9.42478, 2.475)):
        assert abs(_f("branin", x, y) - 0.397887) < 1e-4
    assert abs(_f("styblinski_tang", -2.903534, -2.903534) - (-39.16617 * 2)) < 1e-3
    assert abs(_f("michalewicz", 2.20290552, math.pi / 2) - (-1.8013)) < 1e-4
    assert abs(_f("logsumexp", 0.0, 0.0) - math.log(3)) < 1e-6
    assert _f("line_minimum", 2.5, 2.5) == 0.0 and _f("line_minimum", 1.0, 3.0) == 4.0
    assert float(jnp.asarray([1.0, 2.0]) @ bowl_matrix(3.0, 0.0) @ jnp.asarray([1.0, 2.0])) == 3.0 + 4.0


def test_known_minima_are_minima():
    """No point on a grid over each domain beats the documented f_min (up to float32 error)."""
    for problem, fn in FUNCTIONS.items():
        (xlo, xhi), (ylo, yhi) = DOMAINS[problem]
        xs, ys = np.meshgrid(np.linspace(xlo, xhi, 301), np.linspace(ylo, yhi, 301))
        grid = jnp.asarray(np.stack([xs.ravel(), ys.ravel()], 1), jnp.float32)
        values = np.asarray(jax.vmap(fn)(grid))
        assert values.min() >= F_MIN[problem] - 1e-4 * max(1.0, abs(F_MIN[problem])), problem
        assert values.min() <= F_MIN[problem] + 0.05 * max(1.0, abs(F_MIN[problem])), problem


def test_gradients_are_finite_at_the_minima():
    for problem, point in (("ackley", (0.0, 0.0)), ("rosenbrock", (1.0, 1.0)), ("beale", (3.0, 0.5))):
        g = jax.grad(FUNCTIONS[problem])(jnp.asarray(point, jnp.float32))
        assert np.all(np.isfinite(g)) and np.allclose(g, 0.0, atol=1e-4), (problem, g)


def test_bowl_condition_and_angle():
    m = np.asarray(bowl_matrix(25.0, math.pi / 4), np.float64)
    np.testing.assert_allclose(np.linalg.eigvalsh(m), [1.0, 25.0], rtol=1e-5)
    np.testing.assert_allclose(m, m.T)
    w, v = np.linalg.eigh(m)
    np.testing.assert_allclose(abs(v[:, 1] @ np.asarray([1.0, -1.0]) / math.sqrt(2)), 1.0, rtol=1e-5)


def test_line_minimum_set_is_a_line():
    f = FUNCTIONS["line_minimum"]
    ts = jnp.linspace(-50.0, 50.0, 101)
    on_line = jnp.stack([ts, ts], 1)
    assert np.all(np.asarray(jax.vmap(f)(on_line)) == 0.0)
    assert np.all(np.asarray(jax.vmap(jax.grad(f))(on_line)) == 0.0)
    # Off the line the value is the squared distance to it, times 2: every minimum lies on x = y.
    off = on_line + jnp.asarray([0.3, -0.3])
    np.testing.assert_allclose(np.asarray(jax.vmap(f)(off)), 0.36, rtol=1e-5)
    # The Hessian is singular exactly along (1, 1): a whole line of minima, not an isolated point.
    h = np.asarray(jax.hessian(f)(jnp.asarray([0.7, -0.2])))
    w, v = np.linalg.eigh(h)
    np.testing.assert_allclose(w, [0.0, 4.0], atol=1e-6)
    np.testing.assert_allclose(abs(v[:, 0] @ np.asarray([1.0, 1.0])) / math.sqrt(2), 1.0, rtol=1e-6)
    # Gradient descent from different starts stops at different points of the line (start-dependent minimum).
    task = FAMILY.build(_spec(_config("line_minimum")))
    @jax.jit
    def descend(p, data):
        def step(p, _):
            g = jax.grad(task.loss)(p, data, jax.random.PRNGKey(0))
            return jax.tree_util.tree_map(lambda a, b: a - 0.1 * b, p, g), None
        return jax.lax.scan(step, p, None, length=100)[0]

    ends = []
    for i in range(5):
        ends.append(np.asarray(descend(task.init(jax.random.PRNGKey(i)), task.splits["train"])["xy"]))
        np.testing.assert_allclose(ends[-1][0], ends[-1][1], atol=1e-4)
    assert np.ptp([e[0] for e in ends]) > 1.0


def test_gradient_noise_leaves_the_value_and_perturbs_the_gradient():
    clean = FAMILY.build(_spec(_config("rosenbrock", noise_std=0.0)))
    noisy = FAMILY.build(_spec(_config("rosenbrock", noise_std=2.5)))
    assert clean.loss is noisy.loss  # the noise level is data
    p = {"xy": jnp.asarray([0.3, -0.4], jnp.float32)}
    key = jax.random.PRNGKey(9)
    assert float(noisy.loss(p, noisy.splits["train"], key)) == float(clean.loss(p, clean.splits["train"], key))
    g_clean = jax.grad(clean.loss)(p, clean.splits["train"], key)["xy"]
    g_noisy = jax.grad(noisy.loss)(p, noisy.splits["train"], key)["xy"]
    np.testing.assert_allclose(g_noisy - g_clean, 2.5 * jax.random.normal(key, (2,)), rtol=1e-5, atol=1e-5)
    other = jax.grad(noisy.loss)(p, noisy.splits["train"], jax.random.PRNGKey(10))["xy"]
    assert not np.allclose(other, g_noisy)
    np.testing.assert_array_equal(jax.grad(clean.loss)(p, clean.splits["train"], jax.random.PRNGKey(10))["xy"],
                                  g_clean)


def test_normalizer():
    for problem in PROBLEMS:
        task = FAMILY.build(_spec(_config(problem)))
        assert float(task.normalizer(F_MIN[problem])) == 0.0
        assert float(task.normalizer(jnp.nan)) == 10.0
        assert float(task.normalizer(F_MIN[problem] + 1e9)) == 10.0
        p = task.init(task.init_key())
        start = float(task.normalizer(task.loss(p, task.splits["train"], jax.random.PRNGKey(0))))
        assert 0.0 <= start <= 10.0


def test_adam_reduces_the_loss_on_nearly_every_sampled_task(specs):
    results = [loss_decreased(adam_losses(FAMILY.build(spec), steps=200, lr=1e-2)) for spec in specs]
    failed = [s.task_id for s, ok in zip(specs, results) if not ok]
    print("adam did not reduce the loss of:", failed)
    assert np.mean(results) >= 0.9, failed


def test_optax_drop_in():
    """A twod task is an ordinary pytree objective: any optax optimizer trains it."""
    task = FAMILY.build(_spec(_config("matyas")))
    opt = optax.sgd(1e-2, momentum=0.9)
    p = task.init(task.init_key())
    state = opt.init(p)
    first = float(task.loss(p, task.splits["train"], jax.random.PRNGKey(0)))
    step = jax.jit(lambda p, s, d, k: _sgd_step(task, opt, p, s, d, k))
    for i in range(200):
        p, state = step(p, state, task.splits["train"], jax.random.PRNGKey(i))
    assert float(task.loss(p, task.splits["train"], jax.random.PRNGKey(0))) < first


def _sgd_step(task, opt, p, s, data, key):
    g = jax.grad(task.loss)(p, task.sample_batch(data, key), key)
    u, s = opt.update(g, s, p)
    return optax.apply_updates(p, u), s
