"""A Flax ``TrainState`` for the learned optimizer: ``apply_gradients`` that passes the training loss.

Flax's ``TrainState.apply_gradients(grads=g)`` calls ``tx.update(grads, opt_state, params)`` with no loss, and
the learned optimizer needs the loss as a feature (``the learned optimizer needs the training loss``).
:class:`LOptTrainState` is a drop-in subclass whose ``apply_gradients`` takes it::

    import jax, optax, lopt_trainer
    state = lopt_trainer.LOptTrainState.create(apply_fn=model.apply, params=params,
                                               tx=lopt_trainer.optax_lopt(lopt_trainer.pretrained()))
    loss, grads = jax.value_and_grad(loss_fn)(state.params, batch)
    state = state.apply_gradients(grads=grads, value=loss)                 # every step
    state = state.apply_gradients(grads=grads, value=loss, valid_loss=vl)  # when state.wants_valid_loss()

``tx`` may be any optax transformation that takes ``value=`` (the learned optimizer, or an ``optax.chain`` that
contains it: chains pass extra keyword arguments to every member). The validation loss goes to the
learned optimizer's state wherever ``tx`` nests it (:func:`lopt_trainer.optimizer.optax_api.validation_feed`;
the feature the paper credits; :data:`DEFAULT_VALID_EVERY` steps apart by default,
as in the inner loop of :mod:`lopt_trainer.inner.loop`).
"""

from __future__ import annotations

import optax
from flax import struct
from flax.training import train_state

from lopt_trainer.optimizer.optax_api import validation_feed

DEFAULT_VALID_EVERY = 10
"""Steps between validation losses, as :data:`lopt_trainer.optimizer.hierarchical.DEFAULT_CONFIG` feeds them."""


class LOptTrainState(train_state.TrainState):
    """``flax.training.train_state.TrainState`` whose :meth:`apply_gradients` passes the training loss
    (``value=``) to the transformation and feeds an optional validation loss; ``valid_every`` (static, default
    :data:`DEFAULT_VALID_EVERY`) is the cadence :meth:`wants_valid_loss` answers for."""

    valid_every: int = struct.field(pytree_node=False, default=DEFAULT_VALID_EVERY)

    def apply_gradients(self, *, grads, value=None, valid_loss=None, **kwargs):
        """One step: ``tx.update(grads, opt_state, params, value=value)``, ``optax.apply_updates``, then, when
        ``valid_loss`` is given, it is fed to the learned optimizer's state (inside any optax wrapper); ``step``
        advances by one and
        ``kwargs`` replace fields as in Flax.

        ``value``: the scalar training loss of the batch ``grads`` came from (the learned optimizer raises
        ``ValueError`` without it; other transformations ignore it). ``valid_loss``: a scalar validation loss
        (e.g. every :attr:`valid_every` steps); ``ValueError`` when nothing in ``tx`` takes one.
        """
        owg = train_state.OVERWRITE_WITH_GRADIENT  # Flax's pattern: a collection set from its gradient, not trained
        if owg in grads:
            updates, opt_state = self.tx.update(grads["params"], self.opt_state, self.params["params"], value=value)
            params = {"params": optax.apply_updates(self.params["params"], updates), owg: grads[owg]}
        else:
            updates, opt_state = self.tx.update(grads, self.opt_state, self.params, value=value)
            params = optax.apply_updates(self.params, updates)
        if valid_loss is not None:
            observe = validation_feed(self.tx, opt_state)
            if observe is None:
                raise ValueError("this transformation takes no validation loss (it holds no learned-optimizer "
                                 "state); pass valid_loss only when tx is or contains the learned optimizer")
            opt_state = observe(opt_state, valid_loss)
        return self.replace(step=self.step + 1, params=params, opt_state=opt_state, **kwargs)

    @classmethod
    def create(cls, *, apply_fn, params, tx, valid_every: int = DEFAULT_VALID_EVERY, **kwargs):
        """A new state at step 0 (as Flax's ``TrainState.create``); ``ValueError`` naming ``valid_every`` unless it
        is a whole number ≥ 1."""
        if isinstance(valid_every, bool) or not isinstance(valid_every, int) or valid_every < 1:
            raise ValueError(f"valid_every must be a whole number of steps >= 1, got {valid_every!r}")
        return super().create(apply_fn=apply_fn, params=params, tx=tx, valid_every=valid_every, **kwargs)

    def wants_valid_loss(self) -> bool:
        """Whether the coming :meth:`apply_gradients` is due a validation loss: when it makes the ``valid_every``-th,
        ``2·valid_every``-th, … update, ``(step + 1) % valid_every == 0`` — the inner loop's and meta-training's
        cadence (the loss is fed after the update). A Python bool; call it outside ``jit``, where ``step`` is
        concrete."""
        return (int(self.step) + 1) % int(self.valid_every) == 0
