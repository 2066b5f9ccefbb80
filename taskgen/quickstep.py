"""A minimal Adam run used by ``taskgen build`` to show that a built task trains (no dependency on the learned-optimizer package).

:func:`adam_chunks` runs the steps in compiled chunks and yields each chunk's losses as soon as it is done, so
the first loss is printed after one chunk, not after the whole run; :func:`adam_losses` runs them in one scan.
Both draw the same per-step keys, so they give the same losses.
"""

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
        return _scan(loss_fn, sample_batch, opt, (params, opt.init(params)), train_data,
                     jax.random.split(key, steps))[1]

    return jax.jit(run)


@functools.lru_cache(maxsize=64)
def _compiled_adam_chunk(loss_fn, sample_batch, lr: float):
    # One compiled chunk (its length comes from the keys' shape): init, then chunk after chunk on the carry.
    opt = optax.adam(lr)

    def chunk(carry, train_data, keys):
        return _scan(loss_fn, sample_batch, opt, carry, train_data, keys)

    return jax.jit(opt.init), jax.jit(chunk)


def _scan(loss_fn, sample_batch, opt, carry, train_data, keys):
    def step(carry, k):
        p, s = carry
        kb, kl = jax.random.split(k)
        loss, g = jax.value_and_grad(loss_fn)(p, sample_batch(train_data, kb), kl)
        u, s = opt.update(g, s, p)
        return (optax.apply_updates(p, u), s), loss

    return jax.lax.scan(step, carry, keys)


def adam_losses(task, steps: int, lr: float = 1e-3, seed: int = 1) -> np.ndarray:
    """Train ``task`` from its default init for ``steps`` Adam steps in one ``lax.scan``; returns the train losses
    (float32 array of length ``steps``)."""
    run = _compiled_adam_run(task.loss, task.sample_batch, steps, lr)
    return np.asarray(run(task.init(task.init_key()), task.splits["train"], jax.random.PRNGKey(seed)))


def adam_chunks(task, steps: int, lr: float = 1e-3, chunk: int = 10, seed: int = 1):
    """Yield the train losses of :func:`adam_losses` ``chunk`` steps at a time (lists of floats), each as soon as
    it is computed."""
    init, run = _compiled_adam_chunk(task.loss, task.sample_batch, lr)
    params = task.init(task.init_key())
    carry = (params, init(params))
    keys = jax.random.split(jax.random.PRNGKey(seed), steps)
    data = task.splits["train"]
    for start in range(0, steps, chunk):
        carry, losses = run(carry, data, keys[start:start + chunk])
        yield [float(x) for x in np.asarray(losses)]


def adam_trace(task, steps: int, lr: float, seed: int = 1) -> list[float]:
    """:func:`adam_losses` as a list of Python floats."""
    return [float(x) for x in adam_losses(task, steps, lr, seed)]
