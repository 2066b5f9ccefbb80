"""The learned optimizer on extreme finite values and on inputs it cannot take (issue 17, B).

Statistics must not overflow for any finite parameter, gradient or loss (parameters of 1e20, a 1000×1000 weight
at 1e17, a loss of 1e20); a rank-5 tensor and a θ made for another config are refused at ``init`` naming the
tensor or array. The property test runs magnitudes 1e-30…1e30.
"""

import dataclasses
import math
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lopt_trainer.optimizer import features as F
from lopt_trainer.optimizer import hierarchical as H
from lopt_trainer.optimizer.optax_api import optax_lopt

THETA = H.init(jax.random.PRNGKey(0))
TX = optax_lopt(THETA)
UPDATE = jax.jit(TX.update)
OBSERVE = jax.jit(TX.observe_validation)
F32_MAX = float(np.finfo(np.float32).max)


def _all_finite(tree) -> bool:
    return all(np.all(np.isfinite(np.asarray(x, np.float32))) for x in jax.tree_util.tree_leaves(tree)
               if jnp.issubdtype(jnp.result_type(x), jnp.inexact))


def _stats(p, g):
    """The LSTM statistics of one tensor (p, g flat float32) after one step from zero accumulators."""
    d = jnp.asarray(H.DEFAULT_CONFIG.decays, jnp.float32)[:, None]
    cols = H._element_columns(p, g, (1 - d) * g[None], (1 - d) * jnp.square(g)[None])
    return H._tensor_stats(H._row_moments(cols), p.shape[0], H.DEFAULT_CONFIG)


# ---------------------------------------------------------------- parameters and gradients


def test_parameters_of_1e20_give_finite_updates_and_state():
    params = {"w": jnp.full((4, 3), 1e20, jnp.float32), "b": jnp.ones((3,), jnp.float32)}
    state = TX.init(params)
    for t in range(3):
        grads = jax.tree_util.tree_map(lambda p: jax.random.normal(jax.random.PRNGKey(t), p.shape), params)
        updates, state = UPDATE(grads, state, params, value=jnp.float32(1.0))
        assert _all_finite(updates) and _all_finite(state)


def test_statistics_of_a_constant_1e20_tensor():
    """Mean 1e20, variance 0, norm 1e20·sqrt(12): E[x²] (1e40) overflows float32, the features do not."""
    stats = _stats(jnp.full((12,), 1e20, jnp.float32), jnp.ones((12,), jnp.float32))
    assert float(stats["mean_v_mag"]) == 5.0 and float(stats["mean_v_sign"]) == 1.0
    assert float(stats["var_v"]) == float(F.clip_log_abs(jnp.float32(0.0)))  # -5: no inf - inf
    assert float(stats["norm_weight"]) == 5.0
    np.testing.assert_allclose(float(stats["_log_norm"]), math.log(1e20 * math.sqrt(12)), rtol=1e-6)


def test_statistics_of_plus_minus_1e20():
    """Mean 0, variance 1e40 (beyond float32): clip(log(var)) = 5, not NaN."""
    stats = _stats(jnp.asarray([1e20, -1e20], jnp.float32), jnp.ones((2,), jnp.float32))
    assert float(stats["mean_v_sign"]) == 0.0 and float(stats["mean_v_mag"]) == -5.0
    assert float(stats["var_v"]) == 5.0 and float(stats["norm_weight"]) == 5.0
    np.testing.assert_allclose(float(stats["_log_norm"]), math.log(1e20 * math.sqrt(2)), rtol=1e-6)


def test_a_1000_by_1000_weight_at_1e17():
    """sum(x²) over 10⁶ elements of 1e17 is 1e40: the case of the issue."""
    w = 1e17 * jax.random.normal(jax.random.PRNGKey(1), (1000, 1000), jnp.float32)
    params = {"w": w}
    updates, state = UPDATE({"w": jnp.ones_like(w)}, TX.init(params), params, value=jnp.float32(1.0))
    assert _all_finite(updates) and _all_finite(state)
    stats = _stats(w.reshape(-1), jnp.ones((w.size,), jnp.float32))
    norm = float(np.linalg.norm(np.asarray(w, np.float64)))
    np.testing.assert_allclose(float(stats["_log_norm"]), math.log(norm), rtol=1e-6)
    assert float(stats["var_v"]) == 5.0 and float(stats["norm_weight"]) == 5.0


def test_gradients_of_1e30_for_many_steps_keep_the_accumulators_finite():
    """The clip bound grows ~9% a step under huge gradients; it stops at MAX_CLIP (2**63), so g² and the
    second-moment accumulators stay finite."""
    params = {"w": jnp.ones((3, 2), jnp.float32)}
    state = TX.init(params)
    grads = {"w": jnp.full((3, 2), 1e30, jnp.float32)}

    @jax.jit
    def run(state):
        def body(state, _):
            _, state = TX.update(grads, state, params, value=jnp.float32(1.0))
            return state, None
        return jax.lax.scan(body, state, None, length=700)[0]

    state = run(state)
    assert _all_finite(state)
    assert float(F.clip_value(state.clip, H.DEFAULT_CONFIG)) == F.MAX_CLIP
    assert float(jnp.max(state.v["w"])) <= F.MAX_CLIP ** 2


# ---------------------------------------------------------------- losses


def test_a_finite_loss_of_1e20_keeps_the_tracker_finite_and_the_feature_alive():
    tracker = F.tracker_update(F.tracker_init(), 1e20, 0.9)
    assert float(tracker.mean) == float(np.float32(0.1) * np.float32(1e20))
    assert float(tracker.var) == F32_MAX  # (mean - loss)² = 8.1e39 saturates instead of becoming inf
    c = 1.0 / (1.0 - 0.9 + 1e-8)
    expected = (1.0 - c * float(tracker.mean)) / math.sqrt(c * F32_MAX)  # -1.714, was 0 (finite / inf)
    np.testing.assert_allclose(float(F.standardize_loss(tracker, 0.9, 1.0)), expected, rtol=1e-6)
    # Ordinary losses afterwards: the variance decays back as the exact one would.
    for _ in range(1000):
        tracker = F.tracker_update(tracker, 1.0, 0.9)
    assert 0 < float(tracker.var) < 1e-6
    np.testing.assert_allclose(float(F.standardize_loss(tracker, 0.9, 1.0)), 0.0, atol=1e-3)
    np.testing.assert_allclose(float(F.standardize_loss(tracker, 0.9, 2.0)), 5.0)


@pytest.mark.parametrize("loss", [3e38, -3e38, 1e30])
def test_losses_near_the_float32_range_give_finite_steps(loss):
    params = {"w": jax.random.normal(jax.random.PRNGKey(2), (4, 3))}
    state = TX.init(params)
    for value in (1.0, loss, -loss, 2.0):
        updates, state = UPDATE({"w": jnp.ones((4, 3))}, state, params, value=jnp.float32(value))
        state = OBSERVE(state, jnp.float32(value))
        assert _all_finite(updates) and _all_finite(state)
    assert int(state.train_loss.count) == 4 and int(state.nonfinite_losses) == 0


def test_standardize_takes_an_infinite_argument():
    """The validation feature standardises a corrected mean, which float32 rounding could push past the range."""
    train = F.tracker_update(F.tracker_init(), 1.0, 0.9)
    assert float(F.standardize_loss(train, 0.9, jnp.float32(np.inf))) == 5.0
    assert float(F.standardize_loss(train, 0.9, jnp.float32(-np.inf))) == -5.0


# ---------------------------------------------------------------- refused at init


def test_rank_5_tensor_is_refused_at_init_naming_it():
    params = {"dense": {"kernel": jnp.ones((2, 3))}, "odd": {"w": jnp.ones((1, 2, 1, 2, 1))}}
    message = ("params['odd']['w']: a tensor of shape (1, 2, 1, 2, 1) has rank 5; the learned optimizer takes "
               "tensors of rank <= 4 (LOptConfig.max_rank, fixed by θ: one LSTM input per dimension). Reshape "
               "it to rank 4 or less (e.g. merge leading dimensions), or give it to another optimizer "
               "(optax.partition)")
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        TX.init(params)
    state = TX.init({"dense": params["dense"]})
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):  # and at update, same words
        TX.update(params, state, params, value=1.0)


def test_rank_5_tensor_without_elements_is_accepted():
    params = {"w": jnp.ones((2, 2)), "empty": jnp.zeros((1, 0, 1, 1, 1))}
    updates, _ = UPDATE(params, TX.init(params), params, value=jnp.float32(1.0))
    assert updates["empty"].shape == (1, 0, 1, 1, 1)


def test_theta_of_another_config_is_refused_at_init():
    small = dataclasses.replace(H.DEFAULT_CONFIG, lstm_hidden=32)
    theta = H.init(jax.random.PRNGKey(0), small)
    message = ("theta['lstm']['b'] has shape (128,), the config needs (256,): θ was made for another LOptConfig "
               "(lstm_hidden: θ 32, config 64); pass the config θ was made with")
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        optax_lopt(theta)
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        H.init_state(theta, {"w": jnp.ones((3,))})
    H.init_state(theta, {"w": jnp.ones((3,))}, small)  # with its own config it is fine


def test_theta_missing_or_extra_array_is_refused():
    missing = {k: v for k, v in THETA.items() if k != "to_lstm"}
    with pytest.raises(ValueError, match=r"^theta\['to_lstm'\]\['b'\] is missing: θ was made for another "
                                         r"LOptConfig; pass the config θ was made with$"):
        H.check_theta(missing)
    extra = {**THETA, "mlp": {**THETA["mlp"], "w3": jnp.ones((2, 2)), "b3": jnp.ones((2,))}}
    with pytest.raises(ValueError, match=r"^theta\['mlp'\]\['b3'\] is not an array of this optimizer: θ was "
                                         r"made for another LOptConfig \(mlp_hidden: θ \(32, 32, 18\), config "
                                         r"\(32, 32\)\)"):
        H.check_theta(extra)


# ---------------------------------------------------------------- property test

_SHAPES = {"w": (3, 4), "b": (4,), "s": (), "k": (2, 1, 3)}
_magnitudes = st.integers(-30, 30).map(lambda e: 10.0 ** e)
_signed = st.tuples(_magnitudes, st.sampled_from([1.0, -1.0])).map(lambda t: t[0] * t[1])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(p_mag=st.fixed_dictionaries({k: _magnitudes for k in _SHAPES}),
       g_mag=st.lists(st.fixed_dictionaries({k: _magnitudes for k in _SHAPES}), min_size=3, max_size=3),
       losses=st.lists(_signed, min_size=3, max_size=3), valid=_signed, seed=st.integers(0, 2**16))
def test_property_magnitudes_1e_minus_30_to_1e30(p_mag, g_mag, losses, valid, seed):
    rng = np.random.default_rng(seed)
    params = {k: jnp.asarray(rng.normal(size=s) * p_mag[k], jnp.float32) for k, s in _SHAPES.items()}
    state = TX.init(params)
    for t, (mags, loss) in enumerate(zip(g_mag, losses)):
        grads = {k: jnp.asarray(rng.normal(size=s) * mags[k], jnp.float32) for k, s in _SHAPES.items()}
        updates, state = UPDATE(grads, state, params, value=jnp.float32(loss))
        assert _all_finite(updates) and _all_finite(state), (t, p_mag, mags, loss)
        params = jax.tree_util.tree_map(jnp.add, params, updates)
        if t == 1:
            state = OBSERVE(state, jnp.float32(valid))
            assert _all_finite(state)
    assert int(state.nonfinite_losses) == 0
