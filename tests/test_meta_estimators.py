"""PES/ES estimators: agreement with finite differences, NaN containment, NaN-gradient zeroing."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lopt_trainer.meta.estimators import EstimatorSettings, init_estimator_state, run_estimator
from lopt_trainer.meta.task_sampler import slot_data
from lopt_trainer.meta.truncation import TaskFns, UnrollSettings, fresh_problem, unroll
from tests.meta_helpers import small_quadratic_specs, tiny_lopt

T = 5


@pytest.fixture(scope="module")
def task():
    from taskgen import build_task

    return build_task(small_quadratic_specs(1, dims=3)[0])


def _theta(log_lr=-2.5, mom=0.5):
    return {"log_lr": jnp.float32(log_lr), "mom_logit": jnp.float32(mom)}


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _objective(theta, task, n_trunc, settings):
    """Sum over truncations of the mean per-step meta-loss of one unperturbed run (the PES target)."""
    lopt, fns = tiny_lopt(), TaskFns.of(task)
    ps = fresh_problem(theta, fns, lopt, jax.random.PRNGKey(7), T * n_trunc)
    data = {s: task.splits[s] for s in settings.splits_needed(True)}
    total = 0.0
    for k in range(n_trunc):
        ps, meta, active, _ = unroll(theta, ps, data, jax.random.PRNGKey(k), fns, lopt, settings)
        total = total + jnp.sum(meta) / jnp.sum(active)
    return total


def _estimates(task, kind, n_trunc, n_slots, sigma, theta):
    lopt, fns = tiny_lopt(), TaskFns.of(task)
    settings = EstimatorSettings(kind=kind, sigma=sigma, unroll=UnrollSettings(truncation=T, valid_every=0))
    data, axes = slot_data([task] * n_slots, settings.unroll.splits_needed(True))
    state = init_estimator_state(theta, fns, lopt, n_slots)
    init_keys = jnp.tile(jax.random.PRNGKey(7)[None], (n_slots, 1))
    horizons = np.full(n_slots, T * n_trunc, np.int32)
    total = None
    for k in range(n_trunc):
        reset = np.full(n_slots, k == 0)
        g, state, stats, _ = run_estimator(theta, state, data, axes, reset, init_keys, horizons,
                                           jax.random.PRNGKey(100 + k), fns=fns, lopt=lopt, settings=settings)
        total = g if total is None else jax.tree_util.tree_map(jnp.add, total, g)
    return total, stats, settings


def _fd(task, theta, n_trunc, settings, h=1e-2):
    out = {}
    for name in theta:
        up = dict(theta, **{name: theta[name] + h})
        dn = dict(theta, **{name: theta[name] - h})
        out[name] = float((_objective(up, task, n_trunc, settings.unroll)
                           - _objective(dn, task, n_trunc, settings.unroll)) / (2 * h))
    return out


@pytest.mark.parametrize("kind,n_trunc", [("pes", 3), ("es", 1)])
def test_gradient_matches_finite_differences(task, kind, n_trunc):
    theta = _theta()
    est, stats, settings = _estimates(task, kind, n_trunc, n_slots=8192, sigma=0.01, theta=theta)
    assert int(stats["nan_grads"]) == 0 and int(stats["clipped"]) == 0
    fd = _fd(task, theta, n_trunc, settings)
    scale = max(abs(v) for v in fd.values())
    for name, ref in fd.items():
        assert abs(float(est[name]) - ref) < 0.1 * scale + 1e-4, (name, float(est[name]), ref)


def test_diverging_tasks_are_contained():
    from taskgen import build_task

    specs = small_quadratic_specs(4, dims=3)
    tasks = [build_task(s) for s in specs]
    lopt, fns = tiny_lopt(), TaskFns.of(tasks[0])
    theta = _theta(log_lr=1.5, mom=-10.0)  # lr ≈ 4.5: diverges on every quadratic here
    settings = EstimatorSettings(sigma=0.01, unroll=UnrollSettings(truncation=30, valid_every=10, loss_clip=20.0))
    data, axes = slot_data(tasks, settings.unroll.splits_needed(True))
    state = init_estimator_state(theta, fns, lopt, 4)
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    g, state, stats, _ = run_estimator(theta, state, data, axes, np.ones(4, bool), keys, np.full(4, 100, np.int32),
                                       jax.random.PRNGKey(1), fns=fns, lopt=lopt, settings=settings)
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree_util.tree_leaves(g))
    assert int(stats["clipped"]) > 0
    assert bool(np.all(stats["done"]))
    assert float(stats["meta_loss"]) <= 20.0
    assert bool(np.all(state.particles.diverged))
    # Frozen parameters of a diverged particle stay finite (the non-finite update was never applied).
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree_util.tree_leaves(state.particles.params))


def test_nan_meta_gradients_are_zeroed_and_counted(task):
    lopt, fns = tiny_lopt(), TaskFns.of(task)
    theta = _theta()
    settings = EstimatorSettings(sigma=1e-30, unroll=UnrollSettings(truncation=T, valid_every=0))
    data, axes = slot_data([task] * 3, settings.unroll.splits_needed(True))
    state = init_estimator_state(theta, fns, lopt, 3)
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    g, _, stats, _ = run_estimator(theta, state, data, axes, np.ones(3, bool), keys, np.full(3, 50, np.int32),
                                   jax.random.PRNGKey(1), fns=fns, lopt=lopt, settings=settings)
    assert int(stats["nan_grads"]) == 3
    assert all(float(v) == 0.0 for v in jax.tree_util.tree_leaves(g))


def test_compiled_programs_are_bounded_and_rebuilt_identically(task, monkeypatch):
    """The program cache keeps at most its size of programs; a program evicted and rebuilt gives the same bits."""
    from lopt_trainer.meta import estimators

    theta = _theta()
    first, _, _ = _estimates(task, "pes", 1, 2, 0.01, theta)
    monkeypatch.setattr(estimators.PROGRAMS, "size", 2)
    for sigma in (0.02, 0.03):  # new draws programs push the first ones out
        _estimates(task, "pes", 1, 2, sigma, theta)
        assert len(estimators.PROGRAMS) <= 2
    again, _, _ = _estimates(task, "pes", 1, 2, 0.01, theta)
    for a, b in zip(jax.tree_util.tree_leaves(first), jax.tree_util.tree_leaves(again)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
