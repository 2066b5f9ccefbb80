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


def _estimates(task, kind, n_trunc, n_slots, sigma, theta, difference="value"):
    lopt, fns = tiny_lopt(), TaskFns.of(task)
    settings = EstimatorSettings(kind=kind, sigma=sigma, unroll=UnrollSettings(truncation=T, valid_every=0),
                                 difference=difference)
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


@pytest.mark.parametrize("kind,n_trunc", [("pes", 3), ("nres", 3), ("es", 1)])
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


@pytest.mark.parametrize("meta_loss_from, reset", [(0, True), (60, False)])
def test_a_diverged_problem_is_kept_to_its_horizon_under_a_late_meta_loss(meta_loss_from, reset):
    """Reset at once when every step counts; under ``meta_loss_from`` it runs on, frozen, so its late steps score
    ``loss_clip`` instead of being hidden by a fresh problem."""
    from taskgen import build_task

    tasks = [build_task(s) for s in small_quadratic_specs(2, dims=3)]
    lopt, fns = tiny_lopt(), TaskFns.of(tasks[0])
    theta = _theta(log_lr=1.5, mom=-10.0)  # diverges within the first truncation
    settings = EstimatorSettings(sigma=0.01, unroll=UnrollSettings(truncation=30, valid_every=0, loss_clip=20.0,
                                                                   meta_loss_from=meta_loss_from))
    data, axes = slot_data(tasks, settings.unroll.splits_needed(True))
    state = init_estimator_state(theta, fns, lopt, 2)
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    horizons = np.full(2, 90, np.int32)
    reset_now = np.ones(2, bool)
    for k in range(3):
        g, state, stats, _ = run_estimator(theta, state, data, axes, reset_now, keys, horizons,
                                           jax.random.PRNGKey(k), fns=fns, lopt=lopt, settings=settings)
        reset_now = np.zeros(2, bool)
        if k == 0:
            assert bool(np.all(state.particles.diverged))
            assert bool(np.all(stats["done"])) == reset
    if not reset:  # steps 60-89 counted, every one scoring loss_clip
        assert int(stats["clipped"]) == int(stats["counted_steps"]) == 2 * 2 * 30
        assert float(stats["meta_loss"]) == pytest.approx(20.0)
        assert bool(np.all(stats["done"]))


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


def test_a_truncation_before_meta_loss_from_trains_but_gives_no_signal(task):
    """Slots whose truncation lies wholly before ``meta_loss_from`` advance their problems, count as not trained
    and add nothing to the meta-gradient; once the counted steps start, the estimate is the usual one."""
    lopt, fns = tiny_lopt(), TaskFns.of(task)
    theta = _theta()
    settings = EstimatorSettings(sigma=0.01, unroll=UnrollSettings(truncation=T, valid_every=0, meta_loss_from=T))
    data, axes = slot_data([task] * 2, settings.unroll.splits_needed(True))
    state = init_estimator_state(theta, fns, lopt, 2)
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    horizons = np.full(2, 4 * T, np.int32)
    g, state, stats, _ = run_estimator(theta, state, data, axes, np.ones(2, bool), keys, horizons,
                                       jax.random.PRNGKey(1), fns=fns, lopt=lopt, settings=settings)
    assert int(stats["trained"]) == 0 and int(stats["counted_steps"]) == 0
    assert int(stats["active_steps"]) == 2 * 2 * T  # the problems trained all the same
    assert all(float(jnp.abs(v).max()) == 0.0 for v in jax.tree_util.tree_leaves(g))
    assert np.asarray(state.particles.step).tolist() == [[T, T], [T, T]]
    g, state, stats, _ = run_estimator(theta, state, data, axes, np.zeros(2, bool), keys, horizons,
                                       jax.random.PRNGKey(2), fns=fns, lopt=lopt, settings=settings)
    assert int(stats["trained"]) == 2 and int(stats["counted_steps"]) == int(stats["active_steps"]) == 2 * 2 * T
    assert any(float(jnp.abs(v).max()) > 0.0 for v in jax.tree_util.tree_leaves(g))


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


# ---------------------------------------------------------------- truncated backprop and the hybrid


def test_the_sign_of_the_loss_difference_estimates_the_gradient_direction(task):
    """ES with ``difference="sign"``: each slot gives ``ε sign(L+ − L−) / σ``, whose expectation is ``√(2/π)`` times
    the unit gradient (for small σ, ``L+ − L− ≈ 2 εᵀg``); 8192 slots land on it, whatever the gradient's size."""
    theta = _theta()
    est, stats, settings = _estimates(task, "es", 1, n_slots=8192, sigma=0.01, theta=theta, difference="sign")
    assert int(stats["nan_grads"]) == 0
    fd = _fd(task, theta, 1, settings)
    norm = np.sqrt(sum(v * v for v in fd.values()))
    for name, ref in fd.items():
        assert abs(float(est[name]) - np.sqrt(2 / np.pi) * ref / norm) < 0.05, (name, float(est[name]), ref / norm)
    with pytest.raises(ValueError, match="unknown loss difference 'rank'; use one of value, sign"):
        EstimatorSettings(difference="rank")


def _one_call(task, theta, state, reset, settings, n_slots=2, key=1):
    """One jitted :func:`estimate` call (no donation, so ``state`` can be reused)."""
    from lopt_trainer.meta.estimators import estimate

    lopt, fns = tiny_lopt(), TaskFns.of(task)
    data, axes = slot_data([task] * n_slots, settings.unroll.splits_needed(True))
    f = jax.jit(functools.partial(estimate, fns=fns, lopt=lopt, settings=settings, data_axes=axes))
    keys = jax.random.split(jax.random.PRNGKey(7), n_slots)
    return f(theta, state, data, jnp.full(n_slots, reset), keys, jnp.full(n_slots, 4 * T, jnp.int32),
             jax.random.PRNGKey(key))


@pytest.mark.parametrize("truncation_index", [0, 1])
def test_backprop_gradient_matches_finite_differences_of_the_truncated_meta_loss(task, truncation_index):
    """The backprop estimate is the exact gradient of the truncation's meta-loss, the carried inner state held
    fixed: compare with central differences of that same meta-loss (same state, same batches)."""
    settings = EstimatorSettings(kind="backprop", unroll=UnrollSettings(truncation=T, valid_every=0))
    theta = _theta()
    lopt, fns = tiny_lopt(), TaskFns.of(task)
    state = init_estimator_state(theta, fns, lopt, 2)
    if truncation_index:  # a second truncation: the state carried from the first one
        _, state, _ = _one_call(task, theta, state, True, settings)
    reset = truncation_index == 0
    grad, _, stats = _one_call(task, theta, state, reset, settings)
    assert int(stats["nan_grads"]) == 0 and int(stats["active_steps"]) == 2 * T
    h = 1e-2
    for name in theta:
        up = _one_call(task, dict(theta, **{name: theta[name] + h}), state, reset, settings)[2]["meta_loss"]
        dn = _one_call(task, dict(theta, **{name: theta[name] - h}), state, reset, settings)[2]["meta_loss"]
        fd = float((up - dn) / (2 * h))
        assert abs(float(grad[name]) - fd) <= 2e-2 * abs(fd) + 1e-5, (name, float(grad[name]), fd)


def test_backprop_slot_gradients_are_clipped(task):
    theta = _theta()
    lopt, fns = tiny_lopt(), TaskFns.of(task)
    state = init_estimator_state(theta, fns, lopt, 2)
    free = EstimatorSettings(kind="backprop", unroll=UnrollSettings(truncation=T, valid_every=0))
    big = float(jnp.sqrt(sum(jnp.square(x) for x in jax.tree_util.tree_leaves(_one_call(task, theta, state, True,
                                                                                         free)[0]))))
    clipped = _one_call(task, theta, state, True, EstimatorSettings(kind="backprop", bp_clip=big / 10,
                                                                   unroll=free.unroll))[0]
    norm = float(jnp.sqrt(sum(jnp.square(x) for x in jax.tree_util.tree_leaves(clipped))))
    # every slot's gradient is cut to norm big/10 before the mean over slots (which can only be shorter)
    assert big > 0 and 0 < norm <= big / 10 * (1 + 1e-5)
    from lopt_trainer.meta.estimators.compute import _clip_norm

    np.testing.assert_allclose(np.asarray(_clip_norm(jnp.array([3.0, 4.0]), 1.0)), [0.6, 0.8], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(_clip_norm(jnp.array([3.0, 4.0]), 10.0)), [3.0, 4.0])


def test_inverse_variance_weights_follow_the_measured_variances():
    from lopt_trainer.meta.estimators import inverse_variance_combine

    rng = np.random.default_rng(0)
    n, segments = 64, np.array([0, 0, 0, 1, 1, 2])
    truth = np.array([1.0, -2.0, 0.5, 3.0, 1.0, -1.0], np.float32)
    # block 0: `a` is 10x noisier than `b`; block 1: `b` is 10x noisier; block 2: equally noisy
    sd_a = np.array([10, 10, 10, 1, 1, 1], np.float32)
    sd_b = np.array([1, 1, 1, 10, 10, 1], np.float32)
    a = truth + sd_a * rng.standard_normal((n, 6)).astype(np.float32)
    b = truth + sd_b * rng.standard_normal((n, 6)).astype(np.float32)
    combined, w = inverse_variance_combine(jnp.asarray(a), jnp.asarray(b), jnp.ones(n, bool), segments)
    w = np.asarray(w)
    # the weight of `a` is v_b / (v_a + v_b) with the measured variances of the slot means, block-averaged
    def v(x, idx):
        return np.mean(np.var(x[:, idx], axis=0, ddof=1) / n)
    for block in range(3):
        idx = segments == block
        want = v(b, idx) / (v(a, idx) + v(b, idx))
        assert w[block] == pytest.approx(want, rel=1e-4)
    assert w[0] < 0.05 and w[1] > 0.95 and 0.2 < w[2] < 0.8
    wa = w[segments]
    np.testing.assert_allclose(np.asarray(combined), wa * a.mean(0) + (1 - wa) * b.mean(0), rtol=1e-5, atol=1e-6)


def test_inverse_variance_combine_skips_rows_that_are_not_ok():
    from lopt_trainer.meta.estimators import inverse_variance_combine

    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((5, 4)).astype(np.float32), rng.standard_normal((5, 4)).astype(np.float32)
    segments = np.array([0, 0, 1, 1])
    ok = np.array([True, True, False, True, True])
    poisoned = a.copy()
    poisoned[2] = np.nan
    got = inverse_variance_combine(jnp.asarray(poisoned), jnp.asarray(b), jnp.asarray(ok), segments)
    want = inverse_variance_combine(jnp.asarray(a[ok]), jnp.asarray(b[ok]), jnp.ones(4, bool), segments)
    for x, y in zip(got, want):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6)
    # fewer than two usable rows: no variance to measure, equal weights
    _, w = inverse_variance_combine(jnp.asarray(a), jnp.asarray(b), jnp.asarray([True] + [False] * 4), segments)
    np.testing.assert_array_equal(np.asarray(w), 0.5)


def test_hybrid_skips_non_finite_slots_and_counts_them(task):
    theta = _theta()
    lopt, fns = tiny_lopt(), TaskFns.of(task)
    state = init_estimator_state(theta, fns, lopt, 3)
    settings = EstimatorSettings(kind="hybrid", sigma=1e-30, unroll=UnrollSettings(truncation=T, valid_every=0))
    grad, _, stats = _one_call(task, theta, state, True, settings, n_slots=3)
    assert int(stats["nan_grads"]) == 3  # the PES half divides by σ² = 0
    assert all(float(v) == 0.0 for v in jax.tree_util.tree_leaves(grad))
    ok = EstimatorSettings(kind="hybrid", sigma=0.01, unroll=settings.unroll)
    grad, _, stats = _one_call(task, theta, state, True, ok, n_slots=3)
    assert int(stats["nan_grads"]) == 0 and np.asarray(stats["pes_weight"]).shape == (2,)
    assert all(np.isfinite(float(v)) for v in jax.tree_util.tree_leaves(grad))


def test_program_caches_stay_within_the_memory_map_budget(monkeypatch):
    """Programs are weighed by the memory mappings their compile added; past the process-wide budget the least
    recently used go (the kernel's vm.max_map_count otherwise kills a long run: backprop programs map ~2,500)."""
    from lopt_trainer.common import program_cache as pc

    counts = iter(range(0, 10_000, 300))  # every compile appears to add 300 mappings
    monkeypatch.setattr(pc, "map_count", lambda: next(counts))
    monkeypatch.setattr(pc, "MAP_BUDGET", sum(c.maps for c in pc._CACHES) + 1000)
    cache = pc.ProgramCache(100)
    f = lambda: jax.jit(lambda x: x + 1)  # noqa: E731
    for n in range(1, 8):
        cache.get(("p", n), f, (jnp.zeros(n),))
    assert len(cache) == 3 and cache.maps == 900  # 3 × 300 ≤ the 1000 left in the budget
    assert cache.lookup(("p", 7), (jnp.zeros(7),)) is not None  # the newest stays
    assert cache.lookup(("p", 1), (jnp.zeros(1),)) is None
    pc._CACHES.remove(cache)
