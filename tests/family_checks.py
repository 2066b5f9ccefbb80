"""Shared checks for family tests: build a spec, train it briefly with Adam, report whether the loss fell."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from families.sampling import SpecRNG, derive_seed
from taskgen import quickstep
from taskgen.spec import TaskSpec


N_SPECS = int(os.environ.get("TASKGEN_FAMILY_SPECS", "20"))
"""Specs per family in the family batteries: 20 by default (the issue's bar); `make test` sets
``TASKGEN_FAMILY_SPECS`` lower to keep CI to minutes, `make test-full` runs the full 20."""


def sample_specs(family, n: int, salt: str = "test") -> list[TaskSpec]:
    """``n`` specs of ``family`` drawn from fixed seeds (the same ones on every run)."""
    specs = []
    for i in range(n):
        seed = derive_seed(salt, family.name, i)
        config = family.sample(SpecRNG(seed))
        family.validate(config)
        specs.append(TaskSpec.create(family.name, family.version, seed, config))
    return specs


def adam_losses(task, steps: int = 200, lr: float = 1e-3) -> np.ndarray:
    """Training losses of ``steps`` Adam steps on ``task`` from its default init (one compiled scan)."""
    return quickstep.adam_losses(task, steps, lr)


def loss_decreased(losses: np.ndarray, window: int = 20) -> bool:
    """True when the mean of the last ``window`` losses is finite and below the mean of the first ``window``."""
    first, last = np.mean(losses[:window]), np.mean(losses[-window:])
    return bool(np.isfinite(last) and last < first)


def param_count(params) -> int:
    """Number of scalars in a parameter pytree."""
    return int(sum(np.size(x) for x in jax.tree_util.tree_leaves(params)))


def check_finite_loss_and_grad(task) -> None:
    """Assert one loss and gradient on a train batch are finite."""
    params = task.init(task.init_key())
    batch = task.batch("train", jax.random.PRNGKey(0))
    loss, grads = jax.value_and_grad(task.loss)(params, batch, jax.random.PRNGKey(2))
    assert jnp.isfinite(loss), (task.spec.task_id, loss)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree_util.tree_leaves(grads)), task.spec.task_id
