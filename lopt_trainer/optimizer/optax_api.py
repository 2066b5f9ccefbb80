"""The hierarchical learned optimizer as an optax transformation.

    tx = optax_lopt(theta)
    state = tx.init(params)
    updates, state = tx.update(grads, state, params, value=loss)
    params = optax.apply_updates(params, updates)
    state = tx.observe_validation(state, valid_loss)   # every k steps, optional
"""

from __future__ import annotations

import jax
import optax

from lopt_trainer.optimizer import hierarchical
from lopt_trainer.optimizer.hierarchical import DEFAULT_CONFIG, LOptConfig


class LOptTransformation(optax.GradientTransformationExtraArgs):
    """An `optax.GradientTransformationExtraArgs` (the 2-field NamedTuple
    `(init, update)`, so optax and `optax.chain` accept it) carrying one
    extra attribute, `observe_validation(state, valid_loss) -> state`.
    Training loops detect validation support with
    `getattr(tx, "observe_validation", None)`.
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
    returns an `LOptTransformation`.  `update(grads, state, params, value=loss)`
    needs both `params` and the scalar training loss `value` (ValueError
    otherwise, also for a loss of shape (8,)); other extra keyword arguments
    are ignored, as optax does.  An empty parameter tree gives empty
    updates; a zero-element leaf gets an empty update; a NaN or infinite
    `value` (or validation loss) is skipped by the loss trackers and counted
    in `state.nonfinite_losses` (see `hierarchical.update`).
    """

    hierarchical.check_theta(theta, config)

    def init_fn(params):
        return hierarchical.init_state(theta, params, config)

    def update_fn(updates, state, params=None, *, value=None, **extra_args):
        del extra_args
        if value is None:
            raise ValueError(
                "the learned optimizer needs the training loss: call "
                "tx.update(grads, state, params, value=loss)")
        value = hierarchical.scalar_loss(value, "value")
        if params is None:
            if jax.tree_util.tree_leaves(updates):
                raise ValueError(
                    "the learned optimizer needs the current parameters: call "
                    "tx.update(grads, state, params, value=loss)")
            params = updates  # a tree without arrays (e.g. None): nothing to update, params not needed
        return hierarchical.update(theta, updates, state, params, value, config)

    def observe_fn(state, valid_loss):
        return hierarchical.observe_validation(state, hierarchical.scalar_loss(valid_loss, "valid_loss"),
                                               config)

    return LOptTransformation(init_fn, update_fn, observe_fn)
