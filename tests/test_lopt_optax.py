"""The learned optimizer as an optax drop-in, training a Flax linen model."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lopt_trainer.optimizer import hierarchical as H
from lopt_trainer.optimizer.optax_api import optax_lopt


class _Net(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Dense(16)(x))
        return nn.Dense(3)(x)


def _small_theta(seed):
    """Random θ with a small output layer (steps are tiny)."""
    theta = H.init(jax.random.PRNGKey(seed))
    theta["mlp"]["w2"] = theta["mlp"]["w2"] * 0.1
    return theta


def _train(theta, steps=20):
    model = _Net()
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(steps, 8, 5)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 3, size=(steps, 8)), jnp.int32)
    params = model.init(jax.random.PRNGKey(0), x[0])
    tx = optax_lopt(theta)

    def loss_fn(p, xb, yb):
        return optax.softmax_cross_entropy_with_integer_labels(model.apply(p, xb), yb).mean()

    @jax.jit
    def step(params, state, xb, yb):
        loss, grads = jax.value_and_grad(loss_fn)(params, xb, yb)
        updates, state = tx.update(grads, state, params, value=loss)
        return optax.apply_updates(params, updates), state, loss

    state = tx.init(params)
    p0 = params
    losses = []
    for t in range(steps):
        params, state, loss = step(params, state, x[t], y[t])
        losses.append(float(loss))
        if t % 5 == 4:
            state = tx.observe_validation(state, jnp.float32(loss))
    return p0, params, state, losses


def test_is_an_optax_transformation_with_validation_hook():
    tx = optax_lopt(_small_theta(0))
    assert isinstance(tx, optax.GradientTransformationExtraArgs)
    assert isinstance(tx, optax.GradientTransformation)
    init, update = tx  # still the 2-field NamedTuple optax expects
    assert init is tx.init and update is tx.update
    assert callable(getattr(tx, "observe_validation", None))
    assert getattr(optax.adam(1e-3), "observe_validation", None) is None


def test_update_requires_value_and_params():
    tx = optax_lopt(_small_theta(0))
    params = {"w": jnp.ones((2, 2))}
    state = tx.init(params)
    with pytest.raises(ValueError, match="value=loss"):
        tx.update(params, state, params)
    with pytest.raises(ValueError, match="parameters"):
        tx.update(params, state, None, value=1.0)


def test_trains_a_flax_model():
    p0, params, state, losses = _train(_small_theta(0))
    assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(p0)
    for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(p0)):
        assert a.shape == b.shape and a.dtype == b.dtype == jnp.float32
        assert np.isfinite(np.asarray(a)).all()
    assert any(not np.array_equal(a, b) for a, b in
               zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(p0)))
    assert np.isfinite(losses).all()
    assert int(state.iteration) == 20 and int(state.valid_loss.count) == 4
    # determinism: same θ and seed -> same bytes
    _, params2, _, losses2 = _train(_small_theta(0))
    assert losses == losses2
    for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(params2)):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()


def test_works_inside_optax_chain():
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax_lopt(_small_theta(0)))
    params = {"w": jnp.ones((2, 3)), "b": jnp.zeros((3,))}
    state = tx.init(params)
    updates, _ = tx.update(params, state, params, value=jnp.float32(1.0))
    assert updates["w"].shape == (2, 3)


@pytest.mark.parametrize("params", [{"w": jnp.ones((3, 2)), "b": jnp.zeros((2,))}, {"w": jnp.ones((4,))}],
                         ids=["two tensors", "one tensor"])
def test_a_loop_that_donates_the_state_keeps_theta_alive(params):
    """jit(step, donate_argnums=…) over the optimizer state must not delete θ's arrays (init copies them)."""
    theta = H.init_handset(jax.random.PRNGKey(0))
    before = [np.asarray(x).copy() for x in jax.tree_util.tree_leaves(theta)]
    tx = optax_lopt(theta)
    grads = jax.tree_util.tree_map(jnp.ones_like, params)

    @jax.jit
    def _step(state, params):
        updates, state = tx.update(grads, state, params, value=jnp.float32(1.0))
        return optax.apply_updates(params, updates), state

    step = jax.jit(_step, donate_argnums=(0,))
    state = tx.init(params)
    for _ in range(2):
        params, state = step(state, params)
    for leaf, old in zip(jax.tree_util.tree_leaves(theta), before):
        assert not leaf.is_deleted()
        np.testing.assert_array_equal(np.asarray(leaf), old)
    tx.init(params)  # θ usable again
