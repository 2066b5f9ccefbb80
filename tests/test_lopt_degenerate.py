"""The learned optimizer on degenerate trees and poisoned losses (issue 11, A and B).

Zero-element leaves and empty trees behave as in optax's Adam; a non-scalar loss is refused naming the
argument; a NaN/inf loss is skipped by the trackers and counted. The property test feeds `optax_lopt`
random trees and losses.
"""

import os
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


def _run(params, losses, grad_seed=1):
    """Updates and states of len(losses) jitted steps on fixed random gradients."""
    state = TX.init(params)
    out = []
    for t, loss in enumerate(losses):
        key = jax.random.PRNGKey(grad_seed + t)  # one key per step: a leaf's gradient ignores the others
        grads = jax.tree_util.tree_map(lambda p: jax.random.normal(key, jnp.shape(p)), params)
        updates, state = UPDATE(grads, state, params, value=jnp.float32(loss))
        out.append((updates, state))
    return out


def test_zero_element_leaf_takes_no_part_in_shared_statistics():
    w = jax.random.normal(jax.random.PRNGKey(3), (3, 2))
    with_empty = _run({"w": w, "empty": jnp.zeros((0, 4))}, [1.0, 0.9, 0.8])
    alone = _run({"w": w}, [1.0, 0.9, 0.8])
    for (u1, s1), (u2, s2) in zip(with_empty, alone):
        assert u1["empty"].shape == (0, 4) and u1["empty"].dtype == jnp.float32
        np.testing.assert_array_equal(np.asarray(u1["w"]), np.asarray(u2["w"]))
        assert np.all(np.isfinite(np.asarray(u1["w"])))
        assert float(s1.clip.s) == float(s2.clip.s)
        assert s1.lstm_hidden.shape == (1, THETA["lstm"]["init_hidden"].shape[1])
        assert s1.m["empty"].shape == (5, 0, 4)


@pytest.mark.parametrize("params", [{}, {"a": {}, "b": [], "c": ()}, {"a": None, "e": jnp.zeros((0,))}],
                         ids=["empty", "nested-empty", "none-and-zero-size"])
def test_tree_without_elements_is_a_no_op(params):
    (u1, s1), (u2, s2) = _run(params, [2.0, 1.0])
    assert jax.tree_util.tree_structure(u2) == jax.tree_util.tree_structure(params)
    assert all(np.size(x) == 0 for x in jax.tree_util.tree_leaves(u2))
    assert int(s2.iteration) == 2
    assert float(s2.clip.s) == pytest.approx(0.01)
    assert s2.lstm_hidden.shape[0] == 0


def test_vector_loss_is_refused_naming_the_argument():
    params = {"w": jnp.ones((3,))}
    state = TX.init(params)
    with pytest.raises(ValueError, match=r"^value: the learned optimizer takes a scalar loss, got an array of "
                                         r"shape \(8,\); reduce it first"):
        TX.update(params, state, params, value=jnp.ones((8,)))
    with pytest.raises(ValueError, match=r"^valid_loss: .* shape \(2, 1\)"):
        TX.observe_validation(state, jnp.ones((2, 1)))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nonfinite_loss_is_skipped_by_the_tracker_and_counted(bad):
    params = {"w": jax.random.normal(jax.random.PRNGKey(3), (4, 3)), "b": jnp.zeros((3,))}
    losses = [2.0 - 0.1 * t for t in range(10)]
    losses[3] = bad
    steps = _run(params, losses)
    for updates, _ in steps:
        assert all(np.all(np.isfinite(np.asarray(u))) for u in jax.tree_util.tree_leaves(updates))
    final = steps[-1][1]
    assert int(final.nonfinite_losses) == 1
    expected = F.tracker_init()
    for loss in losses:
        if np.isfinite(loss):
            expected = F.tracker_update(expected, loss, H.DEFAULT_CONFIG.train_loss_decay)
    assert int(final.train_loss.count) == 9
    np.testing.assert_allclose(float(final.train_loss.mean), float(expected.mean), rtol=1e-6)
    np.testing.assert_allclose(float(final.train_loss.var), float(expected.var), rtol=1e-6)


def test_nonfinite_validation_loss_is_skipped_and_counted():
    state = TX.init({"w": jnp.ones((2,))})
    state = TX.observe_validation(state, jnp.float32(3.0))
    after = TX.observe_validation(state, jnp.float32(np.nan))
    assert int(after.nonfinite_losses) == 1
    assert int(after.valid_loss.count) == 1
    assert float(after.valid_loss.mean) == float(state.valid_loss.mean)


# ---------------------------------------------------------------- property test

_DTYPES = [jnp.float32, jnp.bfloat16, jnp.float16, jnp.int32]


class _Leaf:
    """A parameter to be made: shape and dtype (an unregistered class, so a pytree leaf)."""

    def __init__(self, shape, dtype):
        self.shape, self.dtype = shape, dtype


_shapes = st.lists(st.integers(0, 3), min_size=0, max_size=3).map(tuple)
_leaves = st.one_of(st.builds(_Leaf, _shapes, st.sampled_from(_DTYPES)), st.none())
_trees = st.recursive(
    _leaves,
    lambda inner: st.one_of(st.dictionaries(st.sampled_from("abc"), inner, max_size=3),
                            st.lists(inner, max_size=2), st.lists(inner, max_size=2).map(tuple)),
    max_leaves=4)
_losses = st.one_of(st.floats(-1e6, 1e6), st.sampled_from([float("nan"), float("inf"), -float("inf")]),
                    st.integers(1, 3).map(lambda n: np.ones((n,), np.float32)))


def _build(spec, rng):
    """(params, grads) from a tree of `_Leaf`s: random finite values; integer leaves get zero gradients."""
    leaves, treedef = jax.tree_util.tree_flatten(spec)
    params, grads = [], []
    for leaf in leaves:
        if jnp.issubdtype(leaf.dtype, jnp.integer):
            params.append(jnp.asarray(rng.integers(-3, 3, leaf.shape), leaf.dtype))
            grads.append(jnp.zeros(leaf.shape, leaf.dtype))
        else:
            params.append(jnp.asarray(rng.normal(size=leaf.shape), leaf.dtype))
            grads.append(jnp.asarray(rng.normal(size=leaf.shape), leaf.dtype))
    return treedef.unflatten(params), treedef.unflatten(grads)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=_trees, losses=st.lists(_losses, min_size=2, max_size=2), seed=st.integers(0, 2**16))
def test_property_random_trees_and_losses(spec, losses, seed):
    params, grads = _build(spec, np.random.default_rng(seed))
    state = TX.init(params)
    for loss in losses:
        if np.ndim(loss) != 0:  # the one documented error
            with pytest.raises(ValueError, match=r"^value: .*scalar loss"):
                UPDATE(grads, state, params, value=jnp.asarray(loss))
            continue
        updates, state = UPDATE(grads, state, params, value=jnp.float32(loss))
        assert jax.tree_util.tree_structure(updates) == jax.tree_util.tree_structure(params)
        for u, p in zip(jax.tree_util.tree_leaves(updates), jax.tree_util.tree_leaves(params)):
            assert u.shape == p.shape and u.dtype == p.dtype
            assert np.all(np.isfinite(np.asarray(u, np.float32)))
        assert np.isfinite(float(state.clip.s)) and np.all(np.isfinite(np.asarray(state.lstm_hidden)))
        assert np.isfinite(float(state.train_loss.mean)) and np.isfinite(float(state.train_loss.var))
