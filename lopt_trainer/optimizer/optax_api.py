"""The hierarchical learned optimizer as an optax transformation.

    tx = optax_lopt(theta)
    state = tx.init(params)
    updates, state = tx.update(grads, state, params, value=loss)
    params = optax.apply_updates(params, updates)
    state = observe_validation(state, valid_loss)   # every k steps, optional

The validation loss goes into the optimizer's *state*, not through `update`: `observe_validation` finds the
learned optimizer's `LOptState` wherever an optax wrapper nests it (`optax.chain`, `named_chain`, `masked`,
`partition`/`multi_transform`, `MultiSteps`, `apply_if_finite`, `inject_hyperparams`, `conditionally_transform`,
`lookahead`, `flatten`, `contrib.mechanize`, `contrib.schedule_free`, …: every one keeps its inner state as a
pytree child) and feeds all of them.  A feed through `update` would be lost silently whenever a wrapper skips
the inner update (`MultiSteps` between emissions, `apply_if_finite` on a non-finite gradient,
`conditionally_transform` when its condition is false), so `update` refuses a `valid_loss` argument.  A state
with no `LOptState` in it is refused with one error.  Training loops call `validation_feed(tx, state)` to learn
whether (and how) to feed a transformation.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import optax

from lopt_trainer.optimizer import hierarchical
from lopt_trainer.optimizer.hierarchical import DEFAULT_CONFIG, LOptConfig, LOptState


def _is_lopt_state(x) -> bool:
    return isinstance(x, LOptState)


def lopt_states(state) -> list[LOptState]:
    """Every `LOptState` inside `state` (any pytree, e.g. the state of an optax wrapper), in tree order."""
    return [x for x in jax.tree_util.tree_leaves(state, is_leaf=_is_lopt_state) if _is_lopt_state(x)]


def observe_validation(state, valid_loss):
    """Feeds one validation loss to every learned-optimizer state inside `state`; returns the new state.

    `state`: the state of `optax_lopt(θ)` or of any optax transformation that contains it (a chain, a mask,
    `MultiSteps`, …), as returned by its `init` or `update`; `valid_loss`: a scalar (float32; NaN or inf is
    skipped and counted, see `hierarchical.observe_validation`).  Each `LOptState` found is fed with the
    config it was made for (`type(s).config`), so a state of a non-default config needs no config here; the
    rest of `state` is returned unchanged.  Works under `jit`, `vmap` and `lax.cond`.

    Raises ValueError `valid_loss: ...` for a non-scalar loss, and ValueError `observe_validation: no
    learned-optimizer state ...` when `state` holds no `LOptState` (the transformation does not contain the
    learned optimizer, or the state passed is not its state).
    """
    valid_loss = hierarchical.scalar_loss(valid_loss, "valid_loss")
    if not lopt_states(state):
        raise ValueError(
            f"observe_validation: no learned-optimizer state (LOptState) in the state given (a "
            f"{type(state).__name__}); pass the state, as returned by init or update, of a transformation that "
            "contains optax_lopt(θ)")
    return jax.tree_util.tree_map(
        lambda x: hierarchical.observe_validation(x, valid_loss) if _is_lopt_state(x) else x,
        state, is_leaf=_is_lopt_state)


def validation_feed(tx, state) -> Callable | None:
    """How a training loop feeds validation losses to `tx`, whose state is `state` (or its structure, e.g. a
    tracer): `tx.observe_validation` when `tx` has one (the learned optimizer, or any transformation with its
    own validation path), else `observe_validation` when `state` holds a learned-optimizer state (`tx` wraps
    the learned optimizer), else None (nothing takes a validation loss)."""
    own = getattr(tx, "observe_validation", None)
    if own is not None:
        return own
    return observe_validation if lopt_states(state) else None


class LOptTransformation(optax.GradientTransformationExtraArgs):
    """An `optax.GradientTransformationExtraArgs` (the 2-field NamedTuple
    `(init, update)`, so optax and `optax.chain` accept it) carrying one
    extra attribute, `observe_validation(state, valid_loss) -> state`
    (this module's `observe_validation`: it takes the state of `tx` or of
    any wrapper around it).  Training loops find the feed with
    `validation_feed(tx, state)`.
    """

    def __new__(cls, init, update, observe_validation):
        self = super().__new__(cls, init, update)
        self.observe_validation = observe_validation
        return self

    def __getnewargs__(self):
        return (self.init, self.update, self.observe_validation)


def optax_lopt(theta: dict, config: LOptConfig = DEFAULT_CONFIG) -> LOptTransformation:
    """Wraps meta-parameters θ as an optax transformation.

    Takes θ (from `hierarchical.init` or `load_reference_npz`) and the config;
    returns an `LOptTransformation`.  Raises ValueError when θ was made for
    another config (`hierarchical.check_theta`, naming the array).
    `init(params)` raises ValueError for a tensor of rank above
    `config.max_rank` (naming it).  `update(grads, state, params,
    value=loss)` needs both `params` and the scalar training loss `value`
    (ValueError otherwise, also for a loss of shape (8,), and from inside a
    wrapper that drops them, e.g. `optax.lookahead`); validation losses go
    through `observe_validation`, and `valid_loss=` given to `update` raises
    TypeError; other extra keyword arguments are ignored, as optax does.
    An empty parameter tree gives empty updates; a zero-element leaf gets an
    empty update; a NaN or infinite `value` (or validation loss) is skipped
    by the loss trackers and counted in `state.nonfinite_losses` (see
    `hierarchical.update`).  Finite inputs of any magnitude give finite
    updates and state.
    """
    hierarchical.check_theta(theta, config)

    def init_fn(params):
        return hierarchical.init_state(theta, params, config)

    def update_fn(updates, state, params=None, *, value=None, **extra_args):
        if "valid_loss" in extra_args:
            raise TypeError(
                "the learned optimizer takes validation losses through its state, not update: call "
                "state = observe_validation(state, valid_loss) (lopt_trainer.optimizer.optax_api) after the "
                "update; it finds the learned optimizer inside any optax wrapper")
        if value is None:
            raise ValueError(
                "the learned optimizer needs the training loss: call "
                "tx.update(grads, state, params, value=loss) (a wrapper that drops extra arguments, such as "
                "optax.lookahead, cannot hold the learned optimizer)")
        value = hierarchical.scalar_loss(value, "value")
        if params is None:
            if jax.tree_util.tree_leaves(updates):
                raise ValueError(
                    "the learned optimizer needs the current parameters: call "
                    "tx.update(grads, state, params, value=loss) (a wrapper that drops them cannot hold the "
                    "learned optimizer)")
            params = updates  # a tree without arrays (e.g. None): nothing to update, params not needed
        return hierarchical.update(theta, updates, state, params, value, config)

    return LOptTransformation(init_fn, update_fn, observe_validation)
