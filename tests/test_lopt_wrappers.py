"""The learned optimizer inside optax's wrappers keeps its validation feed (issue 17, A).

`observe_validation(state, v)` finds the learned optimizer's `LOptState` wherever a wrapper of the installed optax
nests it and feeds every one; a state without one is refused with one error; wrappers that drop `value=` from the
inner update refuse at `update` with one error. The inner loop and the implicit-regularisation experiment feed a
learned optimizer inside `optax.chain` exactly as a bare one.
"""

import dataclasses
import os
import pickle
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import flax.serialization as fser
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lopt_trainer.inner import loop as inner_loop
from lopt_trainer.optimizer import hierarchical as H
from lopt_trainer.optimizer.optax_api import lopt_states, observe_validation, optax_lopt, validation_feed
from research import implicit_reg
from tests.test_inner_loop import KW, quadratic_task

THETA = H.init(jax.random.PRNGKey(0))
LOPT = optax_lopt(THETA)
PARAMS = {"w": jnp.arange(6.0).reshape(2, 3) / 7.0, "b": jnp.ones((3,))}
GRADS = jax.tree_util.tree_map(lambda p: jnp.cos(p) - 0.5, PARAMS)
LABELS = {"w": "lopt", "b": "lopt"}


def _all_true(tree):
    return jax.tree_util.tree_map(lambda _: True, tree)


# (id, wrapper of a transformation, whether the wrapper passes `value=` and `params` to the inner update)
WRAPPERS = [
    ("bare", lambda tx: tx, True),
    ("chain", lambda tx: optax.chain(optax.clip_by_global_norm(1.0), tx), True),
    ("chain-identity", lambda tx: optax.chain(optax.identity(), tx), True),
    ("named_chain", lambda tx: optax.named_chain(("clip", optax.clip(1.0)), ("lopt", tx)), True),
    ("masked", lambda tx: optax.masked(tx, _all_true), True),
    ("masked-part", lambda tx: optax.masked(tx, {"w": True, "b": False}), True),
    ("MultiSteps", lambda tx: optax.MultiSteps(tx, every_k_schedule=2), True),
    ("MultiSteps-gradient_transformation",
     lambda tx: optax.MultiSteps(tx, every_k_schedule=1).gradient_transformation(), True),
    ("MultiSteps-skip_not_finite",
     lambda tx: optax.MultiSteps(tx, 1, should_skip_update_fn=optax.skip_not_finite), True),
    ("MultiSteps-skip_large_updates",
     lambda tx: optax.MultiSteps(tx, 1, should_skip_update_fn=lambda u, g, p: optax.skip_large_updates(
         u, g, p, max_squared_norm=1e6)), True),
    ("apply_if_finite", lambda tx: optax.apply_if_finite(tx, max_consecutive_errors=3), True),
    ("inject_hyperparams", lambda tx: optax.inject_hyperparams(optax_lopt)(theta=THETA), True),
    ("inject_stateful_hyperparams", lambda tx: optax.inject_stateful_hyperparams(optax_lopt)(theta=THETA), True),
    ("partition", lambda tx: optax.partition({"lopt": tx}, LABELS), True),
    ("multi_transform", lambda tx: optax.multi_transform({"lopt": tx, "sgd": optax.sgd(0.1)},
                                                          {"w": "lopt", "b": "sgd"}), True),
    ("selective_transform", lambda tx: optax.selective_transform(tx, freeze_mask={"w": False, "b": True}), True),
    ("conditionally_transform",
     lambda tx: optax.conditionally_transform(tx, lambda step: step >= 0), True),
    ("conditionally_mask", lambda tx: optax.conditionally_mask(tx, lambda step: step >= 0), True),
    ("flatten", lambda tx: optax.flatten(tx), True),
    ("with_extra_args_support", lambda tx: optax.with_extra_args_support(tx), True),
    ("contrib.mechanize", lambda tx: optax.contrib.mechanize(tx), True),
    ("contrib.schedule_free", lambda tx: optax.contrib.schedule_free(tx, learning_rate=1.0), True),
    ("lookahead", lambda tx: optax.lookahead(tx, sync_period=2, slow_step_size=0.5), False),
    ("contrib.split_real_and_imaginary", lambda tx: optax.contrib.split_real_and_imaginary(tx), False),
    ("contrib.sam", lambda tx: optax.contrib.sam(optax.sgd(0.1), tx), False),
]


def _init_and_params(name, tx):
    if name == "lookahead":
        params = optax.LookaheadParams.init_synced(PARAMS)
        return tx.init(params), params, optax.LookaheadParams(GRADS, GRADS)
    return tx.init(PARAMS), PARAMS, GRADS


def _split(state):
    """(the LOptStates of `state`, the leaves of everything else)."""
    lopts = lopt_states(state)
    rest = [x for x in jax.tree_util.tree_leaves(state, is_leaf=lambda x: isinstance(x, H.LOptState))
            if not isinstance(x, H.LOptState)]
    return lopts, rest


def _assert_same(a, b):
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        assert np.asarray(x).tobytes() == np.asarray(y).tobytes()


@pytest.mark.parametrize("name,wrap,forwards", WRAPPERS, ids=[w[0] for w in WRAPPERS])
def test_validation_reaches_the_learned_optimizer_inside_every_wrapper(name, wrap, forwards):
    tx = wrap(LOPT)
    state, params, grads = _init_and_params(name, tx)
    if forwards:
        updates, state = jax.jit(tx.update)(grads, state, params, value=jnp.float32(2.0))
        assert all(np.all(np.isfinite(np.asarray(u))) for u in jax.tree_util.tree_leaves(updates))
    before_lopts, before_rest = _split(state)
    assert len(before_lopts) == 1
    for feed in (observe_validation, LOPT.observe_validation, jax.jit(observe_validation)):
        fed = feed(state, jnp.float32(3.0))
        assert jax.tree_util.tree_structure(fed) == jax.tree_util.tree_structure(state)
        lopts, rest = _split(fed)
        _assert_same(rest, before_rest)  # everything outside the learned optimizer's state is untouched
        assert int(lopts[0].valid_loss.count) == 1
        assert float(lopts[0].valid_loss.mean) == float(np.float32(1 - 0.95) * np.float32(3.0))
        _assert_same(lopts[0], H.observe_validation(before_lopts[0], jnp.float32(3.0)))
    assert validation_feed(tx, state) is (LOPT.observe_validation if tx is LOPT else observe_validation)


@pytest.mark.parametrize("name,wrap,forwards", [w for w in WRAPPERS if not w[2]], ids=[w[0] for w in WRAPPERS
                                                                                      if not w[2]])
def test_wrapper_dropping_the_loss_is_refused_at_update(name, wrap, forwards):
    tx = wrap(LOPT)
    state, params, grads = _init_and_params(name, tx)
    with pytest.raises(ValueError, match="^" + re.escape(
            "the learned optimizer needs the training loss: call tx.update(grads, state, params, value=loss) "
            "(a wrapper that drops extra arguments, such as optax.lookahead, cannot hold the learned "
            "optimizer)") + "$"):
        tx.update(grads, state, params)  # these wrappers take no `value=` themselves (TypeError from optax)


def test_multisteps_feed_between_emissions_is_kept():
    """A feed through `update` would be lost on MultiSteps' accumulating steps; through the state it is not."""
    tx = optax.MultiSteps(LOPT, every_k_schedule=3)
    state = tx.init(PARAMS)
    _, state = tx.update(GRADS, state, PARAMS, value=jnp.float32(2.0))  # accumulates: inner update not run
    state = observe_validation(state, jnp.float32(3.0))
    _, state = tx.update(GRADS, state, PARAMS, value=jnp.float32(2.0))
    state = observe_validation(state, jnp.float32(4.0))
    (inner,) = lopt_states(state)
    assert int(inner.valid_loss.count) == 2 and int(inner.iteration) == 0


def test_every_learned_optimizer_in_a_state_is_fed():
    tx = optax.partition({"a": LOPT, "b": optax_lopt(H.init(jax.random.PRNGKey(1)))}, {"w": "a", "b": "b"})
    state = observe_validation(tx.init(PARAMS), jnp.float32(3.0))
    assert [int(s.valid_loss.count) for s in lopt_states(state)] == [1, 1]


def test_state_without_learned_optimizer_is_refused():
    with pytest.raises(ValueError, match="^" + re.escape(
            "observe_validation: no learned-optimizer state (LOptState) in the state given (a tuple); pass the "
            "state, as returned by init or update, of a transformation that contains optax_lopt(θ)") + "$"):
        observe_validation(optax.adam(1e-3).init(PARAMS), jnp.float32(1.0))
    assert validation_feed(optax.adam(1e-3), optax.adam(1e-3).init(PARAMS)) is None


def test_valid_loss_through_update_is_refused():
    tx = optax.chain(optax.identity(), LOPT)
    with pytest.raises(TypeError, match=r"^the learned optimizer takes validation losses through its state"):
        tx.update(GRADS, tx.init(PARAMS), PARAMS, value=1.0, valid_loss=2.0)


def test_state_of_another_config_is_fed_with_its_own_config():
    cfg = dataclasses.replace(H.DEFAULT_CONFIG, valid_loss_decay=0.5, valid_advances_iteration=True)
    tx = optax.chain(optax.identity(), optax_lopt(THETA, cfg))
    state = tx.init(PARAMS)
    (inner,) = lopt_states(state)
    assert type(inner) is H.state_type(cfg) and type(inner).config == cfg and isinstance(inner, H.LOptState)
    (fed,) = lopt_states(observe_validation(state, jnp.float32(3.0)))
    assert float(fed.valid_loss.mean) == float(np.float32(0.5) * np.float32(3.0))
    assert int(fed.iteration) == 1
    # The config travels through pickle (as Ray sends it) and flax serialization (checkpoints).
    again = pickle.loads(pickle.dumps(jax.device_get(state)))
    assert jax.tree_util.tree_structure(again) == jax.tree_util.tree_structure(state)
    restored = fser.from_state_dict(state, fser.to_state_dict(state))
    assert type(lopt_states(restored)[0]) is H.state_type(cfg)


# ---------------------------------------------------------------- training loops


def _train(tx, valid_every):
    return inner_loop.train(quadratic_task(), tx, 60, valid_every=valid_every, **KW)


def test_inner_loop_feeds_a_learned_optimizer_inside_a_chain():
    bare = _train(LOPT, 5)
    chained = _train(optax.chain(optax.identity(), LOPT), 5)
    without = _train(LOPT, 10**6)  # no validation feed at all
    for split in inner_loop.SPLITS:
        assert chained.losses[split].tobytes() == bare.losses[split].tobytes()
    assert chained.step_losses.tobytes() == bare.step_losses.tobytes()
    assert without.step_losses.tobytes() != bare.step_losses.tobytes()


def test_implicit_reg_feeds_a_learned_optimizer_inside_a_chain():
    task, starts = implicit_reg.line_task(), [(4.0, -2.0), (1.0, 4.5)]
    bare = implicit_reg.trajectories(task, LOPT, starts, 30, valid_every=3)
    chained = implicit_reg.trajectories(task, optax.chain(optax.identity(), LOPT), starts, 30, valid_every=3)
    without = implicit_reg.trajectories(task, LOPT, starts, 30, valid_every=10**6)
    assert chained.tobytes() == bare.tobytes()
    assert without.tobytes() != bare.tobytes()
