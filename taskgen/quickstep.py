"""A minimal Adam run used by ``taskgen build`` to show that a built task trains (no dependency on lopt_trainer)."""

from __future__ import annotations

import functools

import jax
import numpy as np
import optax


@functools.lru_cache(maxsize=64)
def _compiled_adam_run(loss_fn, sample_batch, steps: int, lr: float):
    # Keyed on the task's function objects, so tasks sharing a static_key share one compiled run.
    opt = optax.adam(lr)

    def run(params, train_data, key):
        def step(carry, k):
            p, s = carry
            kb, kl = jax.random.split(k)
            loss, g = jax.value_and_grad(loss_fn)(p, sample_batch(train_data, kb), kl)
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), loss

        _, losses = jax.lax.scan(step, (params, opt.init(params)), jax.random.split(key, steps))
        return losses

    return jax.jit(run)


def adam_losses(task, steps: int, lr: float = 1e-3, seed: int = 1) -> np.ndarray:
    """Train ``task`` from its default init for ``steps`` Adam steps in one ``lax.scan``; returns the train losses
    (float32 array of length ``steps``)."""
    run = _compiled_adam_run(task.loss, task.sample_batch, steps, lr)
    return np.asarray(run(task.init(task.init_key()), task.splits["train"], jax.random.PRNGKey(seed)))


def adam_trace(task, steps: int, lr: float, seed: int = 1) -> list[float]:
    """:func:`adam_losses` as a list of Python floats."""
    return [float(x) for x in adam_losses(task, steps, lr, seed)]
