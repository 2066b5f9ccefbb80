"""The learned optimizer in a Flax training loop (issue 16, 3): ``LOptTrainState.apply_gradients`` passes the loss,
feeds the validation loss, and trains a user's own Flax MLP on a real dataset task of the suite, alone and inside
``optax.chain``."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax.training import train_state

import lopt_trainer
import taskgen
from lopt_trainer.optimizer.flax_state import DEFAULT_VALID_EVERY, LOptTrainState

TASK_ID = "mlp-e0ba29ce31f1"  # the default suite's MLP on the real 8×8 digits (scikit-learn's wheel), batch 67


class MLP(nn.Module):
    """A user's own model, not the suite's: 64 → 32 → 10."""

    @nn.compact
    def __call__(self, x):
        x = x.reshape((x.shape[0], -1))
        return nn.Dense(10)(nn.relu(nn.Dense(32)(x)))


@pytest.fixture(scope="module")
def digits():
    return taskgen.build_task(taskgen.resolve_spec(TASK_ID))


def _loss(apply_fn, params, batch):
    logits = apply_fn({"params": params}, batch["image"])
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()


def _train(task, tx, steps=150, feed_valid=True):
    """Train MLP on the task's real data; returns (test loss before, test loss after, validation losses fed)."""
    model = MLP()
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 1)))["params"]
    state = LOptTrainState.create(apply_fn=model.apply, params=params, tx=tx)

    @jax.jit
    def step(state, batch, valid_batch):
        loss, grads = jax.value_and_grad(lambda p: _loss(state.apply_fn, p, batch))(state.params)
        if valid_batch is None:
            return state.apply_gradients(grads=grads, value=loss)
        return state.apply_gradients(grads=grads, value=loss, valid_loss=_loss(state.apply_fn, state.params,
                                                                                 valid_batch))

    test = task.batch("test", jax.random.PRNGKey(99))
    before = float(_loss(model.apply, state.params, test))
    fed = 0
    for i in range(steps):
        batch = task.batch("train", jax.random.PRNGKey(i))
        valid = None
        if feed_valid and state.wants_valid_loss():
            valid, fed = task.batch("inner_valid", jax.random.PRNGKey(10_000 + i)), fed + 1
        state = step(state, batch, valid)
    assert int(state.step) == steps
    return before, float(_loss(model.apply, state.params, test)), fed, state


def test_a_flax_mlp_learns_real_digits_with_the_shipped_theta(digits):
    before, after, fed, state = _train(digits, lopt_trainer.optax_lopt(lopt_trainer.pretrained()))
    assert fed == 150 // DEFAULT_VALID_EVERY  # after updates 10, 20, …, 150
    assert np.isfinite(after) and after < 0.5 * before, (before, after)
    assert isinstance(state, train_state.TrainState)


def test_inside_optax_chain_with_clipping(digits):
    tx = optax.chain(optax.clip_by_global_norm(1.0), lopt_trainer.optax_lopt(lopt_trainer.pretrained()))
    before, after, fed, _ = _train(digits, tx)  # value= and the validation losses reach the chain's member
    assert fed == 150 // DEFAULT_VALID_EVERY
    assert np.isfinite(after) and after < 0.5 * before, (before, after)
    params = {"w": jnp.ones((3,))}
    grads = {"w": jnp.full((3,), 0.1)}
    state = LOptTrainState.create(apply_fn=None, params=params, tx=tx)
    fed_state = state.apply_gradients(grads=grads, value=1.0, valid_loss=0.5)
    plain = state.apply_gradients(grads=grads, value=1.0)
    differs = jax.tree_util.tree_map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))),
                                     plain.opt_state, fed_state.opt_state)
    assert any(jax.tree_util.tree_leaves(differs))  # the chain's learned-optimizer state took the feed


def test_the_validation_loss_reaches_the_optimizer_state():
    tx = lopt_trainer.optax_lopt(lopt_trainer.pretrained())
    params = {"w": jnp.ones((3,))}
    state = LOptTrainState.create(apply_fn=None, params=params, tx=tx)
    grads = {"w": jnp.full((3,), 0.1)}
    plain = state.apply_gradients(grads=grads, value=1.0)
    fed = state.apply_gradients(grads=grads, value=1.0, valid_loss=0.5)
    np.testing.assert_array_equal(plain.params["w"], fed.params["w"])  # the feed changes the state, not this step
    differs = jax.tree_util.tree_map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))),
                                     plain.opt_state, fed.opt_state)
    assert any(jax.tree_util.tree_leaves(differs))
    expected = tx.observe_validation(plain.opt_state, 0.5)
    jax.tree_util.tree_map(np.testing.assert_array_equal, fed.opt_state, expected)


def test_flax_own_apply_gradients_fails_and_ours_says_what_it_needs():
    tx = lopt_trainer.optax_lopt(lopt_trainer.pretrained())
    params = {"w": jnp.ones((3,))}
    grads = {"w": jnp.ones((3,))}
    with pytest.raises(ValueError, match="needs the training loss"):
        train_state.TrainState.create(apply_fn=None, params=params, tx=tx).apply_gradients(grads=grads)
    with pytest.raises(ValueError, match="needs the training loss"):
        LOptTrainState.create(apply_fn=None, params=params, tx=tx).apply_gradients(grads=grads)
    adam = LOptTrainState.create(apply_fn=None, params=params, tx=optax.adam(0.1))
    assert float(adam.apply_gradients(grads=grads, value=1.0).params["w"][0]) == pytest.approx(0.9)
    with pytest.raises(ValueError, match="takes no validation loss"):
        adam.apply_gradients(grads=grads, value=1.0, valid_loss=0.5)


def test_wants_valid_loss_follows_the_cadence():
    state = LOptTrainState.create(apply_fn=None, params={}, tx=optax.sgd(0.1), valid_every=3)
    due = []
    for _ in range(7):
        due.append(state.wants_valid_loss())
        state = state.replace(step=state.step + 1)
    assert due == [False, False, True, False, False, True, False]  # the 3rd and 6th updates, as the inner loop


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "3"])
def test_valid_every_must_be_a_whole_number_of_steps(bad):
    with pytest.raises(ValueError, match="valid_every must be a whole number of steps >= 1"):
        LOptTrainState.create(apply_fn=None, params={}, tx=optax.sgd(0.1), valid_every=bad)


def test_an_overwrite_with_gradient_collection_is_set_not_trained_as_in_flax():
    """Flax's fp8 pattern: params with an ``_overwrite_with_gradient`` collection take that part from the
    gradient and train only ``params`` (the learned optimizer's state covers ``params`` alone)."""
    owg = train_state.OVERWRITE_WITH_GRADIENT
    params = {"params": {"w": jnp.ones((3,))}, owg: {"scale": jnp.ones(())}}
    state = LOptTrainState.create(apply_fn=None, params=params, tx=lopt_trainer.optax_lopt(
        lopt_trainer.load_theta("handset")))
    grads = {"params": {"w": jnp.full((3,), 0.5)}, owg: {"scale": jnp.asarray(7.0)}}
    new = state.apply_gradients(grads=grads, value=jnp.float32(1.0))
    assert float(new.params[owg]["scale"]) == 7.0
    assert not np.allclose(np.asarray(new.params["params"]["w"]), 1.0) and int(new.step) == 1
