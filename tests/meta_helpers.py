"""Fixtures of the meta-training tests: a tiny learned optimizer and small spec lists.

``tiny_lopt``: per-problem learned log learning rate and momentum logit (2 meta-parameters), plus an EMA of the
validation losses fed to it (so the validation path is exercised). Importable as ``tests.meta_helpers:tiny_lopt``
by subprocesses and Ray workers started from the repository root.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from lopt_trainer.optimizer.protocol import LearnedOptimizer


def _init(key):
    del key
    return {"log_lr": jnp.asarray(-4.0, jnp.float32), "mom_logit": jnp.asarray(0.0, jnp.float32)}


def _init_state(theta, params, key):
    del theta, key
    return {"m": jax.tree_util.tree_map(jnp.zeros_like, params), "valid": jnp.zeros((), jnp.float32)}


def _update(theta, grads, state, params, loss, key):
    del params, loss, key
    beta = jax.nn.sigmoid(theta["mom_logit"])
    m = jax.tree_util.tree_map(lambda m, g: beta * m + g, state["m"], grads)
    lr = jnp.exp(theta["log_lr"])
    return jax.tree_util.tree_map(lambda x: -lr * x, m), {"m": m, "valid": state["valid"]}


def _observe(state, valid_loss):
    return {"m": state["m"], "valid": 0.9 * state["valid"] + 0.1 * valid_loss}


@functools.lru_cache(maxsize=None)
def tiny_lopt() -> LearnedOptimizer:
    """The 2-parameter learned optimizer (cached: one object per process)."""
    return LearnedOptimizer("tiny", _init, _init_state, _update, _observe, valid_every=5)


def quadratic_specs(n: int = 6, seed: int = 0):
    """``n`` quadratic specs from the suite generator, all forced to the ``meta_train`` split."""
    from taskgen import generate_suite

    return [s.with_split("meta_train") if s.split != "meta_train" else s
            for s in generate_suite(["quadratic"], per_family=n, seed=seed)]


def small_quadratic_specs(n: int = 8, dims: int = 4, split: str = "meta_train"):
    """``n`` noiseless identity-output quadratics of ``dims`` dimensions (one static key, different matrices)."""
    from taskgen import TaskSpec, get_family

    version = get_family("quadratic").version
    out = []
    for i in range(n):
        config = {"dims": dims, "init": "normal", "loss_scale": 1.0, "output": "identity", "noise_std": 0.0,
                  "matrix": {"kind": "linspace_eigen", "min": 0.5 + 0.25 * i, "max": 2.0 + 0.5 * i}}
        out.append(TaskSpec.create("quadratic", version, 1000 + i, config, split))
    return out
