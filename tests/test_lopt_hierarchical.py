"""Tests of the hierarchical learned optimizer's step, state and features."""

import dataclasses
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lopt_trainer.optimizer import features as F
from lopt_trainer.optimizer import hierarchical as H


def _params():
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
    return {
        "dense": {"kernel": jax.random.normal(k1, (6, 4)), "bias": jnp.zeros((4,))},
        "conv": jax.random.normal(k2, (3, 3, 2, 5)),
        "scale": jnp.float32(1.5),  # a 0-d tensor
        "vec": jax.random.normal(k3, (7,)),
    }


def _grads(params, seed):
    leaves, treedef = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    return treedef.unflatten([jax.random.normal(k, jnp.shape(l)) for k, l in zip(keys, leaves)])


def test_feature_counts_are_computed_from_config():
    cfg = H.LOptConfig()
    assert cfg.lstm_input_size == 52
    assert cfg.mlp_element_size == 23
    assert cfg.mlp_tensor_size == 31
    assert cfg.mlp_input_size == 54
    assert cfg.mlp_output_size == 18
    small = dataclasses.replace(cfg, decays=(0.9, 0.99), from_mlp_size=4, to_mlp_size=3)
    assert small.mlp_element_size == 3 + 4 * 2
    assert small.lstm_input_size == 52 - 12
    assert small.mlp_input_size == small.mlp_element_size + 11 + 3 + 3
    theta = H.init(jax.random.PRNGKey(0), small)
    params = _params()
    updates, _ = H.update(theta, _grads(params, 1), H.init_state(theta, params, small), params,
                          jnp.float32(1.0), small)
    assert all(np.isfinite(np.asarray(u)).all() for u in jax.tree_util.tree_leaves(updates))


def test_theta_is_plain_pytree_of_expected_size():
    theta = H.init(jax.random.PRNGKey(0))
    assert isinstance(theta, dict)
    n = sum(np.size(x) for x in jax.tree_util.tree_leaves(theta))
    assert 30_000 < n < 40_000  # "about 36k"
    assert all(x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves(theta))


def test_shapes_and_dtypes_preserved():
    theta = H.init(jax.random.PRNGKey(0))
    params = _params()
    state = H.init_state(theta, params)
    updates, new_state = jax.jit(H.update)(theta, _grads(params, 1), state, params, jnp.float32(2.0))
    assert jax.tree_util.tree_structure(updates) == jax.tree_util.tree_structure(params)
    for u, p in zip(jax.tree_util.tree_leaves(updates), jax.tree_util.tree_leaves(params)):
        assert u.shape == jnp.shape(p) and u.dtype == jnp.float32
        assert np.isfinite(np.asarray(u)).all()
    assert jax.tree_util.tree_structure(new_state) == jax.tree_util.tree_structure(state)
    for a, b in zip(jax.tree_util.tree_leaves(new_state), jax.tree_util.tree_leaves(state)):
        assert a.shape == b.shape and a.dtype == b.dtype
    assert int(new_state.iteration) == 1


def test_hand_worked_features_on_tiny_tensor():
    """Features of a 2-element tensor after one step, computed by hand."""
    p = np.array([1.0, -2.0])
    g = np.array([0.5, -1.0])
    d = np.array([0.5, 0.9, 0.99, 0.999, 0.9999])
    # first step from zero accumulators: m_k = (1-d_k) g, v_k = (1-d_k) g^2
    m = (1 - d)[:, None] * g[None]
    v = (1 - d)[:, None] * (g ** 2)[None]
    # the LSTM statistics come from the row moments of the MLP's element columns
    cols = H._element_columns(jnp.asarray(p, jnp.float32), jnp.asarray(g, jnp.float32),
                              jnp.asarray(m, jnp.float32), jnp.asarray(v, jnp.float32))
    stats = H._tensor_stats(H._row_moments(cols), 2, H.DEFAULT_CONFIG)
    # Reference names: `v` is the parameter, `rms` the second-moment accumulator, `ms` the momentum.
    # mean of p = -0.5 -> log(0.5), sign -1; var of p = 2.25; ||p|| = sqrt(5); ||g|| = sqrt(1.25)
    np.testing.assert_allclose(stats["mean_v_mag"], math.log(0.5 + 1e-8), rtol=1e-6)
    assert stats["mean_v_sign"] == -1.0
    np.testing.assert_allclose(stats["var_v"], math.log(2.25 + 1e-8), rtol=1e-6)
    np.testing.assert_allclose(stats["norm_weight"], math.log(math.sqrt(5.0) + 1e-8), rtol=1e-6)
    np.testing.assert_allclose(stats["g_norm"], math.log(math.sqrt(1.25) + 1e-8), rtol=1e-6)
    # mean of m over all elements and decays: (sum(1-d)) * (0.5 - 1) / 10
    mean_m = np.sum(1 - d) * (-0.5) / 10
    np.testing.assert_allclose(stats["mean_ms_mag"], np.clip(np.log(1e-8 + abs(mean_m)), -5, 5), rtol=1e-5)
    assert stats["mean_ms_sign"] == -1.0
    mean_rms = np.sum(1 - d) * 1.25 / 10
    np.testing.assert_allclose(stats["mean_rms"], np.log(1e-8 + mean_rms), rtol=1e-5)
    assert stats["mean_sign"] == 1.0
    np.testing.assert_allclose(stats["var_rms"], np.clip(np.log(1e-8 + np.var(v)), -5, 5), rtol=1e-5)

    # MLP columns: rows in sorted-name order flat_g, flat_v, log_abs_v, m, rms, rms_scaled_g, rsqrt
    np.testing.assert_allclose(stats["_log_norm"], math.log(math.sqrt(5.0) + 1e-8), rtol=1e-6)
    cols = np.asarray(cols)
    assert cols.shape == (23, 2)
    np.testing.assert_allclose(cols[0], g)
    np.testing.assert_allclose(cols[1], p)
    np.testing.assert_allclose(cols[2], [math.log(1.0 + 1e-8), math.log(2.0)], atol=1e-7)
    np.testing.assert_allclose(cols[3], [0.25, -0.5])  # m for decay 0.5
    np.testing.assert_allclose(cols[8], [0.125, 0.5])  # v for decay 0.5
    # m / sqrt(v + 1e-6) for decay 0.5: 0.25 / sqrt(0.125 + 1e-6)
    np.testing.assert_allclose(cols[13, 0], 0.25 / math.sqrt(0.125 + 1e-6), rtol=1e-6)
    np.testing.assert_allclose(cols[18, 1], 1 / math.sqrt(0.5 + 1e-6), rtol=1e-6)
    # normalisation of one column by hand: flat_g / sqrt(1e-5 + mean(g^2))
    norm = cols[0] / np.sqrt(1e-5 + np.mean(cols[0] ** 2))
    np.testing.assert_allclose(norm, g / math.sqrt(1e-5 + 0.625), rtol=1e-6)

    # step features and shape features
    np.testing.assert_allclose(F.step_features(3, (1.0, 10.0)),
                               [math.sin(3 / math.pi), math.sin(3 / (10 * math.pi))], rtol=1e-6)
    assert F.shape_features((2,), 4) == [math.log(2) - 1, -1.0, -1.0, -1.0]
    assert F.shape_features((), 4) == [-1.0] * 4
    with pytest.raises(ValueError, match="max_rank"):
        F.shape_features((1, 2, 3, 4, 5), 4)

    # loss features after one loss of 2.0: corrected mean = 2, corrected var = 0.81 * 4
    tr = F.tracker_update(F.tracker_init(), 2.0, 0.9)
    np.testing.assert_allclose(F.standardize_loss(tr, 0.9, 2.0), 0.0, atol=1e-4)
    np.testing.assert_allclose(F.standardize_loss(tr, 0.9, 3.0), 1.0 / math.sqrt(3.24), rtol=1e-4)
    # before any validation loss: valid feature = train standardisation of 0 (clipped)
    assert float(F.corrected_mean(F.tracker_init(), 0.95)) == 0.0
    np.testing.assert_allclose(F.standardize_loss(tr, 0.9, 0.0), -2.0 / math.sqrt(3.24), rtol=1e-4)


def test_bias_correction_finite_at_count_zero_under_jit():
    c = jax.jit(lambda tr: F.tracker_correction(tr, 0.95))(F.tracker_init())
    assert np.isfinite(float(c)) and float(c) > 1e7
    assert float(jax.jit(lambda tr: F.corrected_mean(tr, 0.95))(F.tracker_init())) == 0.0


def test_observe_validation_changes_only_valid_tracker():
    theta = H.init(jax.random.PRNGKey(0))
    params = _params()
    state = H.init_state(theta, params)
    _, state = H.update(theta, _grads(params, 1), state, params, jnp.float32(2.0))
    new = jax.jit(H.observe_validation)(state, jnp.float32(3.0))
    for field in H.LOptState._fields:
        before, after = getattr(state, field), getattr(new, field)
        same = all(np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(before),
                                                         jax.tree_util.tree_leaves(after)))
        assert same == (field != "valid_loss"), field
    assert int(new.valid_loss.count) == 1
    np.testing.assert_allclose(new.valid_loss.mean, 0.05 * 3.0, rtol=1e-6)
    # opt-in: the reference's behaviour of also advancing the iteration
    cfg = dataclasses.replace(H.DEFAULT_CONFIG, valid_advances_iteration=True)
    new2 = H.observe_validation(state, jnp.float32(3.0), cfg)
    assert int(new2.iteration) == int(state.iteration) + 1


def test_validation_loss_feeds_the_next_step():
    theta = H.init(jax.random.PRNGKey(0))
    params = _params()
    grads = _grads(params, 1)
    state = H.init_state(theta, params)
    u0, _ = H.update(theta, grads, state, params, jnp.float32(2.0))
    u1, _ = H.update(theta, grads, H.observe_validation(state, jnp.float32(5.0)), params, jnp.float32(2.0))
    diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in
               zip(jax.tree_util.tree_leaves(u0), jax.tree_util.tree_leaves(u1)))
    assert diff > 0


def _run(theta, params, steps, seed):
    """Jitted lax.scan of `steps` updates on a quadratic; validation every 10 steps."""
    target = _grads(params, seed + 100)

    def loss_fn(p):
        sq = jax.tree_util.tree_map(lambda a, b: jnp.sum((a - b) ** 2), p, target)
        return sum(jax.tree_util.tree_leaves(sq))

    @jax.jit
    def run(theta, params):
        def body(carry, t):
            p, s = carry
            loss, g = jax.value_and_grad(loss_fn)(p)
            u, s = H.update(theta, g, s, p, loss)
            p = jax.tree_util.tree_map(jnp.add, p, u)
            s = jax.lax.cond(t % 10 == 9, lambda s: H.observe_validation(s, loss_fn(p)), lambda s: s, s)
            return (p, s), loss

        return jax.lax.scan(body, (params, H.init_state(theta, params)), jnp.arange(steps))

    return run(theta, params)


def test_jitted_100_step_run_is_finite_and_deterministic():
    theta = H.init(jax.random.PRNGKey(1))
    (p1, s1), losses1 = _run(theta, _params(), 100, 0)
    for leaf in jax.tree_util.tree_leaves((p1, s1, losses1)):
        assert np.isfinite(np.asarray(leaf, np.float64)).all()
    assert int(s1.iteration) == 100 and int(s1.valid_loss.count) == 10
    (p2, s2), losses2 = _run(H.init(jax.random.PRNGKey(1)), _params(), 100, 0)
    for a, b in zip(jax.tree_util.tree_leaves((p1, s1, losses1)), jax.tree_util.tree_leaves((p2, s2, losses2))):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()


def test_vmap_over_problems():
    theta = H.init(jax.random.PRNGKey(0))
    params = {"w": jnp.ones((3, 4)), "b": jnp.zeros((4,))}
    batch = jax.tree_util.tree_map(lambda x: jnp.stack([x, 2 * x]), params)
    states = jax.vmap(lambda p: H.init_state(theta, p))(batch)
    grads = jax.tree_util.tree_map(lambda x: x + 0.1, batch)
    upd, _ = jax.vmap(H.update, in_axes=(None, 0, 0, 0, 0))(
        theta, grads, states, batch, jnp.array([1.0, 2.0]))
    single, _ = H.update(theta, jax.tree_util.tree_map(lambda x: x[1], grads),
                         jax.tree_util.tree_map(lambda x: x[1], states),
                         jax.tree_util.tree_map(lambda x: x[1], batch), jnp.float32(2.0))
    np.testing.assert_allclose(upd["w"][1], single["w"], rtol=1e-5, atol=1e-9)
